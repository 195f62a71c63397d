"""The snapshot pipeline: its four steps and the run that chains them, independent of the command
line. Each function does one command's work and returns what it did; runs are journaled here.

`extract` keeps CoinGecko's rows unmodified (plus a small sidecar with when and how they were
fetched), `transform` turns them into the snapshot CSV, `validate` checks it, `load` validates and
stores it, and `run_snapshot` chains the four as one recorded run, keeping every raw payload in
the landing folder (crypto_etl.pipeline.landing), then keeps the top coins' candles current.
`schedule_snapshots` runs it at a cadence.

No hole from a database outage: `run_snapshot` fetches and keeps the payload even when the database
cannot be reached (then fails with one line saying so), and every run first loads the kept
payloads not stored yet (`load_pending`), each as its own `catch_up` run with the payload's fetch
time as its snapshot time.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.clock import utcnow
from crypto_etl.coingecko.client import CoinGeckoClient
from crypto_etl.errors import DatabaseError, ETLError, first_line, run_id_of
from crypto_etl.pipeline.alerting import check_alerts
from crypto_etl.pipeline.backfill import CandleRefresh, keep_candles_current
from crypto_etl.pipeline.history_store import retention_after_run
from crypto_etl.pipeline.journal import Cancelled, RunEntry, record_step, recorded_run
from crypto_etl.pipeline.landing import (
    check_payload,
    claim,
    mark_stored,
    pending_payloads,
    read_meta,
    release,
    save_raw,
)
from crypto_etl.pipeline.scheduler import StopFlag, run_every
from crypto_etl.pipeline.source import make_client
from crypto_etl.run_status import RunStatus
from crypto_etl.settings import Settings
from crypto_etl.shaping.snapshot_table import (
    check_csv_file,
    read_raw_json,
    read_snapshot_csv,
    transform_markets,
    write_csv,
)
from crypto_etl.shaping.validation import ValidationReport, validate_snapshots
from crypto_etl.storage.engine import Database, describe, describe_url
from crypto_etl.storage.runs import close_abandoned_runs
from crypto_etl.storage.snapshots import LoadResult, load_snapshot_csv

log = logging.getLogger(__name__)


# -- the steps -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtractResult:
    rows: int
    path: Path
    vs_currency: str
    run_id: int | None  # None when the step could not be journaled


@dataclass(frozen=True)
class TransformResult:
    rows: int
    source: Path
    target: Path
    run_id: int | None


@dataclass(frozen=True)
class ValidateResult:
    report: ValidationReport
    path: Path
    run_id: int | None


@dataclass(frozen=True)
class LoadOutcome:
    run_id: int
    status: RunStatus
    result: LoadResult
    path: Path


def extract_file(
    settings: Settings,
    database: Database,
    path: Path,
    top_n: int,
    vs_currency: str,
    client: CoinGeckoClient | None = None,
) -> ExtractResult:
    """Fetch the top `top_n` coins by market cap into a raw JSON file, unmodified."""
    with client or make_client(settings, database) as source:
        rows = source.fetch_markets(top_n, vs_currency)
    save_raw(rows, path, utcnow(), vs_currency=vs_currency, top_n=top_n)
    run_id = record_step(
        database, "extract", vs_currency=vs_currency, rows_extracted=len(rows), source=str(path)
    )
    return ExtractResult(len(rows), path, vs_currency, run_id)


def transform_file(
    settings: Settings,
    database: Database,
    input_path: Path,
    output_path: Path,
    vs_currency: str | None = None,
    snapshot_at: datetime | None = None,
) -> TransformResult:
    """Turn a raw /coins/markets dump into the snapshot CSV (see `_transform`)."""
    rows = _transform(input_path, output_path, vs_currency, snapshot_at, settings.vs_currency)
    run_id = record_step(database, "transform", rows_extracted=rows, source=str(input_path))
    return TransformResult(rows, input_path, output_path, run_id)


def validate_file(settings: Settings, database: Database, csv_path: Path) -> ValidateResult:
    """Check a snapshot CSV against the data quality rules, recorded as a `validate` step
    (failed when a critical rule fails)."""
    report = _validate(read_snapshot_csv(csv_path), settings, utcnow())
    run_id = record_step(
        database,
        "validate",
        status=RunStatus.SUCCESS if report.passed else RunStatus.FAILED,
        rows_extracted=report.rows,
        rows_rejected=report.rejected_count,
        source=str(csv_path),
    )
    return ValidateResult(report, csv_path, run_id)


def load_file(settings: Settings, database: Database, csv_path: Path) -> LoadOutcome:
    """Validate and load a snapshot CSV in one transaction, recorded as a `load` run (partial when
    rows were quarantined). The file is checked before the database is opened."""
    check_csv_file(csv_path)
    engine = database.engine
    try:
        with recorded_run(engine, "load", source=str(csv_path), settings=settings) as run:
            result, _ = _load(engine, csv_path, settings, run.id)
            run.rows_extracted = result.rows_in
            _record_load(run, result)
    finally:
        check_alerts(settings, engine)
    return LoadOutcome(run.id, run.status, result, csv_path)


def _transform(
    input_path: Path,
    output_path: Path,
    vs_currency: str | None,
    snapshot_at: datetime | None,
    default_vs_currency: str,
) -> int:
    """Raw JSON to snapshot CSV. The fetch time and currency come from the arguments, else from
    the sidecar written by extract, else the file's modification time and the default currency."""
    rows = read_raw_json(input_path)
    meta = read_meta(input_path)
    if snapshot_at is None:
        if meta.get("fetched_at"):
            snapshot_at = datetime.fromisoformat(meta["fetched_at"])
        else:
            snapshot_at = datetime.fromtimestamp(input_path.stat().st_mtime, UTC)
    currency = vs_currency or meta.get("vs_currency") or default_vs_currency
    frame = transform_markets(rows, currency, snapshot_at)
    write_csv(frame, output_path)
    return len(frame)


