"""The pipeline's steps as an orchestrator's tasks (Apache Airflow: deploy/airflow/dags), without
the orchestrator: each function takes the task's Settings and plain arguments, does one step with
the pipeline's own functions, and returns a small JSON-able summary (what Airflow hands between
tasks). A step that did not do its work raises, so that the orchestrator's own retries and
timeouts apply; nothing here retries or waits on its own.

The orchestrator's part is thin: it names its run (`orchestrator_run_id`), finds the database and
the CoinGecko key in its own connections (`task_settings`), and calls these functions. This module
never imports an orchestrator, so that it is tested without one.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url

from crypto_etl.clock import utcnow
from crypto_etl.coingecko.history import backfill_start, reaches_past_a_year
from crypto_etl.errors import CoinGeckoError, ConfigError, ETLError
from crypto_etl.pipeline.alerting import check_alerts
from crypto_etl.pipeline.backfill import backfill, refresh_ohlc
from crypto_etl.pipeline.backfill_plan import plan_coin
from crypto_etl.pipeline.gap_report import gap_report
from crypto_etl.pipeline.snapshot import run_snapshot
from crypto_etl.pipeline.source import make_client
from crypto_etl.run_status import RunStatus
from crypto_etl.settings import Settings
from crypto_etl.storage.engine import Database
from crypto_etl.storage.history import top_coins

log = logging.getLogger(__name__)

BACKFILL_DAYS = 90  # what `etl.py backfill` fetches by default


# -- who and where: the task's settings ------------------------------------------------------------
def orchestrator_run_id(
    dag_id: str, run_id: str, task_id: str, map_index: int | None = None
) -> str:
    """The name etl_runs records for an orchestrator's task run: dag_id/run_id/task_id, with the
    map index of a mapped task in brackets (`.../backfill_coin[3]`)."""
    name = f"{dag_id}/{run_id}/{task_id}"
    return f"{name}[{map_index}]" if map_index is not None and map_index >= 0 else name


def sqlalchemy_url(connection_uri: str) -> str:
    """An orchestrator connection's URI as the SQLAlchemy URL our engine takes: Airflow writes a
    PostgreSQL connection as `postgres://` (or `postgresql://`), which becomes
    `postgresql+psycopg://` (psycopg 3, the driver we install); other URLs pass unchanged."""
    try:
        url = make_url(connection_uri)
    except Exception:  # SQLAlchemy's ArgumentError, or a ValueError from a bad port
        raise ConfigError(
            "the database connection's URI is not a database URL (expected e.g. "
            "postgresql://user:password@host:5432/db)"  # the URI itself may carry a password
        ) from None
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def task_settings(
    base: Settings,
    orchestrator_run: str,
    database_uri: str | None = None,
    coingecko_api_key: str | None = None,
) -> Settings:
    """The settings of one orchestrated task: `base` (our environment variables) with the
    orchestrator's database connection and CoinGecko key where it has them, the task's run name
    recorded on every etl_runs row, and the CoinGecko calls per minute shared through the
    database by every task on every worker."""
    changes: dict[str, Any] = {"orchestrator_run_id": orchestrator_run, "shared_rate_limit": True}
    if database_uri:
        changes["database_url"] = sqlalchemy_url(database_uri)
    if coingecko_api_key:
        changes["coingecko_api_key"] = coingecko_api_key.strip()
    return dataclasses.replace(base, **changes)


# -- the tasks -------------------------------------------------------------------------------------
def snapshot_task(settings: Settings) -> dict[str, Any]:
    """One snapshot run (extract, transform, validate, load; the kept payloads a database outage
    left first). The candles are the `ohlc_task`'s own task, so they are left out here."""
    database = Database(settings.database_url)
    done = run_snapshot(
        dataclasses.replace(settings, ohlc_top_n=0),
        database,
        settings.top_n,
        settings.vs_currency,
    )
    return {
        "run_id": done.run_id,
        "status": str(done.status),
        "extracted": done.extracted,
        "loaded": done.result.loaded,
        "rejected": done.result.rejected,
        "caught_up": len(done.caught_up),
    }


