"""Planning a backfill: which CoinGecko requests bring one coin's stored history up to date.

CoinGecko picks the spacing of its answer from the span asked for (crypto_etl.coingecko.history),
so the plan asks in windows that get the finest data a plan serves:

- price points: the last day in 5-minute points, everything older in hourly windows of 90 days;
- candles: 30-minute candles for the last day, 4-hour candles for the last 30 days, 4-day candles
  beyond, each with the smallest `days` that covers what is missing.

What to fetch is worked out from what is stored (dlt's "last value" incremental, kept in the data
itself): per coin and table only the stretches after the last stored point, before the first one
(when more days are asked for than are stored) and, for price points, the gaps in between. A
re-run plans nothing that is not due.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from crypto_etl.coingecko.history import (
    FIVE_MINUTE_REACH,
    HOURLY_WINDOW,
    OHLC_INTERVALS,
    ChartWindow,
    OhlcRequest,
)
from crypto_etl.shaping.history_records import GRANULARITY_SECONDS
from crypto_etl.storage.gaps import find_gaps
from crypto_etl.storage.history import ohlc_coverage, price_coverage

TABLES = ("price_history", "ohlc")


@dataclass
class CoinPlan:
    coin_id: str
    chart_windows: list[ChartWindow] = field(default_factory=list)
    ohlc_requests: list[OhlcRequest] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.chart_windows) + len(self.ohlc_requests)


def chart_windows(missing: Sequence[tuple[datetime, datetime]], now: datetime) -> list[ChartWindow]:
    """Requests covering the missing stretches with the finest points CoinGecko serves: one
    5-minute window ending now for whatever lies in the last day, hourly windows of up to 90 days
    (neighbouring stretches merged) for the rest. Oldest first."""
    recent = now - FIVE_MINUTE_REACH
    five_minute_from: datetime | None = None
    older: list[tuple[datetime, datetime]] = []
    for start, end in sorted(missing):
        if end > recent:
            begin = max(start, recent)
            five_minute_from = begin if five_minute_from is None else min(five_minute_from, begin)
        if start < recent:
            older.append((start, min(end, recent)))
    windows: list[ChartWindow] = []
    span: tuple[datetime, datetime] | None = None
    for start, end in older:
        if span is not None and end - span[0] <= HOURLY_WINDOW:
            span = (span[0], max(span[1], end))
            continue
        if span is not None:
            windows.extend(_hourly(*span))
        span = (start, end)
    if span is not None:
        windows.extend(_hourly(*span))
    if five_minute_from is not None:
        windows.append(ChartWindow(five_minute_from, now, "5m"))
    return windows


def _hourly(start: datetime, end: datetime) -> list[ChartWindow]:
    windows = []
    while start < end:
        stop = min(end, start + HOURLY_WINDOW)
        windows.append(ChartWindow(start, stop, "1h"))
        start = stop
    return windows


def _expected_spacing(moment: datetime, now: datetime) -> timedelta:
    """The spacing CoinGecko serves at `moment`: 5 minutes in the last day, hourly before."""
    granularity = "5m" if moment >= now - FIVE_MINUTE_REACH else "1h"
    return timedelta(seconds=GRANULARITY_SECONDS[granularity])


def missing_price_stretches(
    engine: Engine, coin_id: str, vs_currency: str, start: datetime, now: datetime
) -> list[tuple[datetime, datetime]]:
    """What `price_history` lacks for a coin between `start` and `now`: before the first stored
    point, the gaps, and after the last one."""
    coverage = price_coverage(engine, coin_id, vs_currency)
    if coverage is None or coverage.last < start:
        return [(start, now)]
    second = timedelta(seconds=1)
    missing = []
    if coverage.first - start > _expected_spacing(coverage.first, now):
        missing.append((start, coverage.first - second))
    for gap in find_gaps(engine, "price_history", vs_currency, [coin_id], since=start):
        missing.append((gap.after + second, gap.before - second))
    if now - coverage.last >= _expected_spacing(coverage.last, now):
        missing.append((coverage.last + second, now))
    return missing


def ohlc_requests(
    engine: Engine,
    coin_id: str,
    vs_currency: str,
    start: datetime,
    now: datetime,
    any_age: bool,
    extend_back: bool = True,
) -> list[OhlcRequest]:
    """The /ohlc requests that bring each interval's candles up to date back to `start`; an
    interval whose next candle has not closed yet is not asked for. Without `extend_back`, only
    candles after the last stored one are looked for (a coin younger than the span would
    otherwise be asked for its missing past on every run)."""
    stored = ohlc_coverage(engine, coin_id, vs_currency)
    requests = []
    finer_reach = timedelta(0)
    for interval in OHLC_INTERVALS:
        if now - start <= finer_reach:
            break  # a finer interval already covers the whole span
        finer_reach = interval.reach or finer_reach
        since = start if interval.reach is None else max(start, now - interval.reach)
        have = stored.get(interval.name)
        step = timedelta(seconds=interval.seconds)
        head_missing = extend_back and have is not None and have.first - since > step
        if have is None or have.last < since or head_missing:
            needed_from = since
        elif now - have.last >= step:
            needed_from = have.last
        else:
            continue
        days_needed = math.ceil((now - needed_from) / timedelta(days=1))
        fitting = [d for d in interval.days_options if d >= days_needed]
        if fitting:
            days: int | str = fitting[0]
        elif interval.reach is None and any_age:
            days = "max"
        else:
            days = interval.days_options[-1]
        requests.append(OhlcRequest(interval.name, days, since))
    return requests


def plan_coin(
    engine: Engine,
    coin_id: str,
    vs_currency: str,
    start: datetime,
    now: datetime,
    any_age: bool,
    tables: Sequence[str] = TABLES,
    extend_back: bool = True,
) -> CoinPlan:
    """The requests that bring one coin's `tables` up to date from `start` to `now`."""
    plan = CoinPlan(coin_id)
    if "price_history" in tables:
        missing = missing_price_stretches(engine, coin_id, vs_currency, start, now)
        plan.chart_windows = chart_windows(missing, now)
    if "ohlc" in tables:
        plan.ohlc_requests = ohlc_requests(
            engine, coin_id, vs_currency, start, now, any_age, extend_back
        )
    return plan
