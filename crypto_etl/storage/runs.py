"""The `etl_runs` journal: one row per pipeline run or single step, opened and closed in their own
short transactions so that a failed load still leaves its run recorded as failed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, update

from crypto_etl.storage.schema import EtlRun


def utcnow() -> datetime:
    return datetime.now(UTC)


def start_run(
    engine: Engine, command: str, vs_currency: str | None = None, source: str | None = None
) -> int:
    """Record a run as started; returns its id."""
    with engine.begin() as conn:
        result = conn.execute(
            EtlRun.__table__.insert().values(
                command=command,
                status="running",
                started_at=utcnow(),
                vs_currency=vs_currency,
                source=source,
                rows_extracted=0,
                rows_loaded=0,
                rows_rejected=0,
                rows_skipped=0,
            )
        )
        return int(result.inserted_primary_key[0])


def finish_run(engine: Engine, run_id: int, status: str, **counts: int | str | None) -> None:
    """Close a run with its status (success, partial, failed, cancelled), counts and error."""
    values = {k: v for k, v in counts.items() if v is not None}
    with engine.begin() as conn:
        conn.execute(
            update(EtlRun)
            .where(EtlRun.id == run_id)
            .values(status=status, finished_at=utcnow(), **values)
        )
