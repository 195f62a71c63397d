"""The alert conditions, as pure functions of facts read from the database: each returns which
condition keys it judged and, of those, the ones that hold now (a Finding each). A judged key
without a finding is clear: its open alert, if any, is resolved.

Condition keys (one open alert per key at most):
- run_failed:<command>      the newest finished run of that command failed
- failed_streak:<command>   its newest N finished runs all failed (ALERT_FAILED_RUNS_IN_A_ROW)
- quarantine_rate:<command> its newest run quarantined more than ALERT_QUARANTINE_RATE of its rows
- data_stale:<currency>     the newest snapshot's last_updated is older than
                            ALERT_STALE_AFTER_SECONDS
- anomaly:<rule>:<currency>:<coin>  the newest points of that coin raised flags of that rule
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crypto_etl.alerts.anomalies import Flag
from crypto_etl.formatting import duration

KINDS = ("run_failed", "failed_streak", "data_stale", "quarantine_rate", "anomaly")
FAILED = frozenset({"failed", "abandoned"})  # statuses that count as a failed run
SKIPPED = frozenset({"running", "cancelled"})  # a stop is not a failure, nor a success
QUARANTINE_COMMANDS = frozenset({"run", "load"})


@dataclass(frozen=True)
class RunFact:
    id: int
    command: str
    status: str
    finished_at: datetime | None
    rows_extracted: int
    rows_rejected: int
    error_message: str | None


@dataclass(frozen=True)
class Finding:
    condition: str
    kind: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    run_ids: tuple[int, ...] = ()
    coin_ids: tuple[str, ...] = ()


@dataclass
class Evaluation:
    judged: set[str] = field(default_factory=set)
    findings: dict[str, Finding] = field(default_factory=dict)

    def add(self, key: str, finding: Finding | None) -> None:
        self.judged.add(key)
        if finding is not None:
            self.findings[key] = finding

    def merge(self, other: Evaluation) -> None:
        """Add `other`, judged later: its verdicts replace this one's on the keys it judged."""
        for key in other.judged:
            self.findings.pop(key, None)
        self.judged |= other.judged
        self.findings.update(other.findings)


def run_conditions(
    command: str, newest_first: Sequence[RunFact], in_a_row: int, quarantine_rate: float
) -> Evaluation:
    """run_failed, failed_streak and quarantine_rate of one command, from its newest runs."""
    out = Evaluation()
    runs = [run for run in newest_first if run.status not in SKIPPED]
    if not runs:
        return out
    last = runs[0]
    failed = None
    if last.status in FAILED:
        failed = Finding(
            f"run_failed:{command}",
            "run_failed",
            f"run {last.id} ({command}) {last.status}: {last.error_message or 'no error recorded'}",
            {"run_id": last.id, "status": last.status, "error": last.error_message},
            (last.id,),
        )
    out.add(f"run_failed:{command}", failed)

    streak = []
    for run in runs:
        if run.status not in FAILED:
            break
        streak.append(run)
    out.add(
        f"failed_streak:{command}",
        Finding(
            f"failed_streak:{command}",
            "failed_streak",
            f"the last {len(streak)} {command} runs failed (runs "
            f"{', '.join(str(r.id) for r in reversed(streak))}); latest error: "
            f"{last.error_message or 'none recorded'}",
            {"failed_in_a_row": len(streak), "threshold": in_a_row},
            tuple(r.id for r in reversed(streak)),
        )
        if len(streak) >= in_a_row
        else None,
    )

    if command in QUARANTINE_COMMANDS:
        counted = next((r for r in runs if r.status not in FAILED and r.rows_extracted), None)
        if counted is not None:
            rate = counted.rows_rejected / counted.rows_extracted
            out.add(
                f"quarantine_rate:{command}",
                Finding(
                    f"quarantine_rate:{command}",
                    "quarantine_rate",
                    f"run {counted.id} ({command}) quarantined {counted.rows_rejected} of "
                    f"{counted.rows_extracted} rows ({rate:.0%}, threshold {quarantine_rate:.0%})",
                    {"rate": rate, "threshold": quarantine_rate, "rejected": counted.rows_rejected},
                    (counted.id,),
                )
                if rate > quarantine_rate
                else None,
            )
    return out


def staleness(
    vs_currency: str, newest: datetime | None, now: datetime, stale_after_seconds: int
) -> Evaluation:
    """data_stale for one currency; not judged while nothing is stored."""
    out = Evaluation()
    if newest is None:
        return out
    age = (now - newest).total_seconds()
    key = f"data_stale:{vs_currency}"
    finding = None
    if age > stale_after_seconds:
        finding = Finding(
            key,
            "data_stale",
            f"the newest {vs_currency} snapshot is {duration(age)} old "
            f"(last_updated {newest:%Y-%m-%d %H:%M} UTC; "
            f"threshold {duration(stale_after_seconds)})",
            {"newest": newest.isoformat(), "age_seconds": age, "threshold": stale_after_seconds},
        )
    out.add(key, finding)
    return out


def anomaly_conditions(
    coin_id: str,
    vs_currency: str,
    judged_rules: frozenset[str],
    flags: Sequence[Flag],
    run_id: int,
    source: str,
) -> Evaluation:
    """anomaly:<rule>:<currency>:<coin> for each rule that judged the coin's new points."""
    out = Evaluation()
    for rule in sorted(judged_rules):
        key = f"anomaly:{rule}:{vs_currency}:{coin_id}"
        mine = [flag for flag in flags if flag.rule == rule]
        finding = None
        if mine:
            worst = max(mine, key=lambda flag: abs(flag.score))
            finding = Finding(
                key,
                "anomaly",
                f"{coin_id} ({vs_currency}): {len(mine)} {rule} flag(s) in run {run_id}, e.g. "
                f"{worst.value:.6g} at {worst.observed_at:%Y-%m-%d %H:%M} UTC where "
                f"{worst.expected:.6g} was expected (score {worst.score:.3g})",
                {
                    "rule": rule,
                    "source": source,
                    "flags": len(mine),
                    "value": worst.value,
                    "expected": worst.expected,
                    "score": worst.score,
                    "observed_at": worst.observed_at.isoformat(),
                },
                (run_id,),
                (coin_id,),
            )
        out.add(key, finding)
    return out
