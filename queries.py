"""The REST API's SQL: read-only queries over the pipeline's tables, the same on SQLite and
PostgreSQL. Functions take a Session and return plain rows (dicts) or DataFrames."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, get_args

import pandas as pd
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

import analytics
from models import Coin, EtlRun, MarketSnapshot, Ohlc, PriceHistory

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

    The newest time is looked up per coin (one index probe each, through the primary key), then
    joined back by primary key: fast on millions of rows, where a GROUP BY would read them all.
    """
    inner = aliased(MarketSnapshot)
    newest_time = (
        select(func.max(inner.last_updated))
        .where(inner.coin_id == Coin.id, inner.vs_currency == vs_currency)
        .correlate(Coin)
        .scalar_subquery()
    )
    coins = select(Coin.id.label("coin_id"), newest_time.label("newest"))
    if q:
        pattern = _like(q)
        coins = coins.where(
            or_(
                func.lower(Coin.id).like(pattern, escape="\\"),
                func.lower(Coin.symbol).like(pattern, escape="\\"),
                func.lower(Coin.name).like(pattern, escape="\\"),
            )
        )
    newest = coins.subquery("newest")
    return (
        select(*SNAPSHOT_COLUMNS, Coin.symbol, Coin.name, Coin.image)
        .select_from(newest)
        .join(
            MarketSnapshot,
            and_(
                MarketSnapshot.coin_id == newest.c.coin_id,
                MarketSnapshot.vs_currency == vs_currency,
                MarketSnapshot.last_updated == newest.c.newest,
            ),
        )
        .join(Coin, Coin.id == newest.c.coin_id)
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


def _frame(rows: Sequence[Any], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    if "ts" in frame:
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def history_points(
    session: Session,
    coin_ids: Sequence[str],
    vs_currency: str,
    start: datetime,
    end: datetime,
) -> dict[str, pd.DataFrame]:
    """Price points of each coin in [start, end] from market snapshots and from the backfilled
    price_history, merged (snapshots win on equal timestamps). Coins without points are absent."""
    s, h = MarketSnapshot, PriceHistory
    columns = ("coin_id", *analytics.POINT_COLUMNS)
    snapshots = _frame(
        session.execute(
            select(s.coin_id, s.last_updated, s.current_price, s.market_cap, s.total_volume).where(
                s.coin_id.in_(coin_ids),
                s.vs_currency == vs_currency,
                s.last_updated.between(start, end),
            )
        ).all(),
        columns,
    )
    backfill = _frame(
        session.execute(
            select(h.coin_id, h.ts, h.price, h.market_cap, h.total_volume).where(
                h.coin_id.in_(coin_ids), h.vs_currency == vs_currency, h.ts.between(start, end)
            )
        ).all(),
        columns,
    )
    result = {}
    for coin_id in coin_ids:
        parts = [
            f[f["coin_id"] == coin_id] if len(coin_ids) > 1 else f for f in (snapshots, backfill)
        ]
        points = analytics.combine_points(*parts)
        if not points.empty:
            result[coin_id] = points
    return result


def ohlc_candles(
    session: Session, coin_id: str, vs_currency: str, interval: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """CoinGecko's stored candles of one interval whose close time lies in [start, end]."""
    stmt = (
        select(Ohlc.ts, Ohlc.open, Ohlc.high, Ohlc.low, Ohlc.close)
        .where(
            Ohlc.coin_id == coin_id,
            Ohlc.vs_currency == vs_currency,
            Ohlc.interval == interval,
            Ohlc.ts.between(start, end),
        )
        .order_by(Ohlc.ts)
    )
    return _frame(session.execute(stmt).all(), analytics.CANDLE_COLUMNS)


def snapshot_24h_rows(
    session: Session, coin_id: str, vs_currency: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """The snapshot fields a 24h candle is made of, for analytics.candles_from_snapshots."""
    s = MarketSnapshot
    columns = ("last_updated", "current_price", "price_change_24h", "high_24h", "low_24h")
    stmt = select(*(getattr(s, c) for c in columns)).where(
        s.coin_id == coin_id, s.vs_currency == vs_currency, s.last_updated.between(start, end)
    )
    return pd.DataFrame.from_records(session.execute(stmt).all(), columns=list(columns))


def recent_runs(
    session: Session,
    *,
    status: str | None = None,
    command: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[list[EtlRun], int]:
    """Pipeline runs, newest first, with the number matching the filters."""
    filters = []
    if status:
        filters.append(EtlRun.status == status)
    if command:
        filters.append(EtlRun.command == command)
    count = session.execute(select(func.count()).select_from(EtlRun).where(*filters)).scalar_one()
    stmt = select(EtlRun).where(*filters).order_by(EtlRun.id.desc()).limit(limit).offset(offset)
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
