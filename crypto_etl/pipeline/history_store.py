"""Keeping the history store fit for billions of rows, as journaled steps: converting the history
tables to monthly partitions (`partition_tables`), applying retention (`run_retention`, also
after every snapshot run when RETENTION_DAYS is set) and filling the hourly rollup
(`rebuild_rollup`). Each records an `etl_runs` row with what it
did (counts in the row columns, the rest as JSON in `details`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.clock import utcnow
from crypto_etl.errors import DatabaseError, ETLError, first_line
from crypto_etl.pipeline.journal import recorded_run
from crypto_etl.settings import Settings
from crypto_etl.storage import rollup
from crypto_etl.storage.engine import describe
from crypto_etl.storage.partitions import (
    PARTITION_COLUMNS,
    Conversion,
    Partition,
    convert_to_partitioned,
    is_partitioned,
    list_partitions,
)
from crypto_etl.storage.retention import Retention, apply_retention, cutoff_for, last_retention

log = logging.getLogger(__name__)


def _needs_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise ETLError(
            f"partitioned tables need PostgreSQL; {describe(engine)} is {engine.dialect.name}, "
            "whose tables stay plain"
        )


@dataclass(frozen=True)
class PartitionRun:
    run_id: int | None  # None when there was nothing to do
    conversions: list[Conversion]

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.conversions)


def partition_tables(settings: Settings, engine: Engine, batch_rows: int) -> PartitionRun:
    """Convert every history table that is still plain into monthly partitions, recorded as one
    `partition` run; nothing (and no run) when they all are partitioned already."""
    _needs_postgresql(engine)
    todo = [t for t in PARTITION_COLUMNS if not is_partitioned(engine, t)]
    if not todo:
        return PartitionRun(None, [Conversion(t, True) for t in PARTITION_COLUMNS])
    conversions = []
    with recorded_run(engine, "partition", settings=settings) as run:
        for table in PARTITION_COLUMNS:
            if table not in todo:
                conversions.append(Conversion(table, True))
                continue
            done = convert_to_partitioned(
                engine, table, batch_rows, ahead_months=settings.partitions_ahead_months
            )
            conversions.append(done)
            run.rows_loaded = sum(c.rows for c in conversions)
            run.details = json.dumps(
                {
                    c.table: {
                        "rows_moved": c.rows,
                        "partitions_created": c.partitions,
                        "seconds": round(c.seconds, 3),
                        "already_partitioned": c.already_partitioned,
                    }
                    for c in conversions
                },
                sort_keys=True,
            )
    return PartitionRun(run.id, conversions)


def partition_listing(engine: Engine, exact_rows: bool) -> dict[str, list[Partition]]:
    """Every history table's partitions (an empty list: a plain table)."""
    _needs_postgresql(engine)
    return {t: list_partitions(engine, t, exact_rows) for t in PARTITION_COLUMNS}


@dataclass(frozen=True)
class RetentionRun:
    run_id: int
    retention: Retention


def run_retention(
    settings: Settings,
    engine: Engine,
    days: int,
    mode: str,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RetentionRun:
    """Apply retention (`days` of detailed history kept, `mode` drop or hourly) as one `retention`
    run; a dry run counts what would go and changes nothing (it is journaled too)."""
    now = now or utcnow()
    cutoff = cutoff_for(now, days)
    since = None
    if mode == "hourly":
        previous = last_retention(engine)
        if previous is not None and previous.mode == "hourly" and previous.cutoff <= cutoff:
            since = previous.cutoff
    with recorded_run(engine, "retention", settings=settings) as run:
        done = apply_retention(engine, cutoff, mode, dry_run, since)
        run.rows_skipped = 0
        run.rows_loaded = 0
        run.rows_rejected = done.rows_removed
        run.details = done.details()
        run.source = "dry run" if dry_run else None
    return RetentionRun(run.id, done)


def retention_after_run(settings: Settings, engine: Engine) -> RetentionRun | None:
    """Retention as the snapshot run applies it after each run when RETENTION_DAYS is set: a
    failure is logged as one line and never fails the run."""
    if settings.retention_days is None:
        return None
    try:
        return run_retention(settings, engine, settings.retention_days, settings.retention_mode)
    except (ETLError, DatabaseError, SQLAlchemyError) as exc:
        log.warning("retention not applied: %s", first_line(exc))
        return None


@dataclass(frozen=True)
class RollupRun:
    run_id: int
    pairs: int
    rows: int


def rebuild_rollup(settings: Settings, engine: Engine) -> RollupRun:
    """Fill the hourly rollup again from both history tables (crypto_etl.storage.rollup), as one
    `rollup` run; the API answers hourly and daily histories from it once this has finished."""
    with recorded_run(engine, "rollup", settings=settings) as run:

        def progress(done: int, total: int) -> None:
            if done % 50 == 0 or done == total:
                log.info("rollup: %d of %d coins and currencies rebuilt", done, total)

        done = rollup.rebuild(engine, progress=progress)
        run.rows_loaded = done.rows
        run.details = json.dumps({"pairs": done.pairs, "rows": done.rows}, sort_keys=True)
    return RollupRun(run.id, done.pairs, done.rows)


def rollup_status(engine: Engine) -> tuple[bool, int]:
    """Whether the hourly rollup is complete, and its rows."""
    return rollup.status(engine)
