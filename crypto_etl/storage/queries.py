"""The read queries of the API and the reports: read-only SQL over the pipeline's tables, the same
on SQLite and PostgreSQL. Functions take a Session and return plain rows (dicts) or DataFrames."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from sqlalchemy import (
    CompoundSelect,
    Connection,
    Double,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import FunctionElement

from crypto_etl.analytics import series
from crypto_etl.run_status import RunStatus
from crypto_etl.storage.schema import (
    Coin,
    EtlRun,
    HistoryHourly,
    MarketSnapshot,
    Ohlc,
    PriceHistory,
    RejectedRow,
    RollupState,
)

SNAPSHOT_COLUMNS = [c for c in MarketSnapshot.__table__.columns]
# Sort keys of the list endpoint; ties are broken by coin id so pages are stable.
OrderBy = Literal[
    "market_cap_rank",
    "market_cap",
    "current_price",
    "total_volume",
    "price_change_percentage_24h",
    "price_change_24h",
    "market_cap_change_percentage_24h",
    "fully_diluted_valuation",
    "circulating_supply",
    "ath_change_percentage",
    "last_updated",
    "coin_id",
    "symbol",
    "name",
]
ORDERABLE = get_args(OrderBy)


def schema_revision(session: Session) -> str | None:
    """The schema's Alembic revision (raises when the database has no schema yet)."""
    return session.execute(text("SELECT version_num FROM alembic_version")).scalar()


def data_version(session: Session) -> tuple[Any, ...]:
    """What identifies the data now loaded: the latest pipeline run (id, status, rows loaded) and
    the newest snapshot time. Index lookups only, cheap enough to run on every request."""
    latest_run = select(func.max(EtlRun.id)).scalar_subquery()
    stmt = select(
        latest_run,
        select(EtlRun.status).where(EtlRun.id == latest_run).scalar_subquery(),
        select(EtlRun.rows_loaded).where(EtlRun.id == latest_run).scalar_subquery(),
        select(func.max(MarketSnapshot.last_updated)).scalar_subquery(),
    )
    return tuple(session.execute(stmt).one())


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def latest_snapshots(vs_currency: str, q: str | None = None) -> Select:
    """Each coin's newest snapshot in `vs_currency`, with the coin's symbol, name and image.

    The newest time is looked up per coin, then joined back by primary key: fast on millions of
    rows, where a GROUP BY would read them all. `coins.last_seen_at` is the newest `last_updated`
    a load gave the coin (in any currency), so where a snapshot exists at that time and none
    after it, that is the newest: two key probes, which on monthly partitions (PostgreSQL prunes
    them while executing) touch the one month holding it and the months after, however long the
    history. Only a coin failing that test (another currency, or rows written around the loader)
    pays for the search over every month (`max`, one probe per partition).
    """
    inner = aliased(MarketSnapshot)
    same_coin = and_(inner.coin_id == Coin.id, inner.vs_currency == vs_currency)
    at_last_seen = select(literal(1)).where(same_coin, inner.last_updated == Coin.last_seen_at)
    after_last_seen = select(literal(1)).where(same_coin, inner.last_updated > Coin.last_seen_at)
    searched = select(func.max(inner.last_updated)).where(same_coin).scalar_subquery()
    newest_time = case(
        (
            and_(at_last_seen.exists(), ~after_last_seen.exists()),
            Coin.last_seen_at,
        ),
        else_=searched,
    )
    coins = select(
        Coin.id.label("coin_id"), Coin.symbol, Coin.name, Coin.image, newest_time.label("newest")
    )
    if q:
        pattern = _like(q)
        coins = coins.where(
            or_(
                func.lower(Coin.id).like(pattern, escape="\\"),
                func.lower(Coin.symbol).like(pattern, escape="\\"),
                func.lower(Coin.name).like(pattern, escape="\\"),
            )
        )
    # Materialized: each coin's newest time is computed once, not again inside the join below.
    newest = coins.cte("newest").prefix_with("MATERIALIZED")
    return (
        select(*SNAPSHOT_COLUMNS, newest.c.symbol, newest.c.name, newest.c.image)
        .select_from(newest)
        .join(
            MarketSnapshot,
            and_(
                MarketSnapshot.coin_id == newest.c.coin_id,
                MarketSnapshot.vs_currency == vs_currency,
                MarketSnapshot.last_updated == newest.c.newest,
            ),
        )
    )


