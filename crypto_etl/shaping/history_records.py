"""The history as the backfill keeps it: price points of /market_chart/range and candles of /ohlc,
as the source parses them (crypto_etl.coingecko.history) and storage stores them
(crypto_etl.storage.history)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The spacings price points come in, by the name recorded in price_history.granularity.
GRANULARITY_SECONDS = {"5m": 300, "1h": 3600, "1d": 86400}


@dataclass(frozen=True)
class PricePoint:
    """One point of /market_chart/range: price, market cap and volume at `ts`."""

    ts: datetime
    price: float | None
    market_cap: float | None
    total_volume: float | None
    granularity: str  # 5m, 1h or 1d: the spacing CoinGecko served this point at


@dataclass(frozen=True)
class Fetch:
    """One history request as asked: the table it fills, the granularity it was asked at, the
    range it covered, when, and the newest point its answer held (kept in history_fetches)."""

    table: str  # price_history or ohlc
    granularity: str  # 5m, 1h, 1d (price points); 30m, 4h, 4d (candles)
    start: datetime
    end: datetime
    fetched_at: datetime
    newest_point: datetime | None = None


@dataclass(frozen=True)
class Candle:
    """One OHLC candle; `ts` is its close time."""

    interval: str  # 30m, 4h or 4d
    ts: datetime
    open: float
    high: float
    low: float
    close: float
