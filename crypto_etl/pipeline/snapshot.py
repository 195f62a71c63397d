"""The pipeline's steps and their orchestration, independent of the command line.

`extract` keeps CoinGecko's rows unmodified (plus a small sidecar with when and how they were
fetched), `transform` turns them into the snapshot CSV, `load` validates and stores it, and
`run_once` chains the four as one recorded run, keeping every raw payload in the landing folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from crypto_etl.errors import InputFileError
from crypto_etl.settings import Settings
from crypto_etl.shaping.snapshot_table import (
    read_raw_json,
    read_snapshot_csv,
    transform_markets,
    write_csv,
)
from crypto_etl.shaping.validation import ValidationReport, validate_snapshots
from crypto_etl.storage.runs import finish_run, start_run, utcnow
from crypto_etl.storage.snapshots import LoadResult, load_snapshot_csv

log = logging.getLogger(__name__)
META_SUFFIX = ".meta.json"


class Cancelled(Exception):
    """A stop was requested (SIGINT or SIGTERM) between two steps."""


@dataclass
class RunSummary:
    run_id: int
    status: str
    extracted: int
    result: LoadResult | None
    raw_path: Path
    csv_path: Path


def meta_path(raw_path: Path) -> Path:
    return raw_path.with_name(raw_path.name + META_SUFFIX)


def save_raw(rows: list[dict[str, Any]], path: Path, fetched_at: datetime, **meta: Any) -> Path:
    """Write the rows exactly as received (one JSON array) and a sidecar describing the fetch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    info = {"fetched_at": fetched_at.isoformat(), "rows": len(rows), **meta}
    meta_path(path).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return path


def read_meta(raw_path: Path) -> dict[str, Any]:
    """The sidecar of a raw file, or {} when there is none (any CoinGecko dump is accepted)."""
    path = meta_path(raw_path)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, OSError):
        log.warning("ignoring unreadable sidecar %s", path)
        return {}


def transform_file(
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


def validate_file(csv_path: Path, settings: Settings, now: datetime) -> ValidationReport:
    frame = read_snapshot_csv(csv_path)
    return validate_snapshots(
        frame,
        now,
        stale_after=timedelta(seconds=settings.stale_after_seconds),
        future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
    )


def load_file(
    engine: Engine, csv_path: Path, settings: Settings, run_id: int | None, now: datetime
) -> tuple[LoadResult, ValidationReport]:
    return load_snapshot_csv(
        engine,
        csv_path,
        run_id,
        now,
        stale_after=timedelta(seconds=settings.stale_after_seconds),
        future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
    )


def run_once(
    engine: Engine,
    client,
    settings: Settings,
    top_n: int,
    vs_currency: str,
    should_stop: Callable[[], bool] = lambda: False,
    after_load: Callable[[int], None] | None = None,
) -> RunSummary:
    """Extract, transform, validate and load one snapshot, recorded as one run in etl_runs;
    then `after_load(run_id)`, if given, once the run is recorded (its errors are its own)."""
    run_id = start_run(engine, "run", vs_currency=vs_currency)
    stamp = utcnow()
    name = f"{stamp:%Y%m%dT%H%M%S%fZ}_{vs_currency}_top{top_n}"
    raw_path = settings.raw_dir / f"{name}.json"
    csv_path = settings.data_dir / "processed" / f"{name}.csv"
    extracted = 0
    try:
        rows = client.fetch_markets(top_n, vs_currency)
        fetched_at = utcnow()
        extracted = len(rows)
        save_raw(rows, raw_path, fetched_at, vs_currency=vs_currency, top_n=top_n)
        log.info("extracted %d rows into %s", extracted, raw_path)
        _check_stop(should_stop)
        rows_out = transform_file(raw_path, csv_path, vs_currency, fetched_at, vs_currency)
        log.info("transformed %d rows into %s", rows_out, csv_path)
        _check_stop(should_stop)
        result, report = load_file(engine, csv_path, settings, run_id, utcnow())
        for rule in report.results:
            if not rule.passed:
                log.warning(
                    "%s rule %s: %d row(s), e.g. %s",
                    rule.severity,
                    rule.rule,
                    rule.failed,
                    ", ".join(rule.examples),
                )
        status = "success" if result.rejected == 0 else "partial"
        finish_run(
            engine,
            run_id,
            status,
            rows_extracted=extracted,
            rows_loaded=result.loaded,
            rows_rejected=result.rejected,
            rows_skipped=result.skipped,
            source=str(raw_path),
        )
        log.info(
            "run %d %s: %d loaded, %d already stored, %d quarantined",
            run_id,
            status,
            result.loaded,
            result.skipped,
            result.rejected,
        )
        summary = RunSummary(run_id, status, extracted, result, raw_path, csv_path)
    except Cancelled:
        finish_run(engine, run_id, "cancelled", rows_extracted=extracted, error_message="stopped")
        raise
    except BaseException as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        finish_run(engine, run_id, "failed", rows_extracted=extracted, error_message=message)
        raise
    # After the run is closed: whatever the hook does cannot change the snapshot run's record.
    if after_load is not None:
        after_load(run_id)
    return summary


def _check_stop(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise Cancelled()


def require_file(path: Path, what: str, hint: str) -> None:
    if not path.exists():
        raise InputFileError(f"{what} {path} does not exist; {hint}")