def _validate(frame, settings: Settings, now: datetime) -> ValidationReport:
    return validate_snapshots(
        frame,
        now,
        stale_after=timedelta(seconds=settings.stale_after_seconds),
        future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
    )


def _load(
    engine: Engine, csv_path: Path, settings: Settings, run_id: int | None
) -> tuple[LoadResult, ValidationReport]:
    return load_snapshot_csv(
        engine,
        csv_path,
        run_id,
        utcnow(),
        stale_after=timedelta(seconds=settings.stale_after_seconds),
        future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
    )


def _record_load(run: RunEntry, result: LoadResult) -> None:
    """A load's outcome on its run: partial when rows were quarantined."""
    run.status = RunStatus.SUCCESS if result.rejected == 0 else RunStatus.PARTIAL
    run.rows_loaded = result.loaded
    run.rows_rejected = result.rejected
    run.rows_skipped = result.skipped


# -- the run -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SnapshotRun:
    """What one `run` did: the kept payloads it caught up on, the snapshot run and, after it, the
    candle refresh."""

    run_id: int
    status: RunStatus
    extracted: int
    result: LoadResult
    raw_path: Path
    csv_path: Path
    candles: CandleRefresh | None  # None when OHLC_TOP_N is 0
    caught_up: tuple[LoadOutcome, ...] = ()


def run_snapshot(
    settings: Settings,
    database: Database | Engine,
    top_n: int,
    vs_currency: str,
    should_stop: Callable[[], bool] = lambda: False,
    client: CoinGeckoClient | None = None,
) -> SnapshotRun:
    """Load the kept payloads not stored yet (`load_pending`); then extract, transform, validate
    and load one snapshot, recorded as one run in etl_runs; then, once that run is closed, keep
    the candles of the top OHLC_TOP_N coins current (their own `ohlc` run: whatever happens there
    cannot change the snapshot run's record).

    When the database cannot be reached, the snapshot is fetched and kept all the same (pending in
    the landing folder) and the run fails with one `DatabaseError` line saying so; the next run
    that reaches the database loads it. The alert conditions are judged at the end, however the
    run ended (when the database is down, by the next run that reaches it); then, when
    RETENTION_DAYS is set and no stop was asked for, retention is applied as its own run."""
    try:
        return _run_snapshot(settings, database, top_n, vs_currency, should_stop, client)
    finally:
        try:
            engine = _engine(database)
        except (DatabaseError, SQLAlchemyError):
            engine = None
        if engine is not None:
            check_alerts(settings, engine)
            stopping = isinstance(sys.exc_info()[1], KeyboardInterrupt | Cancelled)
            if not stopping and not should_stop():
                retention_after_run(settings, engine)


