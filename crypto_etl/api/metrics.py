"""Prometheus metrics: requests and latencies by route template, and the age of the newest data.

With several uvicorn workers, set PROMETHEUS_MULTIPROC_DIR to an empty folder before starting so
that /metrics adds up every worker (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.api.deps import SessionDep
from crypto_etl.storage import queries
from crypto_etl.storage.engine import first_line

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "crypto_api_requests_total",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "crypto_api_request_duration_seconds",
    "Time to answer a request, by method and route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DATA_AGE = Gauge(
    "crypto_data_age_seconds",
    "Age of the newest row of each table the pipeline fills (read at scrape time)",
    ["table"],
    multiprocess_mode="mostrecent",
)
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (/api/v1/cryptos/{coin_id}),
    so the label set stays small whatever the paths asked for."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "other"
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - started)


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(session: SessionDep) -> Response:
    """Request counts, latency histograms and data age, in the Prometheus text format. Open even
    when API_KEY is set; a database outage leaves the data-age gauges as they were."""
    try:
        now = datetime.now(UTC)
        for table, _column, newest, _scheduled in queries.newest_per_table(session):
            if newest is not None:
                DATA_AGE.labels(table).set((now - newest).total_seconds())
    except SQLAlchemyError as exc:
        log.warning("metrics: cannot read data age: %s", first_line(exc))
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
