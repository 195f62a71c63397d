"""The pipeline's one hook into alerting: judge the alert conditions after a run, without ever
failing or holding up the run (delivery has its own time budget)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from crypto_etl.alerts.check import CheckResult, check
from crypto_etl.alerts.delivery import Answer, Budget, render, sample_message, send, webhooks
from crypto_etl.alerts.store import list_alerts, list_flags
from crypto_etl.clock import utcnow
from crypto_etl.errors import ConfigError, DatabaseError, first_line
from crypto_etl.settings import Settings
from crypto_etl.storage.schema import Alert, AnomalyFlag

log = logging.getLogger(__name__)
FLAGS_LOOKBACK = timedelta(days=1)


def check_alerts(settings: Settings, engine: Engine) -> CheckResult | None:
    """Evaluate the alert conditions and deliver what is owed; a failure here is logged as one
    line and None returned."""
    try:
        return check(settings, engine)
    except (DatabaseError, OperationalError) as exc:
        # The database is gone: the run reports that in its own one line; the next run judges.
        log.debug("alerts: not evaluated, the database is unavailable: %s", first_line(exc))
        return None
    except Exception as exc:
        log.warning("alerts: could not evaluate the alert conditions: %s", first_line(exc))
        return None


# -- what `python etl.py alerts` shows ------------------------------------------------------------
@dataclass(frozen=True)
class AlertsReport:
    alerts: list[Alert]
    alerts_count: int
    flags: list[AnomalyFlag]
    flags_count: int
    include_resolved: bool
    flags_since: datetime
    check: CheckResult | None

    def format(self) -> str:
        """The listing the command prints."""
        what = "alerts" if self.include_resolved else "open alerts"
        lines = [f"{what} ({self.alerts_count}):" if self.alerts_count else f"no {what}"]
        for alert in self.alerts:
            seen = f"last seen {alert.last_seen_at:%Y-%m-%d %H:%M} UTC"
            state = alert.state
            if alert.resolved_at:
                state += f" {alert.resolved_at:%Y-%m-%d %H:%M} UTC"
            lines.append(
                f"  #{alert.id} {alert.condition}  [{state}] opened "
                f"{alert.opened_at:%Y-%m-%d %H:%M} UTC, {seen}"
            )
            lines.append(f"      {alert.summary}")
        if len(self.alerts) < self.alerts_count:
            lines.append(f"  ... {self.alerts_count - len(self.alerts)} more (raise --limit)")
        since = f"{self.flags_since:%Y-%m-%d %H:%M} UTC"
        if not self.flags_count:
            lines.append(f"no anomaly flags on values since {since}")
        else:
            lines.append(f"anomaly flags on values since {since} ({self.flags_count}):")
        for flag in self.flags:
            lines.append(
                f"  {flag.observed_at:%Y-%m-%d %H:%M} UTC  {flag.coin_id} ({flag.vs_currency})  "
                f"{flag.rule}: {flag.value:.6g}, expected {flag.expected:.6g}, "
                f"score {flag.score:.3g}  [{flag.source}, run {flag.run_id}]"
            )
        if len(self.flags) < self.flags_count:
            lines.append(f"  ... {self.flags_count - len(self.flags)} more (raise --limit)")
        return "\n".join(lines)


def alerts_report(
    settings: Settings,
    engine: Engine,
    include_resolved: bool = False,
    since: datetime | None = None,
    limit: int = 50,
) -> AlertsReport:
    """Judge the conditions (data staleness among them, so it is checked even when no run
    happens), then list the alerts (open ones, or all with `include_resolved`) and the flags on
    values observed since `since` (default: the last 24 hours)."""
    result = check_alerts(settings, engine)
    flags_since = since or utcnow() - FLAGS_LOOKBACK
    with Session(engine) as session:
        alerts, alerts_count = list_alerts(
            session,
            state=None if include_resolved else "open",
            since=since if include_resolved else None,
            limit=limit,
        )
        flags, flags_count = list_flags(session, since=flags_since, limit=limit)
        session.expunge_all()
    return AlertsReport(
        alerts, alerts_count, flags, flags_count, include_resolved, flags_since, result
    )


def send_test_messages(settings: Settings) -> list[tuple[str, Answer]]:
    """Send a test message to each configured webhook: (its label, its answer) for each."""
    hooks = webhooks(settings.alerts.webhook_urls)
    if not hooks:
        raise ConfigError("ALERT_WEBHOOK_URLS is empty: there is no webhook to test")
    cfg = settings.alerts
    out = []
    now = utcnow()
    for hook in hooks:
        budget = Budget(cfg.webhook_timeout_seconds)
        body = render(sample_message(now), hook.format, now)
        out.append(
            (hook.label, send(hook, body, cfg.webhook_retries, cfg.webhook_backoff_seconds, budget))
        )
    return out
