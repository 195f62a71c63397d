"""Prometheus metrics: requests and latencies by route template, and the age of the newest data
(served at /metrics by crypto_etl.api.routes.operations).

With several uvicorn workers, PROMETHEUS_MULTIPROC_DIR names an empty folder before starting so
that /metrics adds up every worker (prometheus-client's multiprocess mode); the launcher
(crypto_etl.api.serve) prepares it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.orm import Session

from crypto_etl.alerts.conditions import KINDS
from crypto_etl.alerts.store import open_conditions

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
ALERTS_OPEN = Gauge(
    "crypto_alerts_open",
    "Open alerts by kind of condition (read at scrape time)",
    ["kind"],
    multiprocess_mode="mostrecent",
)
ALERT_OPEN = Gauge(
    "crypto_alert_open",
    "1 for each open alert, labelled with its condition key (read at scrape time)",
    ["condition", "kind"],
    multiprocess_mode="mostrecent",
)
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def request_recorder(method: str, route: str, status: int) -> Callable[[float], None]:
    """Counts and times one kind of request (method, route template, status): the label lookups
    done once, for answers the edge (crypto_etl.api.edge) serves again and again."""
    method = method if method in METHODS else "other"
    counter = REQUESTS.labels(method, route, str(status))
    histogram = LATENCY.labels(method, route)

    def record(seconds: float) -> None:
        counter.inc()
        histogram.observe(seconds)

    return record


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count and time one request under its route template (/api/v1/cryptos/{coin_id}), so the
    label set stays small whatever the paths asked for; "unmatched" when no route matched."""
    method = method if method in METHODS else "other"
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def read_open_alerts(session: Session) -> None:
    """Set the open-alert gauges from the alerts table: every kind is present, 0 when none."""
    conditions = open_conditions(session)
    ALERT_OPEN.clear()
    counts = dict.fromkeys(KINDS, 0)
    for condition, kind in conditions:
        ALERT_OPEN.labels(condition, kind).set(1)
        counts[kind] = counts.get(kind, 0) + 1
    for kind, count in counts.items():
        ALERTS_OPEN.labels(kind).set(count)
