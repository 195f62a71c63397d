"""One evaluation pass: judge every condition, record flags and alert states, then deliver what
the webhooks are owed. Run after every pipeline run, on each `schedule` tick and by
`python etl.py alerts`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from crypto_etl.alerts.anomalies import RuleParams, scan
from crypto_etl.alerts.conditions import Evaluation, anomaly_conditions, run_conditions, staleness
from crypto_etl.alerts.delivery import Budget, DeliveryReport, Webhook, deliver, webhooks
from crypto_etl.alerts.store import (
    Change,
    flagged_times,
    mark_evaluated,
    newest_snapshot,
    note_attempts,
    pending_messages,
    record_flags,
    run_series,
    runs_by_command,
    unevaluated_runs,
)
from crypto_etl.alerts.store import apply as apply_evaluation
from crypto_etl.clock import utcnow
from crypto_etl.settings import AlertSettings, Settings

log = logging.getLogger(__name__)


@dataclass
class CheckResult:
    changes: list[Change] = field(default_factory=list)
    flags: int = 0
    runs_checked: int = 0
    delivery: DeliveryReport = field(default_factory=DeliveryReport)

    def of(self, event: str) -> list[Change]:
        return [change for change in self.changes if change.event == event]


def rule_params(cfg: AlertSettings) -> RuleParams:
    return RuleParams(
        price_move_z=cfg.price_move_z,
        volume_jump_z=cfg.volume_jump_z,
        market_cap_tolerance=cfg.market_cap_tolerance,
        min_history=cfg.min_history,
        window=cfg.history_window,
    )


def judge_new_points(
    engine: Engine, cfg: AlertSettings, now: datetime
) -> tuple[Evaluation, int, int]:
    """Check the new points of every run not checked yet: (evaluation, flags, runs checked)."""
    evaluation = Evaluation()
    params = rule_params(cfg)
    total = 0
    runs = unevaluated_runs(engine)
    for run_id in runs:
        count = 0
        for series in run_series(engine, run_id, cfg.history_window):
            verdict = scan(series.points, series.new_from, params, flagged_times(engine, series))
            if verdict.flags:
                record_flags(engine, series, verdict.flags, run_id, now)
                count += len(verdict.flags)
            evaluation.merge(
                anomaly_conditions(
                    series.coin_id,
                    series.vs_currency,
                    verdict.judged,
                    verdict.flags,
                    run_id,
                    series.source,
                )
            )
        mark_evaluated(engine, run_id, count, now)
        if count:
            log.warning("anomaly rules flagged %d value(s) in run %d", count, run_id)
        total += count
    return evaluation, total, len(runs)


def deliver_pending(
    engine: Engine,
    cfg: AlertSettings,
    hooks: list[Webhook],
    wait: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DeliveryReport:
    """Send what the outbox owes the configured webhooks, within ALERT_WEBHOOK_TIMEOUT_SECONDS."""
    messages = pending_messages(engine, [hook.fingerprint for hook in hooks])
    if not messages:
        return DeliveryReport()
    report = deliver(
        hooks,
        messages,
        lambda message, attempts, error: note_attempts(engine, message, attempts, utcnow(), error),
        cfg.webhook_retries,
        cfg.webhook_backoff_seconds,
        Budget(cfg.webhook_timeout_seconds, clock),
        wait,
    )
    for line in report.failed:
        log.warning("alerts: %s; the message stays queued for the next attempt", line)
    if report.delivered:
        log.info("alerts: %d message(s) delivered", report.delivered)
    return report


def check(
    settings: Settings,
    engine: Engine,
    now: datetime | None = None,
    wait: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> CheckResult:
    """Judge every condition, open and resolve alerts, deliver the messages owed."""
    cfg = settings.alerts
    now = now or utcnow()
    evaluation, flags, runs_checked = judge_new_points(engine, cfg, now)
    for command, runs in runs_by_command(engine, cfg.failed_runs_in_a_row + 5).items():
        evaluation.merge(
            run_conditions(command, runs, cfg.failed_runs_in_a_row, cfg.quarantine_rate)
        )
    newest = newest_snapshot(engine, settings.vs_currency)
    evaluation.merge(staleness(settings.vs_currency, newest, now, cfg.stale_after_seconds))
    hooks = webhooks(cfg.webhook_urls)
    changes = apply_evaluation(engine, evaluation, now, [hook.fingerprint for hook in hooks])
    for change in changes:
        level = logging.WARNING if change.event == "opened" else logging.INFO
        log.log(
            level,
            "alert %s %s: %s",
            change.event,
            change.message["condition"],
            change.message["summary"],
        )
    delivery = deliver_pending(engine, cfg, hooks, wait, clock)
    return CheckResult(changes, flags, runs_checked, delivery)
