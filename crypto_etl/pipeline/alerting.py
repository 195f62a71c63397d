"""The pipeline's one hook into alerting: judge the alert conditions after a run, without ever
failing or holding up the run (delivery has its own time budget)."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from crypto_etl.alerts.check import CheckResult, check
from crypto_etl.errors import first_line
from crypto_etl.settings import Settings

log = logging.getLogger(__name__)


def check_alerts(settings: Settings, engine: Engine) -> CheckResult | None:
    """Evaluate the alert conditions and deliver what is owed; a failure here is logged as one
    line and None returned."""
    try:
        return check(settings, engine)
    except Exception as exc:
        log.warning("alerts: could not evaluate the alert conditions: %s", first_line(exc))
        return None
