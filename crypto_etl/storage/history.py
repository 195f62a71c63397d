"""Storing history: price points into `price_history` and candles into `ohlc`, and what is stored.

Each call stores one coin's rows for one table in one transaction, so an interrupted backfill
leaves every coin and table either complete or untouched. Rows already stored are kept as they
are (`ON CONFLICT DO NOTHING` on the primary key), which makes every store idempotent. On
PostgreSQL the rows stream through COPY into a temporary staging table that is dropped at commit;
on SQLite they go in as a batched insert.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.errors import DatabaseError
from crypto_etl.storage.engine import first_line
from crypto_etl.storage.schema import Ohlc, PriceHistory
from crypto_etl.storage.snapshots import FAULT_ENV, SQLITE_BATCH_ROWS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PricePoint:
    """One point of /market_chart/range: price, market cap and volume at `ts`."""

    ts: datetime
    price: float | None
    market_cap: float | None
    total_volume: float | None
    granularity: str  # 5m, 1h or 1d: the spacing CoinGecko served this point at


@dataclass(frozen=True)
class Candle:
    """One OHLC candle; `ts` is its close time."""

    interval: str  # 30m, 4h or 4d
    ts: datetime
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True)
class Coverage:
    """The first and last stored time of one coin in one table (or one OHLC interval)."""

    first: datetime
    last: datetime
    rows: int


PRICE_COLUMNS = (
    "coin_id",
    "vs_currency",
    "ts",
    "price",
    "market_cap",
    "total_volume",
    "granularity",
    "run_id",
)
PRICE_KEY = ("coin_id", "vs_currency", "ts")
OHLC_COLUMNS = (
    "coin_id",
    "vs_currency",
    "interval",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "run_id",
)
OHLC_KEY = ("coin_id", "vs_currency", "interval", "ts")


def store_price_points(
    engine: Engine, coin_id: str, vs_currency: str, points: Sequence[PricePoint], run_id: int | None
) -> int:
    """Store one coin's points in one transaction; returns how many were new."""
    rows = [
        (coin_id, vs_currency, p.ts, p.price, p.market_cap, p.total_volume, p.granularity, run_id)
        for p in points
    ]
    return _store(engine, PriceHistory, PRICE_COLUMNS, PRICE_KEY, rows, coin_id)


def store_candles(
    engine: Engine, coin_id: str, vs_currency: str, candles: Sequence[Candle], run_id: int | None
) -> int:
    """Store one coin's candles (every interval) in one transaction; returns how many were new."""
    rows = [
        (coin_id, vs_currency, c.interval, c.ts, c.open, c.high, c.low, c.close, run_id)
        for c in candles
    ]
    return _store(engine, Ohlc, OHLC_COLUMNS, OHLC_KEY, rows, coin_id)


def price_coverage(engine: Engine, coin_id: str, vs_currency: str) -> Coverage | None:
    """First and last stored price point of a coin, or None when there is none."""
    stmt = select(func.min(PriceHistory.ts), func.max(PriceHistory.ts), func.count()).where(
        PriceHistory.coin_id == coin_id, PriceHistory.vs_currency == vs_currency
    )
    first, last, rows = _query(engine, stmt)[0]
    return Coverage(first, last, rows) if rows else None


def ohlc_coverage(engine: Engine, coin_id: str, vs_currency: str) -> dict[str, Coverage]:
    """First and last stored candle of a coin, per interval."""
    stmt = (
        select(Ohlc.interval, func.min(Ohlc.ts), func.max(Ohlc.ts), func.count())
        .where(Ohlc.coin_id == coin_id, Ohlc.vs_currency == vs_currency)
        .group_by(Ohlc.interval)
    )
    return {
        interval: Coverage(first, last, rows)
        for interval, first, last, rows in _query(engine, stmt)
    }


def _query(engine: Engine, stmt) -> list:
    try:
        with engine.connect() as conn:
            return list(conn.execute(stmt))
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot read the stored history: {first_line(exc)}") from exc


def _store(engine: Engine, model, columns, key, rows: list[tuple], coin_id: str) -> int:
    if not rows:
        return 0
    table = model.__tablename__
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                inserted = _copy_insert(conn, table, columns, key, rows)
            else:
                inserted = _sqlite_insert(conn, model, columns, key, rows)
            _maybe_fault(f"history_before_commit:{table}:{coin_id}")
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"storing {table} of {coin_id} failed and was rolled back: {first_line(exc)}"
        ) from exc
    except Exception as exc:
        if exc.__class__.__module__.startswith("psycopg"):
            raise DatabaseError(
                f"storing {table} of {coin_id} failed and was rolled back: {first_line(exc)}"
            ) from exc
        raise
    return inserted


def _copy_insert(conn: Connection, table: str, columns, key, rows: list[tuple]) -> int:
    """COPY into a staging table dropped at commit, then move the new rows over in one INSERT."""
    quoted = ", ".join(f'"{c}"' for c in columns)
    stage = f"stage_{table}"
    cur = conn.connection.driver_connection.cursor()
    cur.execute(f"CREATE TEMP TABLE {stage} (LIKE {table}) ON COMMIT DROP")
    with cur.copy(f"COPY {stage} ({quoted}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute(
        f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM {stage} "
        f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
    )
    return cur.rowcount


def _sqlite_insert(conn: Connection, model, columns, key, rows: list[tuple]) -> int:
    stmt = sqlite_insert(model).on_conflict_do_nothing(index_elements=list(key))
    before = conn.exec_driver_sql("SELECT total_changes()").scalar_one()
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    for start in range(0, len(records), SQLITE_BATCH_ROWS):
        conn.execute(stmt, records[start : start + SQLITE_BATCH_ROWS])
    return conn.exec_driver_sql("SELECT total_changes()").scalar_one() - before


def _maybe_fault(point: str) -> None:
    """Tests kill the process just before a given commit, e.g.
    CRYPTO_ETL_FAULT=history_before_commit:ohlc:ethereum."""
    if os.environ.get(FAULT_ENV) == point:
        log.warning("fault injection: killing the process at %s", point)
        os.kill(os.getpid(), 9)
