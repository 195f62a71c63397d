"""History backfill: price points from /coins/{id}/market_chart/range into `price_history` and
candles from /coins/{id}/ohlc into `ohlc`, incremental, resumable and recorded in `etl_runs`.

CoinGecko picks the spacing of its answer from the span asked for, so the backfill asks in windows
that get the finest data a plan serves, and records that spacing with every row:

- market_chart/range: a window of at most one day ending now gives 5-minute points; any other
  window of up to 90 days gives hourly points (longer ones would give daily points, never asked
  for). So: the last day in 5-minute points, everything older in hourly windows of 90 days.
- ohlc (only "the last N days", N in 1, 7, 14, 30, 90, 180, 365): N=1 gives 30-minute candles,
  N up to 30 four-hour candles, more four-day candles. So: 30-minute candles for the last day,
  4-hour candles for the last 30 days, 4-day candles beyond, each with the smallest N that covers
  what is missing.

What to fetch is worked out from what is stored (dlt's "last value" incremental, kept in the data
itself): per coin and table only the stretches after the last stored point, before the first one
(when more days are asked for than are stored) and, for price points, the gaps in between. A
re-run fetches nothing that is not due. Each coin's rows of one table commit together, so an
interrupted backfill resumes where it stopped. One coin failing does not stop the others.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from sqlalchemy import Engine, and_, func, select

from crypto_etl.errors import CoinGeckoError, ConfigError
from crypto_etl.settings import Settings
from crypto_etl.storage.gaps import GRANULARITY_SECONDS, find_gaps
from crypto_etl.storage.history import (
    Candle,
    PricePoint,
    ohlc_coverage,
    price_coverage,
    store_candles,
    store_price_points,
)
from crypto_etl.storage.runs import finish_run, start_run, utcnow
from crypto_etl.storage.schema import MarketSnapshot

log = logging.getLogger(__name__)

# Tests pin "now" (ISO 8601 with a timezone) so that windows and due candles are deterministic.
NOW_ENV = "CRYPTO_ETL_NOW"
FIVE_MINUTE_REACH = timedelta(days=1)  # 5-minute points: a window of up to a day ending now
HOURLY_WINDOW = timedelta(days=90)  # hourly points: any window of up to 90 days
FREE_PLAN_DAYS = 365  # keyless and demo plans reach this far back
FREE_PLAN_MARGIN = timedelta(hours=1)  # keeps `from` inside the limit as CoinGecko's clock sees it
RUN_OHLC_DAYS = 90  # the span `run` and `schedule` keep candles current over
TABLES = ("price_history", "ohlc")


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


@dataclass
class CoinPlan:
    coin_id: str
    chart_windows: list[ChartWindow] = field(default_factory=list)
    ohlc_requests: list[OhlcRequest] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.chart_windows) + len(self.ohlc_requests)


@dataclass
class CoinResult:
    coin_id: str
    requests: int = 0
    points: int = 0
    points_new: int = 0
    candles: int = 0
    candles_new: int = 0
    error: str | None = None

    def describe(self) -> str:
        if self.error:
            return f"{self.coin_id}: FAILED after {self.requests} request(s): {self.error}"
        return (
            f"{self.coin_id}: {self.points} price points ({self.points_new} new), "
            f"{self.candles} candles ({self.candles_new} new), {self.requests} request(s)"
        )


@dataclass
class BackfillReport:
    run_id: int | None
    status: str
    start: datetime
    now: datetime
    coins: list[CoinResult]

    @property
    def failed(self) -> list[CoinResult]:
        return [c for c in self.coins if c.error]

    def total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.coins)


# -- time and plan limits ------------------------------------------------------------------------
def history_now() -> datetime:
    """The current UTC time, or the time pinned by CRYPTO_ETL_NOW (tests)."""
    pinned = os.environ.get(NOW_ENV, "").strip()
    if not pinned:
        return utcnow()
    try:
        moment = datetime.fromisoformat(pinned.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{NOW_ENV} must be an ISO 8601 time, got {pinned!r}") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{NOW_ENV} needs a timezone, e.g. 2025-10-28T08:10:00Z")
    return moment.astimezone(UTC)


def reaches_past_a_year(settings: Settings) -> bool:
    """Only paid (pro) plans serve history older than 365 days."""
    return settings.coingecko_api_plan == "pro"


def backfill_start(days: int, now: datetime, settings: Settings) -> tuple[datetime, bool]:
    """Where a backfill of `days` starts, and whether the plan's limit cut it short."""
    wanted = now - timedelta(days=days)
    if reaches_past_a_year(settings):
        return wanted, False
    earliest = now - timedelta(days=FREE_PLAN_DAYS) + FREE_PLAN_MARGIN
    return (earliest, True) if wanted < earliest else (wanted, False)


# -- planning --------------------------------------------------------------------------------
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
    plan = CoinPlan(coin_id)
    if "price_history" in tables:
        missing = missing_price_stretches(engine, coin_id, vs_currency, start, now)
        plan.chart_windows = chart_windows(missing, now)
    if "ohlc" in tables:
        plan.ohlc_requests = ohlc_requests(
            engine, coin_id, vs_currency, start, now, any_age, extend_back
        )
    return plan


# -- fetching and parsing --------------------------------------------------------------------------
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


