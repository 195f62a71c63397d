"""Journaling runs in `etl_runs`, in one place: every pipeline run (a snapshot run, a load, a
backfill, a candle refresh) and every single step opens its row here and closes it with its
outcome, whatever way the work ends.

- The work returns normally: the status and counts it set on its RunEntry.
- It is stopped (Ctrl-C, SIGTERM, a stop between steps): `cancelled`, with the counts so far.
- It fails: `failed`, with the first line of the error.
- Its process vanishes (SIGKILL, the host going down): its lease runs out and the next command
  (or, on this host, as soon as its pid is gone) closes it as `abandoned` (crypto_etl.storage.runs).

While the work runs, a heartbeat thread renews the run's lease; every new run first closes the
runs whose process is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.errors import ETLError, first_line
from crypto_etl.run_status import RunStatus
from crypto_etl.settings import Settings
from crypto_etl.storage.engine import Database
from crypto_etl.storage.runs import (
    Heartbeat,
    LeaseTerms,
    finish_run,
    start_run,
    sweep_dead_runs,
)

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """A stop was requested (SIGINT or SIGTERM) between two steps."""

    def __init__(self, message: str = "stopped") -> None:
        super().__init__(message)


@dataclass
class RunEntry:
    """The `etl_runs` row of a run in progress. The work sets its outcome and counts as it goes,
    so that a run that fails or is stopped still records how far it got."""

    id: int
    status: RunStatus = RunStatus.SUCCESS
    rows_extracted: int | None = None
    rows_loaded: int | None = None
    rows_rejected: int | None = None
    rows_skipped: int | None = None
    source: str | None = None
    error_message: str | None = None
    details: str | None = None  # JSON text, etl_runs.details

    def counts(self) -> dict[str, int | str | None]:
        return {
            "rows_extracted": self.rows_extracted,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "rows_skipped": self.rows_skipped,
            "source": self.source,
            "details": self.details,
        }


def lease_terms(settings: Settings | None) -> LeaseTerms:
    """The heartbeat and lease of runs, from RUN_HEARTBEAT_SECONDS and RUN_LEASE_SECONDS."""
    if settings is None:
        return LeaseTerms()
    return LeaseTerms(settings.run_heartbeat_seconds, settings.run_lease_seconds)


@contextmanager
def recorded_run(
    engine: Engine,
    command: str,
    vs_currency: str | None = None,
    source: str | None = None,
    settings: Settings | None = None,
) -> Iterator[RunEntry]:
    """A run recorded in etl_runs from start to end (see the module's docstring)."""
    terms = lease_terms(settings)
    sweep_dead_runs(engine, terms)
    entry = RunEntry(start_run(engine, command, vs_currency, source, terms))
    try:
        with Heartbeat(engine, entry.id, terms):
            yield entry
    except BaseException as exc:
        if isinstance(exc, Exception) and getattr(exc, "run_id", None) is None:
            exc.run_id = entry.id  # so that the one line reporting it names the run
        stopped = isinstance(exc, KeyboardInterrupt | Cancelled)
        status = RunStatus.CANCELLED if stopped else RunStatus.FAILED
        try:
            finish_run(engine, entry.id, status, first_line(exc), **entry.counts())
        except (ETLError, SQLAlchemyError) as journal_error:  # never hide the failure itself
            # The failure itself is the one line the user sees; the row's lease closes it later.
            log.debug(
                "could not record run %d as %s: %s", entry.id, status, first_line(journal_error)
            )
        raise
    finish_run(engine, entry.id, entry.status, entry.error_message, **entry.counts())


def record_step(
    database: Database,
    command: str,
    status: RunStatus = RunStatus.SUCCESS,
    vs_currency: str | None = None,
    **counts: int | str | None,
) -> int | None:
    """Journal a single step that has finished (extract, transform, validate); returns its run id.
    A step that needs no database still works when the database is unreachable: the failure to
    record it is logged and None returned."""
    try:
        engine = database.engine
        sweep_dead_runs(engine)
        run_id = start_run(engine, command, vs_currency)
        finish_run(engine, run_id, status, **counts)
    except ETLError as exc:
        log.warning("could not record the %s step in etl_runs: %s", command, exc)
        return None
    return run_id
