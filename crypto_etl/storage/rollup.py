"""The hourly rollup `history_hourly`, kept as a continuous aggregate would be: per coin, currency
and UTC hour, the point the history API keeps for that hour from market_snapshots and
price_history merged (analytics.series.hourly_rollup, made of the same functions as the API's
raw path, so the merge rule cannot drift).

- Every bulk write of either history table recomputes the hours it touched from the raw rows of
  both tables, in the write's transaction (crypto_etl.storage.bulk calls `refresh_hours`).
- Retention recomputes the hours it changed in its own transactions (crypto_etl.storage.retention).
- A database that held history before the rollup existed is filled by `rebuild` (the `rollup
  --rebuild` command); `rollup_state` says whether the rollup is complete, and until it is, the
  API answers from the raw rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import Connection, Engine, delete, func, insert, select, union, update

from crypto_etl.analytics import series
from crypto_etl.storage.bulk import write_transaction
from crypto_etl.storage.partitions import DEFAULT_AHEAD_MONTHS, ensure_partitions
from crypto_etl.storage.queries import points_matrix
from crypto_etl.storage.schema import HistoryHourly, MarketSnapshot, PriceHistory, RollupState

log = logging.getLogger(__name__)

TABLE = HistoryHourly.__tablename__
SOURCES = ("market_snapshots", "price_history")  # the tables the rollup is made of
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR_US = series.HOUR_MS * 1000
# Reads around the recomputed hours reach this far past them: a time within half a millisecond
# of an hour's end counts in the next hour (times are rounded to milliseconds).
MARGIN = timedelta(milliseconds=2)
COLUMNS = ("coin_id", "vs_currency", "ts", "price", "market_cap", "total_volume", "ms_ties")


@dataclass(frozen=True)
class Touched:
    """The times written for one coin and currency: the hours from `first` to `last` are
    recomputed."""

    coin_id: str
    vs_currency: str
    first: datetime
    last: datetime


def epoch_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_epoch_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=int(ms))


def _hour_rows(conn: Connection, coin_id: str, vs_currency: str, lo: int, hi: int) -> list[tuple]:
    """The rollup rows of hours lo..hi (hour numbers since the epoch) from the raw rows."""
    start = EPOCH + timedelta(microseconds=lo * HOUR_US) - MARGIN
    end = EPOCH + timedelta(microseconds=(hi + 1) * HOUR_US) + MARGIN
    matrix = points_matrix(conn, coin_id, vs_currency, start, end)
    hours, values, ties = series.hourly_rollup(matrix)
    keep = (hours >= lo * series.HOUR_MS) & (hours <= hi * series.HOUR_MS)
    rows = []
    for ms, (price, market_cap, volume), tie in zip(
        hours[keep].tolist(), values[keep].tolist(), ties[keep].tolist(), strict=True
    ):
        rows.append(
            (
                coin_id,
                vs_currency,
                from_epoch_ms(ms),
                price,
                None if np.isnan(market_cap) else market_cap,
                None if np.isnan(volume) else volume,
                tie,
            )
        )
    return rows


def refresh_hours(conn: Connection, touched: Iterable[Touched]) -> int:
    """Recompute, in `conn`'s transaction (which holds the writers' lock), the rollup hours
    holding the written times; returns the rollup rows written."""
    rows: list[tuple] = []
    h = HistoryHourly
    for t in touched:
        lo = (epoch_us(t.first) - 2000) // HOUR_US
        hi = (epoch_us(t.last) + 2000) // HOUR_US
        conn.execute(
            delete(h).where(
                h.coin_id == t.coin_id,
                h.vs_currency == t.vs_currency,
                h.ts >= EPOCH + timedelta(microseconds=lo * HOUR_US),
                h.ts <= EPOCH + timedelta(microseconds=hi * HOUR_US),
            )
        )
        rows.extend(_hour_rows(conn, t.coin_id, t.vs_currency, lo, hi))
    _insert(conn, rows)
    return len(rows)


def _insert(conn: Connection, rows: list[tuple]) -> None:
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(HistoryHourly), [dict(zip(COLUMNS, row, strict=True)) for row in rows])
        return
    times = [row[2] for row in rows]
    ahead = conn.get_execution_options().get("partitions_ahead_months", DEFAULT_AHEAD_MONTHS)
    ensure_partitions(conn, TABLE, min(times), max(times), ahead)
    cursor = conn.connection.driver_connection.cursor()
    quoted = ", ".join(f'"{c}"' for c in COLUMNS)
    with cursor.copy(f"COPY {TABLE} ({quoted}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def refresh_range(conn: Connection, start: datetime, end: datetime) -> int:
    """Recompute the rollup hours from `start` to `end` of every coin and currency with rows
    there in either table or in the rollup (after retention changed the raw rows)."""
    window = []
    for model, column in (
        (MarketSnapshot, MarketSnapshot.last_updated),
        (PriceHistory, PriceHistory.ts),
        (HistoryHourly, HistoryHourly.ts),
    ):
        window.append(
            select(model.coin_id, model.vs_currency).where(
                column >= start - MARGIN - timedelta(hours=1), column <= end + MARGIN
            )
        )
    pairs = conn.execute(union(*window)).all()
    return refresh_hours(conn, [Touched(c, v, start, end) for c, v in sorted(pairs)])


def delete_before(conn: Connection, hour: datetime) -> int:
    """Delete the rollup hours before `hour` (retention dropped their rows); returns how many."""
    return conn.execute(delete(HistoryHourly).where(HistoryHourly.ts < hour)).rowcount


def is_complete(conn: Connection) -> bool:
    stmt = select(RollupState.complete).where(RollupState.name == TABLE)
    return bool(conn.execute(stmt).scalar())


def _set_complete(conn: Connection, complete: bool, now: datetime) -> None:
    done = conn.execute(
        update(RollupState)
        .where(RollupState.name == TABLE)
        .values(complete=complete, updated_at=now)
    ).rowcount
    if not done:
        conn.execute(insert(RollupState).values(name=TABLE, complete=complete, updated_at=now))


def status(engine: Engine) -> tuple[bool, int]:
    """Whether the rollup is complete, and how many rows it holds."""
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(HistoryHourly)).scalar_one()
        return is_complete(conn), rows


@dataclass(frozen=True)
class Rebuild:
    pairs: int
    rows: int


def rebuild(
    engine: Engine,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[int, int], None] | None = None,
) -> Rebuild:
    """Fill the rollup again from the raw rows of both tables: marked incomplete first, then
    each coin and currency in a transaction of its own under the writers' lock (loads go on
    between them and keep the rebuilt hours current), then marked complete. Killed halfway, it
    leaves the rollup incomplete and a re-run starts over."""
    with write_transaction(engine, "rollup rebuild") as conn:
        _set_complete(conn, False, now())
        pairs = sorted(
            conn.execute(
                union(
                    select(MarketSnapshot.coin_id, MarketSnapshot.vs_currency).distinct(),
                    select(PriceHistory.coin_id, PriceHistory.vs_currency).distinct(),
                    select(HistoryHourly.coin_id, HistoryHourly.vs_currency).distinct(),
                )
            ).all()
        )
    rows = 0
    for done, (coin_id, vs_currency) in enumerate(pairs, start=1):
        with write_transaction(engine, f"rollup rebuild of {coin_id}") as conn:
            rows += _rebuild_pair(conn, coin_id, vs_currency)
        if progress is not None:
            progress(done, len(pairs))
    with write_transaction(engine, "rollup rebuild") as conn:
        _set_complete(conn, True, now())
    return Rebuild(len(pairs), rows)


def _rebuild_pair(conn: Connection, coin_id: str, vs_currency: str) -> int:
    conn.execute(
        delete(HistoryHourly).where(
            HistoryHourly.coin_id == coin_id, HistoryHourly.vs_currency == vs_currency
        )
    )
    bounds = []
    for model, column in (
        (MarketSnapshot, MarketSnapshot.last_updated),
        (PriceHistory, PriceHistory.ts),
    ):
        bounds.append(
            conn.execute(
                select(func.min(column), func.max(column)).where(
                    model.coin_id == coin_id, model.vs_currency == vs_currency
                )
            ).one()
        )
    firsts = [b[0] for b in bounds if b[0] is not None]
    lasts = [b[1] for b in bounds if b[1] is not None]
    if not firsts:
        return 0
    first, last = (
        _aware(min(firsts)),
        _aware(max(lasts)),
    )
    return refresh_hours(conn, [Touched(coin_id, vs_currency, first, last)])


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