def execute_plan(
    engine: Engine,
    client,
    plan: CoinPlan,
    vs_currency: str,
    now: datetime,
    run_id: int | None,
) -> CoinResult:
    """Fetch and store one coin. Price points commit together, then candles; a CoinGecko error
    ends the coin (what was committed before stays) and is returned, not raised."""
    result = CoinResult(plan.coin_id)
    coin = plan.coin_id
    try:
        if plan.chart_windows:
            points: dict[datetime, PricePoint] = {}
            for window in plan.chart_windows:
                result.requests += 1
                body = client.fetch_market_chart_range(coin, vs_currency, window.start, window.end)
                for point in parse_chart(body, window):
                    kept = points.get(point.ts)
                    if kept is None or _finer(point.granularity, kept.granularity):
                        points[point.ts] = point
            result.points = len(points)
            result.points_new = store_price_points(
                engine, coin, vs_currency, list(points.values()), run_id
            )
        if plan.ohlc_requests:
            candles: dict[tuple[str, datetime], Candle] = {}
            for request in plan.ohlc_requests:
                result.requests += 1
                body = client.fetch_ohlc(coin, vs_currency, request.days)
                for candle in parse_candles(body, request, now):
                    candles[(candle.interval, candle.ts)] = candle
            result.candles = len(candles)
            result.candles_new = store_candles(
                engine, coin, vs_currency, list(candles.values()), run_id
            )
    except CoinGeckoError as exc:
        result.error = str(exc)
    return result


def _finer(granularity: str, than: str) -> bool:
    return GRANULARITY_SECONDS.get(granularity, 0) < GRANULARITY_SECONDS.get(than, 0)


# -- runs ------------------------------------------------------------------------------------------
def backfill(
    engine: Engine,
    client,
    settings: Settings,
    coins: Sequence[str],
    vs_currency: str,
    start: datetime,
    now: datetime,
    on_coin: Callable[[CoinResult], None] = lambda result: None,
    command: str = "backfill",
    tables: Sequence[str] = TABLES,
    should_stop: Callable[[], bool] = lambda: False,
    extend_back: bool = True,
) -> BackfillReport:
    """Bring price points and candles of `coins` up to date from `start` to `now`, one coin at a
    time, recorded as one run in etl_runs (success, partial when some coins failed, failed when
    all did, cancelled when interrupted)."""
    any_age = reaches_past_a_year(settings)
    run_id = start_run(
        engine, command, vs_currency, source=f"{len(coins)} coin(s) since {start.isoformat()}"
    )
    report = BackfillReport(run_id, "running", start, now, [])
    try:
        for number, coin in enumerate(coins, 1):
            if should_stop():
                break
            plan = plan_coin(engine, coin, vs_currency, start, now, any_age, tables, extend_back)
            result = execute_plan(engine, client, plan, vs_currency, now, run_id)
            report.coins.append(result)
            level = logging.WARNING if result.error else logging.INFO
            log.log(level, "%s [%d/%d] %s", command, number, len(coins), result.describe())
            on_coin(result)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        report.status = "cancelled" if interrupted else "failed"
        _finish(engine, report, "interrupted" if interrupted else _first_line(exc))
        raise
    stopped = len(report.coins) < len(coins)
    if stopped:
        report.status = "cancelled"
    elif report.failed:
        report.status = "failed" if len(report.failed) == len(report.coins) else "partial"
    else:
        report.status = "success"
    _finish(engine, report, "stopped" if stopped else None)
    return report


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _finish(engine: Engine, report: BackfillReport, error: str | None) -> None:
    failed = report.failed
    if failed and error is None:
        error = f"{len(failed)} coin(s) failed: " + "; ".join(
            f"{c.coin_id}: {c.error}" for c in failed
        )
    received = report.total("points") + report.total("candles")
    loaded = report.total("points_new") + report.total("candles_new")
    finish_run(
        engine,
        report.run_id,
        report.status,
        rows_extracted=received,
        rows_loaded=loaded,
        rows_skipped=received - loaded,
        error_message=None if error is None else error[:2000],
    )


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
    with engine.connect() as conn:
        return list(conn.scalars(stmt))


def refresh_ohlc(
    engine: Engine,
    client,
    settings: Settings,
    vs_currency: str,
    now: datetime,
    should_stop: Callable[[], bool] = lambda: False,
) -> BackfillReport | None:
    """Keep candles of the top OHLC_TOP_N coins current (after a snapshot run): only intervals
    whose next candle has closed are fetched, so most runs make no request at all. Recorded as
    its own `ohlc` run when it fetched anything; None when nothing was due."""
    if settings.ohlc_top_n < 1:
        return None
    fresh_since = now - timedelta(seconds=settings.stale_after_seconds)
    coins = top_coins(engine, vs_currency, settings.ohlc_top_n, fresh_since)
    start = now - timedelta(days=RUN_OHLC_DAYS)
    any_age = reaches_past_a_year(settings)
    due = [
        coin
        for coin in coins
        if plan_coin(engine, coin, vs_currency, start, now, any_age, ("ohlc",), False).requests
    ]
    if not due:
        log.info("ohlc: candles of the top %d coins are current", len(coins))
        return None
    return backfill(
        engine,
        client,
        settings,
        due,
        vs_currency,
        start,
        now,
        command="ohlc",
        tables=("ohlc",),
        should_stop=should_stop,
        extend_back=False,
    )
