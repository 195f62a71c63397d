"""/api/v1/runs, /api/v1/rejected_rows and /api/v1/freshness: the pipeline's own record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from crypto_etl.analytics.freshness import table_age
from crypto_etl.api.deps import SessionDep, SettingsDep
from crypto_etl.api.errors import ERROR_RESPONSES
from crypto_etl.api.params import API_V1, PRINTABLE, Offset
from crypto_etl.api.responses import json_response
from crypto_etl.api.schemas import (
    Freshness,
    RejectedRowList,
    RejectedRowOut,
    Run,
    RunList,
    TableFreshness,
)
from crypto_etl.run_status import RunStatus
from crypto_etl.storage import queries

router = APIRouter(prefix=API_V1, tags=["pipeline"], responses=ERROR_RESPONSES)


@router.get("/runs", response_model=RunList, summary="Recent pipeline runs")
def list_runs(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Runs per page")] = 20,
    offset: Offset = 0,
    status: Annotated[RunStatus | None, Query()] = None,
    command: Annotated[
        str | None, Query(max_length=50, pattern=PRINTABLE, examples=["run"])
    ] = None,
) -> Response:
    """Pipeline runs, newest first, with their outcome and row counts. A run still `running`
    whose lease expired (its process was killed or its host went down) is shown as `abandoned`."""
    now = datetime.now(UTC)
    runs, count = queries.recent_runs(
        session, status=status, command=command, limit=limit, offset=offset, now=now
    )
    data = [Run.model_validate(run).as_of(now) for run in runs]
    return json_response(RunList(data=data, count=count))


@router.get("/rejected_rows", response_model=RejectedRowList, summary="Quarantined rows")
def list_rejected_rows(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Rows per page")] = 50,
    offset: Offset = 0,
    run_id: Annotated[int | None, Query(ge=1, le=2**62, description="Only this run's")] = None,
    rule: Annotated[
        str | None, Query(max_length=50, pattern=PRINTABLE, examples=["non_negative"])
    ] = None,
) -> Response:
    """Rows that broke a critical data quality rule, newest first, kept whole with the rule."""
    rows, count = queries.rejected_rows(
        session, run_id=run_id, rule=rule, limit=limit, offset=offset
    )
    data = [RejectedRowOut.model_validate(row) for row in rows]
    return json_response(RejectedRowList(data=data, count=count))


@router.get("/freshness", response_model=Freshness, summary="Age of the newest data")
def freshness(session: SessionDep, settings: SettingsDep) -> Response:
    """For each table the pipeline fills, its newest timestamp and age. Tables the scheduled
    pipeline refreshes count as fresh while at most two cadences (ETL_INTERVAL_SECONDS) old, so
    one late run is tolerated; backfilled tables (price_history, ohlc) have no cadence."""
    now = datetime.now(UTC)
    cadence = settings.expected_cadence_seconds
    data = []
    for table, column, newest, scheduled in queries.newest_per_table(session):
        age = table_age(newest, now, cadence, scheduled)
        data.append(
            TableFreshness(
                table=table,
                column=column,
                newest=newest,
                age_seconds=age.age_seconds,
                max_age_seconds=age.max_age_seconds,
                fresh=age.fresh,
            )
        )
    return json_response(
        Freshness(checked_at=now, expected_cadence_seconds=cadence, data=data, count=len(data))
    )