def _run_snapshot(
    settings: Settings,
    database: Database | Engine,
    top_n: int,
    vs_currency: str,
    should_stop: Callable[[], bool],
    client: CoinGeckoClient | None,
) -> SnapshotRun:
    stamp = utcnow()
    name = f"{stamp:%Y%m%dT%H%M%S%fZ}_{vs_currency}_top{top_n}"
    raw_path = settings.raw_dir / f"{name}.json"
    csv_path = settings.data_dir / "processed" / f"{name}.csv"
    opened = False
    rows: list[dict[str, Any]] = []
    with client or make_client(settings, database) as source:
        try:
            engine = _engine(database)
            caught_up = load_pending(settings, engine)
            with recorded_run(engine, "run", vs_currency=vs_currency, settings=settings) as run:
                opened = True
                rows = source.fetch_markets(top_n, vs_currency)
                fetched_at = utcnow()
                run.rows_extracted, run.source = len(rows), str(raw_path)
                save_raw(
                    rows, raw_path, fetched_at, pending=True, vs_currency=vs_currency, top_n=top_n
                )
                log.info("extracted %d rows into %s", len(rows), raw_path)
                _check_stop(should_stop)
                rows_out = _transform(raw_path, csv_path, vs_currency, fetched_at, vs_currency)
                log.info("transformed %d rows into %s", rows_out, csv_path)
                _check_stop(should_stop)
                result, report = _load(engine, csv_path, settings, run.id)
                mark_stored(raw_path)
                _log_failed_rules(report)
                _record_load(run, result)
                log.info(
                    "run %d %s: %d loaded, %d already stored, %d quarantined",
                    run.id,
                    run.status,
                    result.loaded,
                    result.skipped,
                    result.rejected,
                )
        except (DatabaseError, SQLAlchemyError) as exc:
            if not opened:  # the database is down: the snapshot is fetched and kept all the same
                where = _where(database)
                rows = _fetch_and_keep(source, where, raw_path, top_n, vs_currency, exc)
            kept = (
                f"; the snapshot of {len(rows)} coins is kept in {raw_path} and the next run "
                "loads it"
                if raw_path.exists()
                else ""
            )
            error = DatabaseError(
                f"database unavailable at {_where(database)}: {_reason(exc)}{kept}"
            )
            error.run_id = run_id_of(exc)  # the run it cut off, named in the log line
            raise error from exc
        candles = None
        if settings.ohlc_top_n > 0:
            candles = keep_candles_current(engine, source, settings, vs_currency, should_stop)
    return SnapshotRun(
        run.id, run.status, len(rows), result, raw_path, csv_path, candles, tuple(caught_up)
    )


def _fetch_and_keep(
    source: CoinGeckoClient,
    where: str,
    raw_path: Path,
    top_n: int,
    vs_currency: str,
    outage: Exception,
) -> list[dict[str, Any]]:
    """Fetch and keep (pending) a snapshot while the database is down; a failure here is told in
    the same line as the outage, which stays the reported failure."""
    log.info(
        "the database is down (%s): fetching the snapshot to keep it until it is back",
        _reason(outage),
    )
    try:
        rows = source.fetch_markets(top_n, vs_currency)
        save_raw(rows, raw_path, utcnow(), pending=True, vs_currency=vs_currency, top_n=top_n)
    except ETLError as exc:
        raise DatabaseError(
            f"database unavailable at {where}: {_reason(outage)}; and the snapshot could not "
            f"be kept either: {exc}"
        ) from outage
    log.info("kept %d rows in %s until the database is back", len(rows), raw_path)
    return rows


