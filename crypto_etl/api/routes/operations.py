"""Operations: liveness, readiness and Prometheus metrics. Open even when API_KEY is set."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.api.deps import SessionDep
from crypto_etl.api.errors import DATABASE_DOWN, error_response
from crypto_etl.api.metrics import DATA_AGE, read_open_alerts
from crypto_etl.api.schemas import ErrorResponse, Health, Ready
from crypto_etl.errors import first_line
from crypto_etl.storage import queries

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, summary="Liveness")
def health() -> Health:
    """The process answers; the database is not touched."""
    return Health()


@router.get(
    "/ready",
    response_model=Ready,
    summary="Readiness",
    responses={503: {"model": ErrorResponse, "description": "The database does not answer"}},
)
def ready(session: SessionDep):
    """200 when the database answers and has the schema, 503 otherwise."""
    try:
        revision = queries.schema_revision(session)
    except SQLAlchemyError as exc:
        log.warning("not ready: %s", first_line(exc))
        return error_response(503, DATABASE_DOWN)
    return Ready(database=session.get_bind().dialect.name, revision=revision)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(session: SessionDep) -> Response:
    """Request counts, latency histograms, data age and open alerts by kind and condition, in the
    Prometheus text format. A database outage leaves those gauges as they were."""
    try:
        now = datetime.now(UTC)
        for table, _column, newest, _scheduled in queries.newest_per_table(session):
            if newest is not None:
                DATA_AGE.labels(table).set((now - newest).total_seconds())
        read_open_alerts(session)
    except SQLAlchemyError as exc:
        log.warning("metrics: cannot read data age or open alerts: %s", first_line(exc))
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
