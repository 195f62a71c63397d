"""Storing history: price points into `price_history` and candles into `ohlc`, and what is stored.

Each call stores one coin's rows for one table in one transaction, so an interrupted backfill
leaves every coin and table either complete or untouched. Rows already stored are kept as they
are: the rows go through the one bulk writer (crypto_etl.storage.bulk), which appends and skips
existing keys, so every store is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, func, select
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.errors import DatabaseError, first_line
from crypto_etl.shaping.history_records import Candle, PricePoint
from crypto_etl.storage.bulk import Rows, append_skip_existing, write_transaction
from crypto_etl.storage.schema import MarketSnapshot, Ohlc, PriceHistory


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


def store_price_points(
    engine: Engine, coin_id: str, vs_currency: str, points: Sequence[PricePoint], run_id: int | None
) -> int:
    """Store one coin's points in one transaction; returns how many were new."""
    rows = [
        (coin_id, vs_currency, p.ts, p.price, p.market_cap, p.total_volume, p.granularity, run_id)
        for p in points
    ]
    return _store(engine, PriceHistory, Rows(PRICE_COLUMNS, rows), coin_id)


def store_candles(
    engine: Engine, coin_id: str, vs_currency: str, candles: Sequence[Candle], run_id: int | None
) -> int:
    """Store one coin's candles (every interval) in one transaction; returns how many were new."""
    rows = [
        (coin_id, vs_currency, c.interval, c.ts, c.open, c.high, c.low, c.close, run_id)
        for c in candles
    ]
    return _store(engine, Ohlc, Rows(OHLC_COLUMNS, rows), coin_id)


def _store(engine: Engine, model, rows: Rows, coin_id: str) -> int:
    if not rows.values:
        return 0
    table = model.__tablename__
    with write_transaction(engine, f"storing {table} of {coin_id}") as conn:
        return append_skip_existing(conn, model.__table__, rows)


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


def top_coins(engine: Engine, vs_currency: str, limit: int, fresh_since: datetime) -> list[str]:
    """The `limit` coins ranked highest in their latest snapshot, among coins snapshotted since
    `fresh_since` (so a coin that left the list long ago does not count)."""
    latest = (
        select(MarketSnapshot.coin_id, func.max(MarketSnapshot.last_updated).label("last"))
        .where(MarketSnapshot.vs_currency == vs_currency)
        .group_by(MarketSnapshot.coin_id)
        .subquery()
    )
    stmt = (
        select(MarketSnapshot.coin_id)
        .join(
            latest,
            and_(
                MarketSnapshot.coin_id == latest.c.coin_id,
                MarketSnapshot.last_updated == latest.c.last,
            ),
        )
        .where(
            MarketSnapshot.vs_currency == vs_currency,
            MarketSnapshot.market_cap_rank.is_not(None),
            MarketSnapshot.last_updated >= fresh_since,
        )
        .order_by(MarketSnapshot.market_cap_rank, MarketSnapshot.coin_id)
        .limit(limit)
    )
    return [coin for (coin,) in _query(engine, stmt)]


def _query(engine: Engine, stmt) -> list:
    try:
        with engine.connect() as conn:
            return list(conn.execute(stmt))
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot read the stored history: {first_line(exc)}") from exc