def list_latest(
    session: Session,
    vs_currency: str,
    *,
    q: str | None = None,
    order_by: str = "market_cap_rank",
    descending: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the latest snapshots, sorted, with the number of coins matching before paging."""
    if order_by not in ORDERABLE:
        raise ValueError(f"cannot order by {order_by!r}")
    stmt = latest_snapshots(vs_currency, q)
    count = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    key = stmt.selected_columns[order_by]
    key = key.desc() if descending else key.asc()
    stmt = stmt.order_by(key.nulls_last(), MarketSnapshot.coin_id).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = [dict(row) for row in session.execute(stmt).mappings()]
    return rows, count


def get_coin(session: Session, coin_id: str) -> Coin | None:
    return session.get(Coin, coin_id)


def latest_snapshot(session: Session, coin_id: str, vs_currency: str) -> dict[str, Any] | None:
    """A coin's newest snapshot in `vs_currency`, or None."""
    stmt = (
        select(*SNAPSHOT_COLUMNS)
        .where(MarketSnapshot.coin_id == coin_id, MarketSnapshot.vs_currency == vs_currency)
        .order_by(MarketSnapshot.last_updated.desc())
        .limit(1)
    )
    row = session.execute(stmt).mappings().first()
    return dict(row) if row else None


class epoch_seconds(FunctionElement):
    """A timestamp column as float seconds since 1970 (UTC), read without per-row conversion."""

    type = Double()
    inherit_cache = True


@compiles(epoch_seconds, "postgresql")
def _epoch_postgresql(element, compiler, **kw) -> str:
    # date_part gives double precision directly; EXTRACT computes in numeric, three times slower
    return f"date_part('epoch', {compiler.process(element.clauses, **kw)})"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element, compiler, **kw) -> str:
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


def _series_statements() -> dict[str, Select | CompoundSelect]:
    """The time-series reads, written once with named parameters (coin_id, vs_currency, start,
    end, interval) so each is compiled once per dialect. Each selects epoch_seconds(time) first,
    then numbers only."""
    m, h, o, r = MarketSnapshot, PriceHistory, Ohlc, HistoryHourly
    coin, vs = bindparam("coin_id"), bindparam("vs_currency")
    start, end = bindparam("start"), bindparam("end")
    return {
        # source 0 (snapshots) before 1 (backfill): one round trip for both tables
        "points": union_all(
            select(
                literal(0.0),
                epoch_seconds(m.last_updated),
                m.current_price,
                m.market_cap,
                m.total_volume,
            ).where(m.coin_id == coin, m.vs_currency == vs, m.last_updated.between(start, end)),
            select(literal(1.0), epoch_seconds(h.ts), h.price, h.market_cap, h.total_volume).where(
                h.coin_id == coin, h.vs_currency == vs, h.ts.between(start, end)
            ),
        ),
        "ohlc": select(epoch_seconds(o.ts), o.open, o.high, o.low, o.close).where(
            o.coin_id == coin,
            o.vs_currency == vs,
            o.interval == bindparam("interval"),
            o.ts.between(start, end),
        ),
        # the rollup's hours in [start, end), the tie flag as 1.0 (crypto_etl.storage.rollup)
        "hourly": select(
            epoch_seconds(r.ts),
            r.price,
            r.market_cap,
            r.total_volume,
            case((r.ms_ties, 1.0), else_=0.0),
        ).where(r.coin_id == coin, r.vs_currency == vs, r.ts >= start, r.ts < end),
        "snapshot_24h": select(
            epoch_seconds(m.last_updated),
            m.current_price,
            m.price_change_24h,
            m.high_24h,
            m.low_24h,
        ).where(m.coin_id == coin, m.vs_currency == vs, m.last_updated.between(start, end)),
    }