def _reason(exc: BaseException) -> str:
    """The database failure in one line, without the prefix DatabaseError messages carry."""
    return first_line(exc)


def _engine(database: Database | Engine) -> Engine:
    """The engine, made and migrated on first use when given a Database (DatabaseError when the
    database cannot be reached)."""
    return database.engine if isinstance(database, Database) else database


def _where(database: Database | Engine) -> str:
    if isinstance(database, Database):
        return describe_url(database.url)
    return describe(database)


def load_pending(settings: Settings, engine: Engine) -> list[LoadOutcome]:
    """Load every kept payload not stored yet (a database outage or a crash left it), oldest
    first, each as its own `catch_up` run whose snapshot time is the payload's fetch time. A
    database failure stops here (the caller fails with one line); a payload that cannot be loaded
    for another reason (changed, unreadable) is recorded as a failed run and left in the landing
    folder, and the others go on."""
    outcomes = []
    for pending in pending_payloads(settings.raw_dir):
        if not claim(pending):  # the run that fetched it is still working on it: its own
            log.info("kept payload %s is being stored by its own run; left to it", pending.raw_path)
            continue
        meta = read_meta(pending.raw_path)
        currency = meta.get("vs_currency") or settings.vs_currency
        csv_path = settings.data_dir / "processed" / f"{pending.raw_path.stem}.csv"
        try:
            with recorded_run(
                engine,
                "catch_up",
                vs_currency=currency,
                source=str(pending.raw_path),
                settings=settings,
            ) as run:
                check_payload(pending)
                run.rows_extracted = _transform(
                    pending.raw_path, csv_path, currency, pending.fetched_at, currency
                )
                result, report = _load(engine, csv_path, settings, run.id)
                _log_failed_rules(report)
                _record_load(run, result)
        except (DatabaseError, SQLAlchemyError):
            raise
        except ETLError as exc:
            log.error("kept payload %s not loaded: %s", pending.raw_path, exc)
            pending.marker.unlink(missing_ok=True)
            release(pending.raw_path)
            continue
        mark_stored(pending.raw_path)
        log.info(
            "caught up on %s (fetched %s): run %d %s, %d loaded, %d already stored",
            pending.raw_path.name,
            pending.fetched_at.isoformat(),
            run.id,
            run.status,
            result.loaded,
            result.skipped,
        )
        outcomes.append(LoadOutcome(run.id, run.status, result, pending.raw_path))
    return outcomes


def _log_failed_rules(report: ValidationReport) -> None:
    for rule in report.results:
        if not rule.passed:
            log.warning(
                "%s rule %s: %d row(s), e.g. %s",
                rule.severity,
                rule.rule,
                rule.failed,
                ", ".join(rule.examples),
            )


def _check_stop(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise Cancelled()


@dataclass(frozen=True)
class ScheduleResult:
    runs: int
    failures: int
    signal_name: str | None  # the signal that stopped the schedule, if one did


def schedule_snapshots(
    settings: Settings,
    database: Database | Engine,
    interval_seconds: float,
    top_n: int,
    vs_currency: str,
    max_runs: int | None = None,
    stop: StopFlag | None = None,
) -> ScheduleResult:
    """`run_snapshot` every `interval_seconds` until SIGINT or SIGTERM (or `max_runs` runs); a
    failed run is logged and retried at the next tick, a stop waits for the current step."""
    if stop is None:
        stop = StopFlag()
        stop.install()

    def job() -> None:
        try:
            # Runs a database outage left open are closed first, once it answers again.
            abandoned = close_abandoned_runs(_engine(database))
            if abandoned:
                log.warning("run(s) %s, cut off by the database, recorded as failed", abandoned)
        except (DatabaseError, SQLAlchemyError):
            pass  # still down: run_snapshot keeps the snapshot and says so
        try:
            run_snapshot(settings, database, top_n, vs_currency, should_stop=stop.is_set)
        except Cancelled:
            log.info("run cancelled between steps")

    log.info("scheduling a run every %s seconds", interval_seconds)
    runs, failures = run_every(job, float(interval_seconds), stop, max_runs=max_runs)
    return ScheduleResult(runs, failures, stop.signal_name)
