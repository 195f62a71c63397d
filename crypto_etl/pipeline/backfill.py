"""History backfill: price points from /coins/{id}/market_chart/range into `price_history` and
candles from /coins/{id}/ohlc into `ohlc`, incremental, resumable and recorded in `etl_runs`.

Per coin the plan (crypto_etl.pipeline.backfill_plan) says which requests are due; the answers are
parsed (crypto_etl.coingecko.history) and each coin's rows of one table commit together through the
bulk writer, so an interrupted backfill resumes where it stopped. One coin failing does not stop
the others. `refresh_ohlc` is the same machinery after each snapshot run: it keeps the candles of
the top coins current.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from crypto_etl.clock import utcnow
from crypto_etl.coingecko.client import CoinGeckoClient
from crypto_etl.coingecko.history import (
    parse_candles,
    parse_chart,
    reaches_past_a_year,
)
from crypto_etl.errors import CoinGeckoError, first_line
from crypto_etl.pipeline.alerting import check_alerts
from crypto_etl.pipeline.backfill_plan import TABLES, CoinPlan, plan_coin
from crypto_etl.pipeline.journal import recorded_run
from crypto_etl.pipeline.scheduler import sigterm_interrupts
from crypto_etl.pipeline.source import make_client
from crypto_etl.run_status import RunStatus
from crypto_etl.settings import Settings
from crypto_etl.shaping.history_records import GRANULARITY_SECONDS, Candle, PricePoint
from crypto_etl.storage.history import store_candles, store_price_points, top_coins

log = logging.getLogger(__name__)

RUN_OHLC_DAYS = 90  # the span `run` and `schedule` keep candles current over


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
    status: RunStatus
    start: datetime
    now: datetime
    coins: list[CoinResult]

    @property
    def failed(self) -> list[CoinResult]:
        return [c for c in self.coins if c.error]

    def total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.coins)


def execute_plan(
    engine: Engine,
    client: CoinGeckoClient,
    plan: CoinPlan,
    vs_currency: str,
    now: datetime,
    run_id: int | None,
) -> CoinResult:
    """Fetch and store one coin. Price points commit together, then candles; a CoinGecko error
    ends the coin (what was committed before stays) and is returned, not raised."""
    result = CoinResult(plan.coin_id)
    coin = plan.coin_id
    newest: dict[str, datetime] = {}  # the newest point received, per granularity
    try:
        if plan.chart_windows:
            points: dict[datetime, PricePoint] = {}
            for window in plan.chart_windows:
                result.requests += 1
                body = client.fetch_market_chart_range(coin, vs_currency, window.start, window.end)
                for point in parse_chart(body, window):
                    newest[window.granularity] = max(
                        newest.get(window.granularity, point.ts), point.ts
                    )
                    kept = points.get(point.ts)
                    if kept is None or _finer(point.granularity, kept.granularity):
                        points[point.ts] = point
            result.points = len(points)
            price_fetches, _ = plan.fetches(now, newest)
            result.points_new = store_price_points(
                engine, coin, vs_currency, list(points.values()), run_id, price_fetches
            )
        if plan.ohlc_requests:
            candles: dict[tuple[str, datetime], Candle] = {}
            for request in plan.ohlc_requests:
                result.requests += 1
                body = client.fetch_ohlc(coin, vs_currency, request.days)
                for candle in parse_candles(body, request, now):
                    candles[(candle.interval, candle.ts)] = candle
                    newest[candle.interval] = max(newest.get(candle.interval, candle.ts), candle.ts)
            result.candles = len(candles)
            _, candle_fetches = plan.fetches(now, newest)
            result.candles_new = store_candles(
                engine, coin, vs_currency, list(candles.values()), run_id, candle_fetches
            )
    except CoinGeckoError as exc:
        result.error = str(exc)
    return result


def _finer(granularity: str, than: str) -> bool:
    return GRANULARITY_SECONDS.get(granularity, 0) < GRANULARITY_SECONDS.get(than, 0)


def backfill(
    engine: Engine,
    client: CoinGeckoClient,
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
    source = f"{len(coins)} coin(s) since {start.isoformat()}"
    with recorded_run(engine, command, vs_currency, source, settings) as run:
        report = BackfillReport(run.id, RunStatus.RUNNING, start, now, [])
        for number, coin in enumerate(coins, 1):
            if should_stop():
                break
            plan = plan_coin(engine, coin, vs_currency, start, now, any_age, tables, extend_back)
            result = execute_plan(engine, client, plan, vs_currency, now, run.id)
            report.coins.append(result)
            _count(run, report)
            level = logging.WARNING if result.error else logging.INFO
            log.log(level, "%s [%d/%d] %s", command, number, len(coins), result.describe())
            on_coin(result)
        if len(report.coins) < len(coins):
            report.status = RunStatus.CANCELLED
            run.error_message = "stopped"
        elif report.failed:
            all_failed = len(report.failed) == len(report.coins)
            report.status = RunStatus.FAILED if all_failed else RunStatus.PARTIAL
        else:
            report.status = RunStatus.SUCCESS
        run.status = report.status
        if report.failed and run.error_message is None:
            run.error_message = f"{len(report.failed)} coin(s) failed: " + "; ".join(
                f"{c.coin_id}: {c.error}" for c in report.failed
            )
    return report


def _count(run, report: BackfillReport) -> None:
    """The run's counts so far: rows received, new rows, rows already stored."""
    received = report.total("points") + report.total("candles")
    loaded = report.total("points_new") + report.total("candles_new")
    run.rows_extracted, run.rows_loaded, run.rows_skipped = received, loaded, received - loaded