SERIES = _series_statements()
_compiled_series: dict[tuple[str, str], tuple[Any, str]] = {}


def _packed(compiled_sql: str, width: int) -> str:
    """`compiled_sql` wrapped so that PostgreSQL sends its rows as one bytea: each row's `width`
    numbers as big-endian IEEE doubles (float8send), NULL as NaN, rows in the order read.
    Parsing that is one numpy view, where a row per DataRow message costs a Python tuple and a
    conversion each (about half the time of a 30-day raw history fetch)."""
    names = ", ".join(f"c{i}" for i in range(width))
    packed = " || ".join(f"float8send(coalesce(CAST(c{i} AS float8), 'NaN'))" for i in range(width))
    return f"SELECT string_agg({packed}, ''::bytea) FROM ({compiled_sql}) AS q({names})"


def _packed_statement(stmt: Select | CompoundSelect, dialect) -> str:
    """One row of packed values (see _packed): one per SELECT of a UNION ALL whose first
    column is the constant source number (0, 1, ...), that column left out and restored from
    the value's position; a single SELECT is one value."""
    if isinstance(stmt, CompoundSelect):
        parts = [part.with_only_columns(*list(part.selected_columns)[1:]) for part in stmt.selects]
    else:
        parts = [stmt]
    values = [
        f"({_packed(part.compile(dialect=dialect).string, len(part.selected_columns))})"
        for part in parts
    ]
    return "SELECT " + ", ".join(values)


def _unpacked(values: Sequence[bytes | None], width: int) -> np.ndarray:
    """The float matrix of the values _packed_statement selects (NULL: no rows)."""
    if len(values) == 1:
        return np.frombuffer(values[0] or b"", dtype=">f8").astype("float64").reshape(-1, width)
    blocks = []
    for source, value in enumerate(values):
        rows = np.frombuffer(value or b"", dtype=">f8").reshape(-1, width - 1)
        block = np.empty((len(rows), width))
        block[:, 0] = source
        block[:, 1:] = rows
        blocks.append(block)
    return np.concatenate(blocks)


def _float_matrix(session: Session | Connection, name: str, params: dict[str, Any]) -> np.ndarray:
    """The rows of SERIES[name] as a float matrix, oldest first (NULL as NaN).

    On PostgreSQL the rows come packed in binary values (see _packed_statement): SQLAlchemy
    compiles the statement (once) and converts the parameters; only the fetch goes to the
    driver's cursor, as SQLAlchemy has no option for binary results."""
    stmt = SERIES[name]
    width = len(stmt.selected_columns)
    connection = session if isinstance(session, Connection) else session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        rows = list(map(tuple, connection.execute(stmt, params).all()))
        matrix = np.array(rows, dtype="float64").reshape(-1, width)
    else:
        cached = _compiled_series.get((name, dialect.name))
        if cached is None:
            cached = _compiled_series[name, dialect.name] = (
                stmt.compile(dialect=dialect),
                _packed_statement(stmt, dialect),
            )
        compiled, packed_sql = cached
        with connection.connection.dbapi_connection.cursor(binary=True) as cursor:
            cursor.execute(packed_sql, _bound(compiled, params, dialect))
            matrix = _unpacked(cursor.fetchone(), width)
    times = matrix[:, 1 if name == "points" else 0]
    if (times[1:] >= times[:-1]).all():  # as read, oldest first (a stable sort would keep it)
        return matrix
    return matrix[np.argsort(times, kind="stable")]


def _bound(compiled, params: dict[str, Any], dialect) -> dict[str, Any]:
    """The driver's parameters of a compiled statement: its bound values, `params` over them,
    each converted as SQLAlchemy would for that type."""
    bound = {}
    for key, value in compiled.construct_params(params).items():
        process = compiled.binds[key].type.bind_processor(dialect)
        bound[key] = process(value) if process else value
    return bound


