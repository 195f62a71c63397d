"""Storing history: price points into `price_history` and candles into `ohlc`, and what is stored.

Each call stores one coin's rows for one table in one transaction, so an interrupted backfill
leaves every coin and table either complete or untouched. Rows already stored are kept as they
are: the rows go through the one bulk writer (crypto_etl.storage.bulk), which appends and skips
existing keys, so every store is idempotent. The requests that fetched them are recorded in
`history_fetches` in the same transaction (one row per coin, table and granularity: the latest).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.errors import DatabaseError, first_line
from crypto_etl.shaping.history_records import Candle, Fetch, PricePoint
from crypto_etl.storage.bulk import Rows, append_skip_existing, write_transaction
from crypto_etl.storage.schema import HistoryFetch, MarketSnapshot, Ohlc, PriceHistory


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
    engine: Engine,
    coin_id: str,
    vs_currency: str,
    points: Sequence[PricePoint],
    run_id: int | None,
    fetches: Sequence[Fetch] = (),
) -> int:
    """Store one coin's points, and the requests that fetched them, in one transaction; returns
    how many points were new."""
    rows = [
        (coin_id, vs_currency, p.ts, p.price, p.market_cap, p.total_volume, p.granularity, run_id)
        for p in points
    ]
    return _store(
        engine, PriceHistory, Rows(PRICE_COLUMNS, rows), (coin_id, vs_currency), fetches, run_id
    )


def store_candles(
    engine: Engine,
    coin_id: str,
    vs_currency: str,
    candles: Sequence[Candle],
    run_id: int | None,
    fetches: Sequence[Fetch] = (),
) -> int:
    """Store one coin's candles (every interval), and the requests that fetched them, in one
    transaction; returns how many candles were new."""
    rows = [
        (coin_id, vs_currency, c.interval, c.ts, c.open, c.high, c.low, c.close, run_id)
        for c in candles
    ]
    return _store(engine, Ohlc, Rows(OHLC_COLUMNS, rows), (coin_id, vs_currency), fetches, run_id)


def _store(
    engine: Engine,
    model,
    rows: Rows,
    coin: tuple[str, str],
    fetches: Sequence[Fetch] = (),
    run_id: int | None = None,
) -> int:
    coin_id = coin[0]
    if not rows.values and not fetches:
        return 0
    table = model.__tablename__
    with write_transaction(engine, f"storing {table} of {coin_id}") as conn:
        new = append_skip_existing(conn, model.__table__, rows) if rows.values else 0
        _record_fetches(conn, coin, fetches, run_id)
        return new


def _record_fetches(
    conn: Connection, coin: tuple[str, str], fetches: Sequence[Fetch], run_id: int | None
) -> None:
    """Keep the latest request per coin, table and granularity in history_fetches."""
    if not fetches:
        return
    coin_id, vs_currency = coin
    values = [
        {
            "coin_id": coin_id,
            "vs_currency": vs_currency,
            "table_name": f.table,
            "granularity": f.granularity,
            "range_start": f.start,
            "range_end": f.end,
            "fetched_at": f.fetched_at,
            "newest_point": f.newest_point,
            "run_id": run_id,
        }
        for f in fetches
    ]
    insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(HistoryFetch)
    stmt = stmt.on_conflict_do_update(
        index_elements=["coin_id", "vs_currency", "table_name", "granularity"],
        set_={
            name: stmt.excluded[name]
            for name in ("range_start", "range_end", "fetched_at", "newest_point", "run_id")
        },
    )
    conn.execute(stmt, values)


def last_fetches(engine: Engine, coin_id: str, vs_currency: str) -> dict[tuple[str, str], Fetch]:
    """The latest request per (table, granularity) for a coin."""
    stmt = select(
        HistoryFetch.table_name,
        HistoryFetch.granularity,
        HistoryFetch.range_start,
        HistoryFetch.range_end,
        HistoryFetch.fetched_at,
        HistoryFetch.newest_point,
    ).where(HistoryFetch.coin_id == coin_id, HistoryFetch.vs_currency == vs_currency)
    return {(row[0], row[1]): Fetch(*row) for row in _query(engine, stmt)}


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