def ohlc_task(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Keep the candles of the top OHLC_TOP_N coins current; fails when a coin's candles could not
    be fetched (the next try fetches only what is still missing)."""
    engine = Database(settings.database_url).engine
    with make_client(settings, engine) as client:
        report = refresh_ohlc(engine, client, settings, settings.vs_currency, now or utcnow())
    if report is None:
        return {"run_id": None, "status": "nothing due", "coins": 0, "candles_new": 0}
    _fail_on_failed_coins(report.run_id, report.status, report.failed)
    return {
        "run_id": report.run_id,
        "status": str(report.status),
        "coins": len(report.coins),
        "candles_new": report.total("candles_new"),
    }


def coins_to_backfill(
    settings: Settings, days: int = BACKFILL_DAYS, now: datetime | None = None
) -> list[str]:
    """The coins a backfill of `days` has requests due for: among the top TOP_N coins of the
    latest snapshots, those whose price points or candles are not up to date (a re-run lists
    none). One mapped backfill task each."""
    now = now or utcnow()
    engine = Database(settings.database_url).engine
    start, _ = backfill_start(days, now, settings)
    fresh_since = now - timedelta(seconds=settings.stale_after_seconds)
    coins = top_coins(engine, settings.vs_currency, settings.top_n, fresh_since)
    any_age = reaches_past_a_year(settings)
    due = [
        coin
        for coin in coins
        if plan_coin(engine, coin, settings.vs_currency, start, now, any_age).requests
    ]
    log.info("%d of the top %d coins have history due: %s", len(due), len(coins), ", ".join(due))
    return due


def backfill_coin_task(
    settings: Settings, coin_id: str, days: int = BACKFILL_DAYS, now: datetime | None = None
) -> dict[str, Any]:
    """Backfill one coin's price points and candles over `days`, as its own `backfill` run; fails
    when CoinGecko refused the coin, so that this coin alone is tried again."""
    now = now or utcnow()
    engine = Database(settings.database_url).engine
    start, _ = backfill_start(days, now, settings)
    with make_client(settings, engine) as client:
        report = backfill(engine, client, settings, [coin_id], settings.vs_currency, start, now)
    _fail_on_failed_coins(report.run_id, report.status, report.failed)
    (result,) = report.coins
    return {
        "run_id": report.run_id,
        "coin_id": coin_id,
        "requests": result.requests,
        "points_new": result.points_new,
        "candles_new": result.candles_new,
    }


def gaps_task(
    settings: Settings, days: int = BACKFILL_DAYS, now: datetime | None = None
) -> dict[str, Any]:
    """Find the missing stretches of market_snapshots and price_history over `days` and log them
    with the backfill command that fills them. Gaps are a finding, not a failure of the task."""
    engine = Database(settings.database_url).engine
    report = gap_report(
        engine,
        settings,
        None,
        settings.vs_currency,
        days,
        settings.expected_cadence_seconds,
        now or utcnow(),
    )
    log.log(logging.WARNING if report.gaps else logging.INFO, "%s", report.format())
    return {
        "gaps": len(report.gaps),
        "coins": sorted({gap.coin_id for gap in report.gaps}),
        "fill_command": report.fill_command(),
    }


def alerts_task(settings: Settings) -> dict[str, Any]:
    """Judge the alert conditions and deliver what is owed (crypto_etl.pipeline.alerting)."""
    engine = Database(settings.database_url).engine
    result = check_alerts(settings, engine)
    if result is None:
        raise ETLError("the alert conditions could not be evaluated (the log line above says why)")
    return {
        "opened": len(result.of("opened")),
        "resolved": len(result.of("resolved")),
        "flags": result.flags,
        "runs_checked": result.runs_checked,
    }


def _fail_on_failed_coins(run_id: int | None, status: RunStatus, failed: list) -> None:
    if failed:
        names = "; ".join(f"{c.coin_id}: {c.error}" for c in failed)
        raise CoinGeckoError(f"run {run_id} {status}: {len(failed)} coin(s) failed: {names}")