def driver_rows(conn: Connection, stmt: Select) -> list[tuple]:
    """The rows of `stmt` as tuples. On PostgreSQL they come from psycopg's binary cursor as it
    returns them (the same Python values SQLAlchemy gives for these types), without a Row
    object each: on a check of a million new points those cost more than the values. Elsewhere
    through SQLAlchemy."""
    if conn.dialect.name != "postgresql":
        return [tuple(row) for row in conn.execute(stmt)]
    compiled = stmt.compile(dialect=conn.dialect)
    with conn.connection.dbapi_connection.cursor(binary=True) as cursor:
        cursor.execute(compiled.string, _bound(compiled, {}, conn.dialect))
        return cursor.fetchall()


def _series_frame(matrix: np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
    """A float matrix whose first column is epoch seconds as a frame: a UTC datetime column at
    millisecond precision (as CoinGecko gives) and float columns."""
    millis = np.round(matrix[:, 0] * 1000).astype("int64")
    data = {columns[0]: pd.to_datetime(millis, unit="ms", utc=True)}
    data.update((name, matrix[:, i]) for i, name in enumerate(columns[1:], start=1))
    return pd.DataFrame(data)


def history_points(
    session: Session,
    coin_ids: Sequence[str],
    vs_currency: str,
    start: datetime,
    end: datetime,
) -> dict[str, pd.DataFrame]:
    """Price points of each coin in [start, end] from market snapshots and from the backfilled
    price_history, merged (snapshots win on equal timestamps). Coins without points are absent.
    One round trip per coin, each an index range scan per table."""
    result = {}
    for coin_id in coin_ids:
        params = {"coin_id": coin_id, "vs_currency": vs_currency, "start": start, "end": end}
        matrix = _float_matrix(session, "points", params)
        from_snapshots = matrix[:, 0] == 0
        points = series.combine_points(
            _series_frame(matrix[from_snapshots, 1:], series.POINT_COLUMNS),
            _series_frame(matrix[~from_snapshots, 1:], series.POINT_COLUMNS),
        )
        if not points.empty:
            result[coin_id] = points
    return result


def history_matrix(
    session: Session, coin_id: str, vs_currency: str, start: datetime, end: datetime
) -> np.ndarray:
    """One coin's price points in [start, end] from both tables, unmerged, ordered by time: rows
    (source, epoch seconds, price, market cap, volume), source 0 for market snapshots and 1 for
    backfilled price_history (analytics.series.merge_point_matrix merges them)."""
    params = {"coin_id": coin_id, "vs_currency": vs_currency, "start": start, "end": end}
    return _float_matrix(session, "points", params)


def points_matrix(
    conn: Connection, coin_id: str, vs_currency: str, start: datetime, end: datetime
) -> np.ndarray:
    """history_matrix on a Connection (a writer's transaction: crypto_etl.storage.rollup)."""
    params = {"coin_id": coin_id, "vs_currency": vs_currency, "start": start, "end": end}
    return _float_matrix(conn, "points", params)


def rollup_complete(session: Session) -> bool:
    """Whether the hourly rollup holds every hour of the history (rollup_state)."""
    stmt = select(RollupState.complete).where(RollupState.name == HistoryHourly.__tablename__)
    return bool(session.execute(stmt).scalar())


def hourly_matrix(
    session: Session, coin_id: str, vs_currency: str, start: datetime, end: datetime
) -> np.ndarray:
    """One coin's rollup hours in [start, end), oldest first: rows (epoch seconds of the hour's
    start, price, market cap, volume, 1.0 where the hour has a same-source tie else 0.0)."""
    params = {"coin_id": coin_id, "vs_currency": vs_currency, "start": start, "end": end}
    return _float_matrix(session, "hourly", params)


def ohlc_candles(
    session: Session, coin_id: str, vs_currency: str, interval: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """CoinGecko's stored candles of one interval whose close time lies in [start, end]."""
    params = {
        "coin_id": coin_id,
        "vs_currency": vs_currency,
        "interval": interval,
        "start": start,
        "end": end,
    }
    return _series_frame(_float_matrix(session, "ohlc", params), series.CANDLE_COLUMNS)


def ohlc_interval_counts(session: Session, coin_id: str, vs_currency: str) -> list[tuple[str, int]]:
    """(interval, candles stored) of one coin's CoinGecko candles."""
    stmt = (
        select(Ohlc.interval, func.count())
        .where(Ohlc.coin_id == coin_id, Ohlc.vs_currency == vs_currency)
        .group_by(Ohlc.interval)
    )
    return [(interval, count) for interval, count in session.execute(stmt)]


def snapshot_24h_rows(
    session: Session, coin_id: str, vs_currency: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """The snapshot fields a 24h candle is made of, for analytics.candles.candles_from_snapshots."""
    params = {"coin_id": coin_id, "vs_currency": vs_currency, "start": start, "end": end}
    columns = ("last_updated", "current_price", "price_change_24h", "high_24h", "low_24h")
    return _series_frame(_float_matrix(session, "snapshot_24h", params), columns)


def run_status_as_of(now: datetime):
    """etl_runs.status as it stands at `now`: a `running` row whose lease expired before `now`
    has lost its process and counts as `abandoned` (the next pipeline command records it so;
    crypto_etl.storage.runs)."""
    lost = (EtlRun.status == RunStatus.RUNNING.value) & (EtlRun.lease_expires_at < now)
    return case((lost, RunStatus.ABANDONED.value), else_=EtlRun.status)


def recent_runs(
    session: Session,
    *,
    status: str | None = None,
    command: str | None = None,
    limit: int = 20,
    offset: int = 0,
    now: datetime | None = None,
) -> tuple[list[EtlRun], int]:
    """Pipeline runs, newest first, with the number matching the filters; the status filter
    sees runs whose lease expired before `now` as `abandoned` (see `run_status_as_of`)."""
    filters = []
    if status:
        moment = now or datetime.now(UTC)
        filters.append(run_status_as_of(moment) == status)
    if command:
        filters.append(EtlRun.command == command)
    count = session.execute(select(func.count()).select_from(EtlRun).where(*filters)).scalar_one()
    stmt = select(EtlRun).where(*filters).order_by(EtlRun.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(stmt)), count


def rejected_rows(
    session: Session,
    *,
    run_id: int | None = None,
    rule: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[RejectedRow], int]:
    """Quarantined rows, newest first, with the number matching the filters."""
    filters = []
    if run_id is not None:
        filters.append(RejectedRow.run_id == run_id)
    if rule:
        filters.append(RejectedRow.rule == rule)
    count = session.execute(
        select(func.count()).select_from(RejectedRow).where(*filters)
    ).scalar_one()
    stmt = (
        select(RejectedRow)
        .where(*filters)
        .order_by(RejectedRow.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(stmt)), count


# (table, timestamp column, whether the pipeline's schedule refreshes it)
FRESHNESS_COLUMNS = (
    ("market_snapshots", MarketSnapshot.last_updated, True),
    ("coins", Coin.last_seen_at, True),
    ("etl_runs", EtlRun.finished_at, True),
    ("price_history", PriceHistory.ts, False),
    ("ohlc", Ohlc.ts, False),
)


def newest_per_table(session: Session) -> list[tuple[str, str, datetime | None, bool]]:
    """(table, column, newest timestamp or None, scheduled) for each table the pipeline fills."""
    stmt = select(*(select(func.max(col)).scalar_subquery() for _, col, _ in FRESHNESS_COLUMNS))
    newest = session.execute(stmt).one()
    return [
        (table, col.key, value, scheduled)
        for (table, col, scheduled), value in zip(FRESHNESS_COLUMNS, newest, strict=True)
    ]
