"""The `etl_runs` journal: one row per pipeline run or single step, opened and closed in their own
short transactions so that a failed load still leaves its run recorded as failed. The pipeline
decides when (crypto_etl.pipeline.journal); this module only writes the rows."""

from __future__ import annotations

from sqlalchemy import Engine, update

from crypto_etl.clock import utcnow
from crypto_etl.run_status import RunStatus
from crypto_etl.storage.schema import EtlRun

ERROR_MESSAGE_MAX_CHARS = 2000

# Runs this process opened and has not closed yet, by database. A run whose closing failed (the
# database went away mid-run) stays here until `close_abandoned_runs` records it as failed.
_open_runs: dict[str, set[int]] = {}


def _database(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def start_run(
    engine: Engine, command: str, vs_currency: str | None = None, source: str | None = None
) -> int:
    """Record a run as started; returns its id."""
    with engine.begin() as conn:
        result = conn.execute(
            EtlRun.__table__.insert().values(
                command=command,
                status=RunStatus.RUNNING.value,
                started_at=utcnow(),
                vs_currency=vs_currency,
                source=source,
                rows_extracted=0,
                rows_loaded=0,
                rows_rejected=0,
                rows_skipped=0,
            )
        )
        run_id = int(result.inserted_primary_key[0])
    _open_runs.setdefault(_database(engine), set()).add(run_id)
    return run_id


def finish_run(
    engine: Engine,
    run_id: int,
    status: RunStatus,
    error_message: str | None = None,
    **counts: int | str | None,
) -> None:
    """Close a run with its status, its row counts (rows_extracted, rows_loaded, rows_rejected,
    rows_skipped; None leaves a count as it is), its source and its error, if any."""
    values = {k: v for k, v in counts.items() if v is not None}
    if error_message is not None:
        values["error_message"] = error_message[:ERROR_MESSAGE_MAX_CHARS]
    with engine.begin() as conn:
        conn.execute(
            update(EtlRun)
            .where(EtlRun.id == run_id)
            .values(status=RunStatus(status).value, finished_at=utcnow(), **values)
        )
    _open_runs.get(_database(engine), set()).discard(run_id)


def close_abandoned_runs(engine: Engine) -> list[int]:
    """Record as failed the runs this process opened and could not close, e.g. because the
    database restarted mid-run, so that none stays `running`. Call it between runs (the
    scheduler does, before each run); returns their ids."""
    abandoned = sorted(_open_runs.get(_database(engine), ()))
    if abandoned:
        finished = utcnow()
        with engine.begin() as conn:
            conn.execute(
                update(EtlRun)
                .where(EtlRun.id.in_(abandoned), EtlRun.status == RunStatus.RUNNING.value)
                .values(
                    status=RunStatus.FAILED.value,
                    finished_at=finished,
                    error_message="the database connection was lost before the run was closed",
                )
            )
        _open_runs[_database(engine)].difference_update(abandoned)
    return abandoned