def run_backfill(
    engine: Engine,
    settings: Settings,
    coins: Sequence[str] | None,
    vs_currency: str,
    top_n: int,
    start: datetime,
    now: datetime,
    on_coin: Callable[[CoinResult], None] = lambda result: None,
    client: CoinGeckoClient | None = None,
) -> BackfillReport:
    """The `backfill` command: `coins`, or else the current top `top_n` coins by market cap, from
    `start` to `now`. SIGTERM stops it like Ctrl-C does, so its run is recorded as cancelled.
    The alert conditions are judged at the end, however the backfill ended."""
    try:
        with sigterm_interrupts(), client or make_client(settings, engine) as source:
            if coins is None:
                coins = [row["id"] for row in source.fetch_markets(top_n, vs_currency)]
                log.info("backfilling the top %d coins by market cap", len(coins))
            return backfill(
                engine, source, settings, coins, vs_currency, start, now, on_coin=on_coin
            )
    finally:
        check_alerts(settings, engine)


def refresh_ohlc(
    engine: Engine,
    client: CoinGeckoClient,
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


@dataclass(frozen=True)
class CandleRefresh:
    """What keeping the candles current did after a snapshot run."""

    report: BackfillReport | None  # None: nothing was due
    error: str | None = None  # it failed (logged; the snapshot run is stored all the same)

    def describe(self) -> str | None:
        """One line for the command line, or None when there is nothing to say."""
        if self.error is not None:
            return f"ohlc failed: {self.error}"
        if self.report is None:
            return None
        note = (
            f"ohlc run {self.report.run_id} {self.report.status}: "
            f"{len(self.report.coins)} coin(s), {self.report.total('candles_new')} new candles"
        )
        if self.report.failed:
            note += "; failed: " + ", ".join(r.coin_id for r in self.report.failed)
        return note


def keep_candles_current(
    engine: Engine,
    client: CoinGeckoClient,
    settings: Settings,
    vs_currency: str,
    should_stop: Callable[[], bool],
    now: datetime | None = None,
) -> CandleRefresh:
    """After a snapshot run: bring candles of the top OHLC_TOP_N coins up to date as of `now`
    (default: the current time). A failure here is logged and recorded in its own `ohlc` run; it
    never fails the snapshot run."""
    try:
        moment = now or utcnow()
        report = refresh_ohlc(engine, client, settings, vs_currency, moment, should_stop)
    except Exception as exc:
        detail = first_line(exc)
        log.error("ohlc: keeping candles current failed: %s (the snapshot run is stored)", detail)
        return CandleRefresh(None, detail)
    refresh = CandleRefresh(report)
    if report is not None and report.failed:
        log.warning("%s", refresh.describe())
    return refresh
