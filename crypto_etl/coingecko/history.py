"""CoinGecko's history endpoints: what they serve, the requests the backfill makes, and the parsing
of their answers into price points and candles.

What CoinGecko serves (its granularity rules):

- /market_chart/range picks the spacing from the span asked for: a window of at most one day
  ending now gives 5-minute points; any other window of up to 90 days gives hourly points; longer
  ones give daily points.
- /ohlc only serves "the last N days", N in 1, 7, 14, 30, 90, 180, 365 (and "max" on paid plans):
  N=1 gives 30-minute candles, N up to 30 four-hour candles, more four-day candles.
- Keyless and demo plans reach 365 days back; pro plans reach further.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from crypto_etl.settings import Settings
from crypto_etl.shaping.history_records import Candle, PricePoint

log = logging.getLogger(__name__)

FIVE_MINUTE_REACH = timedelta(days=1)  # 5-minute points: a window of up to a day ending now
HOURLY_WINDOW = timedelta(days=90)  # hourly points: any window of up to 90 days
FREE_PLAN_DAYS = 365  # keyless and demo plans reach this far back
FREE_PLAN_MARGIN = timedelta(hours=1)  # keeps `from` inside the limit as CoinGecko's clock sees it


@dataclass(frozen=True)
class OhlcInterval:
    name: str
    seconds: int
    days_options: tuple[int, ...]  # values of `days` for which CoinGecko answers in this interval
    reach: timedelta | None  # how far back candles of this interval are fetched


OHLC_INTERVALS = (
    OhlcInterval("30m", 30 * 60, (1,), timedelta(days=1)),
    OhlcInterval("4h", 4 * 3600, (7, 14, 30), timedelta(days=30)),
    OhlcInterval("4d", 4 * 86400, (90, 180, 365), None),
)


@dataclass(frozen=True)
class ChartWindow:
    """One /market_chart/range request and the spacing CoinGecko answers it with."""

    start: datetime
    end: datetime
    granularity: str


@dataclass(frozen=True)
class OhlcRequest:
    """One /ohlc request: `days` back from now; candles before `since` are not kept."""

    interval: str
    days: int | str
    since: datetime


# -- plan limits -----------------------------------------------------------------------------------
def reaches_past_a_year(settings: Settings) -> bool:
    """Only paid (pro) plans serve history older than 365 days."""
    return settings.coingecko_api_plan == "pro"


def earliest_served(now: datetime, settings: Settings) -> datetime | None:
    """The oldest moment the plan serves history for (keyless and demo: 365 days back, less a
    margin for CoinGecko's clock); None when the plan has no such limit."""
    if reaches_past_a_year(settings):
        return None
    return now - timedelta(days=FREE_PLAN_DAYS) + FREE_PLAN_MARGIN


def backfill_start(days: int, now: datetime, settings: Settings) -> tuple[datetime, bool]:
    """Where a backfill of `days` starts, and whether the plan's limit cut it short."""
    wanted = now - timedelta(days=days)
    earliest = earliest_served(now, settings)
    if earliest is not None and wanted < earliest:
        return earliest, True
    return wanted, False


# -- parsing ------------------------------------------------------------------------------------
def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _moment(ms) -> datetime | None:
    number = _number(ms)
    return None if number is None else datetime.fromtimestamp(number / 1000, UTC)


def measured_granularity(times: Sequence[datetime], expected: str) -> str:
    """The spacing of an answer, measured (median step, nearest of 5m/1h/1d); the expected one
    when there are too few points to tell."""
    if len(times) < 3:
        return expected
    step = statistics.median((b - a).total_seconds() for a, b in pairwise(times))
    # Nearest on a log scale: the boundaries are the geometric means of neighbouring spacings.
    if step <= math.sqrt(300 * 3600):
        return "5m"
    return "1h" if step <= math.sqrt(3600 * 86400) else "1d"


def parse_chart(body: dict, window: ChartWindow) -> list[PricePoint]:
    """Points of one /market_chart/range answer inside the window, merged by time."""
    values: dict[datetime, dict[str, float | None]] = {}
    skipped = 0
    for key, name in (
        ("prices", "price"),
        ("market_caps", "market_cap"),
        ("total_volumes", "total_volume"),
    ):
        for entry in body.get(key) or []:
            moment = _moment(entry[0]) if isinstance(entry, list) and len(entry) >= 2 else None
            if moment is None:
                skipped += 1
                continue
            if window.start <= moment <= window.end:
                values.setdefault(moment, {})[name] = _number(entry[1])
    if skipped:
        log.warning("skipped %d malformed chart entries", skipped)
    times = sorted(values)
    granularity = measured_granularity(times, window.granularity)
    if granularity != window.granularity:
        log.info(
            "CoinGecko answered %s in %s steps, not %s", window, granularity, window.granularity
        )
    return [
        PricePoint(
            ts,
            values[ts].get("price"),
            values[ts].get("market_cap"),
            values[ts].get("total_volume"),
            granularity,
        )
        for ts in times
    ]


def parse_candles(body: list, request: OhlcRequest, now: datetime) -> list[Candle]:
    """Closed candles of one /ohlc answer at or after `request.since`."""
    candles = []
    for entry in body:
        if not isinstance(entry, list) or len(entry) < 5:
            continue
        moment = _moment(entry[0])
        prices = [_number(v) for v in entry[1:5]]
        if moment is None or None in prices:
            continue
        if request.since <= moment <= now:  # a candle closing after now is still open
            candles.append(Candle(request.interval, moment, *prices))
    return candles
