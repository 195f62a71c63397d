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

Request economy: what is stored is not enough to know what is due, since CoinGecko publishes with a
lag (the last stored point may be older than one step although the same range was asked a minute
ago). So every request made is recorded (history_fetches: per coin, table and granularity, the
range asked, when, and the newest point the answer held), and a request for what is newer than the
stored data (a window reaching to now; every /ohlc request) is left out when the same granularity
was asked, from the same start or earlier, less than one step ago, and what that answer held is
still stored: CoinGecko cannot have a newer point at that granularity yet. What is left out is
asked for on the first run after the step has elapsed, from the last stored point, so nothing is
lost. Stretches missing inside the stored data (gaps, deleted rows) are always asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from crypto_etl.coingecko.history import (
    FIVE_MINUTE_REACH,
    HOURLY_WINDOW,
    OHLC_INTERVALS,
    ChartWindow,
    OhlcRequest,
)
from crypto_etl.shaping.history_records import GRANULARITY_SECONDS, Fetch
from crypto_etl.storage.gaps import find_gaps
from crypto_etl.storage.history import last_fetches, ohlc_coverage, price_coverage

TABLES = ("price_history", "ohlc")
OHLC_SECONDS = {interval.name: interval.seconds for interval in OHLC_INTERVALS}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # where `days=max` reaches back to


@dataclass
class CoinPlan:
    coin_id: str
    chart_windows: list[ChartWindow] = field(default_factory=list)
    ohlc_requests: list[OhlcRequest] = field(default_factory=list)
    not_due: int = 0  # requests left out: their granularity's step has not elapsed since asked

    @property
    def requests(self) -> int:
        return len(self.chart_windows) + len(self.ohlc_requests)

    def fetches(
        self, now: datetime, newest: Mapping[str, datetime]
    ) -> tuple[list[Fetch], list[Fetch]]:
        """The requests of this plan as history_fetches records them, made at `now`, with the
        newest point received per granularity: (price points, candles), the latest request per
        granularity."""
        prices = {
            w.granularity: Fetch(
                "price_history", w.granularity, w.start, w.end, now, newest.get(w.granularity)
            )
            for w in self.chart_windows
        }
        candles = {
            r.interval: Fetch(
                "ohlc", r.interval, ohlc_asked_from(r, now), now, now, newest.get(r.interval)
            )
            for r in self.ohlc_requests
        }
        return list(prices.values()), list(candles.values())


def ohlc_asked_from(request: OhlcRequest, now: datetime) -> datetime:
    """The start of what an /ohlc request asks for: `days` back from now."""
    return EPOCH if request.days == "max" else now - timedelta(days=int(request.days))


def asked_within_step(
    last: Fetch | None,
    start: datetime,
    now: datetime,
    step_seconds: int,
    stored_newest: datetime | None,
) -> bool:
    """Whether the same granularity was asked, from `start` or earlier, less than a step ago, and
    the newest point of that answer is still stored (`stored_newest`: the newest stored now)."""
    if last is None or last.start > start:
        return False
    if last.newest_point is not None and (
        stored_newest is None or stored_newest < last.newest_point
    ):
        return False  # what that answer brought is gone: ask again
    return timedelta(0) <= now - last.fetched_at < timedelta(seconds=step_seconds)


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
    """The requests that bring one coin's `tables` up to date from `start` to `now`, less those
    whose granularity's step has not elapsed since they were asked (see the module's docstring)."""
    plan = CoinPlan(coin_id)
    asked = last_fetches(engine, coin_id, vs_currency)
    if "price_history" in tables:
        missing = missing_price_stretches(engine, coin_id, vs_currency, start, now)
        windows = chart_windows(missing, now)
        stored = price_coverage(engine, coin_id, vs_currency) if asked and windows else None
        for window in windows:
            last = asked.get(("price_history", window.granularity))
            step = GRANULARITY_SECONDS[window.granularity]
            newest = None if stored is None else stored.last
            if window.end == now and asked_within_step(last, window.start, now, step, newest):
                plan.not_due += 1
            else:
                plan.chart_windows.append(window)
    if "ohlc" in tables:
        requests = ohlc_requests(engine, coin_id, vs_currency, start, now, any_age, extend_back)
        candles = ohlc_coverage(engine, coin_id, vs_currency) if asked and requests else {}
        for request in requests:
            last = asked.get(("ohlc", request.interval))
            have = candles.get(request.interval)
            newest = None if have is None else have.last
            asked_from = ohlc_asked_from(request, now)
            if asked_within_step(last, asked_from, now, OHLC_SECONDS[request.interval], newest):
                plan.not_due += 1
            else:
                plan.ohlc_requests.append(request)
    return plan
