"""Retention of the detailed history: rows of `market_snapshots` and `price_history` older than a
cutoff are dropped, or downsampled to one row per coin, currency and hour.

- drop: on a partitioned table every month entirely older than the cutoff is dropped whole (no
  row by row delete), then the older rows of the month holding the cutoff (and of the default
  partition) are deleted, so the cutoff is honoured to the microsecond. Elsewhere (a plain table,
  SQLite) one DELETE.
- hourly: of the rows older than the cutoff's hour, the last row of each coin, currency and UTC
  hour is kept and the others deleted; kept price points of 5-minute granularity are marked '1h'.
  Only whole hours are downsampled, so an hour is never thinned twice. `since` limits the work to
  the hours a previous application has not seen yet.

Each table is handled in one transaction under the writers' lock (crypto_etl.storage.bulk), so a
load never meets a half-applied retention. The hourly rollup (crypto_etl.storage.rollup) follows in
the same transaction: a drop deletes its older hours and recomputes the hour holding the cutoff;
hourly recomputes the hours it thinned from the rows kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, text

from crypto_etl.storage import rollup
from crypto_etl.storage.bulk import write_transaction
from crypto_etl.storage.partitions import PARTITION_COLUMNS, is_partitioned, list_partitions
from crypto_etl.storage.schema import (
    EtlRun,
    HistoryHourly,
    MarketSnapshot,
    PriceHistory,
    UTCDateTime,
)

MODELS = {"market_snapshots": MarketSnapshot, "price_history": PriceHistory}


@dataclass
class TableRetention:
    """What retention did (or, in a dry run, would do) to one table."""

    table: str
    rows_removed: int = 0
    rows_marked_hourly: int = 0
    partitions_dropped: list[str] = field(default_factory=list)


@dataclass
class Retention:
    """One application of retention over both history tables."""

    mode: str
    cutoff: datetime
    dry_run: bool
    tables: list[TableRetention]

    @property
    def rows_removed(self) -> int:
        return sum(t.rows_removed for t in self.tables)

    def details(self) -> str:
        """The JSON text kept in etl_runs.details."""
        return json.dumps(
            {
                "mode": self.mode,
                "cutoff": self.cutoff.isoformat(),
                "dry_run": self.dry_run,
                "tables": {
                    t.table: {
                        "rows_removed": t.rows_removed,
                        "rows_marked_hourly": t.rows_marked_hourly,
                        "partitions_dropped": t.partitions_dropped,
                    }
                    for t in self.tables
                },
            },
            sort_keys=True,
        )


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def apply_retention(
    engine: Engine,
    cutoff: datetime,
    mode: str,
    dry_run: bool = False,
    since: datetime | None = None,
) -> Retention:
    """Apply retention at `cutoff` in `mode` (drop or hourly) to both history tables; with
    `dry_run` only count. `since` (hourly only): hours before it were downsampled already."""
    if mode not in ("drop", "hourly"):
        raise ValueError(f"retention mode must be drop or hourly, got {mode!r}")
    tables = []
    for table in PARTITION_COLUMNS:
        # A dry run only reads: no write lock, and its transaction is rolled back at the end.
        opened = engine.connect() if dry_run else write_transaction(engine, f"retention of {table}")
        with opened as conn:
            if mode == "drop":
                tables.append(_drop(conn, table, cutoff, dry_run))
                if not dry_run:
                    _drop_rollup(conn, cutoff)
            else:
                tables.append(_hourly(conn, table, hour_floor(cutoff), since, dry_run))
                if not dry_run and tables[-1].rows_removed:
                    first = hour_floor(since) if since is not None else _oldest(conn)
                    if first is not None:
                        rollup.refresh_range(conn, first, hour_floor(cutoff))
    return Retention(mode, cutoff, dry_run, tables)


def _drop_rollup(conn: Connection, cutoff: datetime) -> None:
    """Keep the hourly rollup in step with a drop at `cutoff`: its months entirely older go
    whole, its older hours are deleted, and the hour holding the cutoff is recomputed from the
    rows left (crypto_etl.storage.rollup)."""
    table = rollup.TABLE
    if is_partitioned(conn, table):
        for partition in list_partitions(conn, table):
            if partition.end is not None and partition.end <= cutoff:
                conn.execute(text(f'DROP TABLE "{partition.name}"'))
    rollup.delete_before(conn, hour_floor(cutoff))
    rollup.refresh_range(conn, hour_floor(cutoff), cutoff)


def _oldest(conn: Connection) -> datetime | None:
    """The oldest hour of the history and its rollup (where an hourly retention without
    `since` starts)."""
    found = [
        conn.execute(select(func.min(column))).scalar()
        for column in (MarketSnapshot.last_updated, PriceHistory.ts, HistoryHourly.ts)
    ]
    found = [moment for moment in found if moment is not None]
    return hour_floor(min(found)) - timedelta(hours=1) if found else None


def _drop(conn: Connection, table: str, cutoff: datetime, dry_run: bool) -> TableRetention:
    model = MODELS[table]
    column = getattr(model, PARTITION_COLUMNS[table])
    done = TableRetention(table)
    if is_partitioned(conn, table):
        for partition in list_partitions(conn, table):
            if partition.end is None or partition.end > cutoff:
                continue
            rows = conn.execute(text(f'SELECT count(*) FROM "{partition.name}"')).scalar_one()
            if not dry_run:
                conn.execute(text(f'DROP TABLE "{partition.name}"'))
            done.rows_removed += rows
            done.partitions_dropped.append(partition.name)
    older = column < cutoff
    if dry_run:
        # The dropped partitions are still there in a dry run: count what lies outside them.
        rows = conn.execute(select(func.count()).select_from(model).where(older)).scalar_one()
        done.rows_removed = rows
    else:
        done.rows_removed += conn.execute(delete(model).where(older)).rowcount
    return done


def _hour(conn: Connection, column: str) -> str:
    """SQL for the UTC hour holding `column`, on this backend."""
    if conn.dialect.name == "postgresql":
        return f"date_trunc('hour', {column})"
    return f"strftime('%Y-%m-%d %H', {column})"


def _hourly(
    conn: Connection, table: str, end: datetime, since: datetime | None, dry_run: bool
) -> TableRetention:
    column = PARTITION_COLUMNS[table]
    window = f"{column} < :end" + ("" if since is None else f" AND {column} >= :since")
    params = {"end": end} | ({} if since is None else {"since": hour_floor(since)})
    binds = [bindparam(name, type_=UTCDateTime()) for name in params]
    # Each row of the window numbered within its coin, currency and hour, the last one first.
    granularity = "granularity" if table == "price_history" else "NULL AS granularity"
    ranked = (
        f"SELECT coin_id, vs_currency, {column}, {granularity}, row_number() OVER ("
        f"PARTITION BY coin_id, vs_currency, {_hour(conn, column)} ORDER BY {column} DESC) AS n "
        f"FROM {table} WHERE {window}"
    )

    def run(sql: str) -> int:
        result = conn.execute(text(sql).bindparams(*binds), params)
        return result.scalar_one() if dry_run else result.rowcount

    key = f"(coin_id, vs_currency, {column})"
    done = TableRetention(table)
    if dry_run:
        done.rows_removed = run(f"SELECT count(*) FROM ({ranked}) r WHERE n > 1")
    else:
        done.rows_removed = run(
            f"DELETE FROM {table} WHERE {window} AND {key} IN "
            f"(SELECT coin_id, vs_currency, {column} FROM ({ranked}) r WHERE n > 1)"
        )
    if table == "price_history":
        if dry_run:
            marked = f"SELECT count(*) FROM ({ranked}) r WHERE n = 1 AND granularity = '5m'"
        else:  # only the kept rows are left in the window now
            marked = f"UPDATE {table} SET granularity = '1h' WHERE {window} AND granularity = '5m'"
        done.rows_marked_hourly = run(marked)
    return done


def last_retention(engine: Engine) -> Retention | None:
    """The newest successful retention that changed data (not a dry run), from etl_runs."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(EtlRun.details)
            .where(EtlRun.command == "retention", EtlRun.status == "success")
            .order_by(EtlRun.id.desc())
            .limit(20)
        ).scalars()
        for details in rows:
            try:
                found = json.loads(details or "")
            except ValueError:
                continue
            if found.get("dry_run") is False:
                return Retention(
                    found["mode"], datetime.fromisoformat(found["cutoff"]), False, tables=[]
                )
    return None


def cutoff_for(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)
