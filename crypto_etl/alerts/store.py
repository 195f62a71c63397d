"""Alerts in the database: the facts the conditions read, the flags and alert states they write,
the webhook outbox, and the listings of the command line and the API. No HTTP here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crypto_etl.alerts.anomalies import Flag, Point
from crypto_etl.alerts.conditions import Evaluation, Finding, RunFact
from crypto_etl.storage.queries import driver_rows
from crypto_etl.storage.schema import (
    Alert,
    AlertEvaluation,
    AlertOutbox,
    AnomalyFlag,
    EtlRun,
    MarketSnapshot,
    PriceHistory,
)

ALERT_COMMANDS = ("run", "load", "backfill", "ohlc")  # the runs whose outcome is watched
SOURCES = ("market_snapshots", "price_history")


# -- facts ----------------------------------------------------------------------------------------
def runs_by_command(engine: Engine, depth: int) -> dict[str, list[RunFact]]:
    """The newest `depth` runs of each watched command, newest first."""
    out: dict[str, list[RunFact]] = {}
    with engine.connect() as conn:
        for command in ALERT_COMMANDS:
            rows = conn.execute(
                select(
                    EtlRun.id,
                    EtlRun.command,
                    EtlRun.status,
                    EtlRun.finished_at,
                    EtlRun.rows_extracted,
                    EtlRun.rows_rejected,
                    EtlRun.error_message,
                )
                .where(EtlRun.command == command)
                .order_by(EtlRun.id.desc())
                .limit(depth)
            )
            facts = [RunFact(*row) for row in rows]
            if facts:
                out[command] = facts
    return out


def newest_snapshot(engine: Engine, vs_currency: str) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(
            select(func.max(MarketSnapshot.last_updated)).where(
                MarketSnapshot.vs_currency == vs_currency
            )
        ).scalar_one()


def unevaluated_runs(engine: Engine, limit: int = 100) -> list[int]:
    """Finished runs whose new points the anomaly rules have not checked yet, oldest first."""
    done = select(AlertEvaluation.run_id).where(AlertEvaluation.run_id == EtlRun.id).exists()
    with engine.connect() as conn:
        return list(
            conn.scalars(
                select(EtlRun.id)
                .where(EtlRun.status != "running", ~done)
                .order_by(EtlRun.id)
                .limit(limit)
            )
        )


@dataclass(frozen=True)
class CoinSeries:
    """One coin's stored points around a run's new ones: points[new_from:] are new."""

    source: str
    coin_id: str
    vs_currency: str
    points: list[Point]
    new_from: int


_COLUMNS = {
    "market_snapshots": (
        MarketSnapshot,
        MarketSnapshot.last_updated,
        (
            MarketSnapshot.current_price,
            MarketSnapshot.market_cap,
            MarketSnapshot.total_volume,
            MarketSnapshot.circulating_supply,
        ),
    ),
    "price_history": (
        PriceHistory,
        PriceHistory.ts,
        (PriceHistory.price, PriceHistory.market_cap, PriceHistory.total_volume),
    ),
}


def run_series(engine: Engine, run_id: int, window: int) -> list[CoinSeries]:
    """For each coin that got new points in run `run_id` (snapshots or history): its `window`
    points before the first new one, then every point from there on."""
    out: list[CoinSeries] = []
    with engine.connect() as conn:
        for source, (model, ts, values) in _COLUMNS.items():
            firsts = conn.execute(
                select(model.coin_id, model.vs_currency, func.min(ts))
                .where(model.run_id == run_id)
                .group_by(model.coin_id, model.vs_currency)
                .order_by(model.coin_id)
            ).all()
            for coin_id, vs_currency, first in firsts:
                same = and_(model.coin_id == coin_id, model.vs_currency == vs_currency)
                before = driver_rows(
                    conn,
                    select(ts, *values).where(same, ts < first).order_by(ts.desc()).limit(window),
                )
                after = driver_rows(conn, select(ts, *values).where(same, ts >= first).order_by(ts))
                points = [Point(*row) for row in reversed(before)]
                points += [Point(*row) for row in after]
                out.append(CoinSeries(source, coin_id, vs_currency, points, len(before)))
    return out


def flagged_times(engine: Engine, series: CoinSeries) -> dict[str, set[datetime]]:
    """Per rule, the times of this coin's stored points flagged before."""
    if not series.points:
        return {}
    out: dict[str, set[datetime]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(AnomalyFlag.rule, AnomalyFlag.observed_at).where(
                AnomalyFlag.source == series.source,
                AnomalyFlag.coin_id == series.coin_id,
                AnomalyFlag.vs_currency == series.vs_currency,
                AnomalyFlag.observed_at >= series.points[0].ts,
            )
        )
        for rule, observed_at in rows:
            out.setdefault(rule, set()).add(observed_at)
    return out


def _insert_ignoring_duplicates(conn: Connection, table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    maker = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(maker(table).on_conflict_do_nothing(), rows)


def record_flags(
    engine: Engine,
    series: CoinSeries,
    flags: Sequence[Flag],
    run_id: int,
    now: datetime,
) -> None:
    """Keep the flags (a point flagged before by the same rule is not flagged twice)."""
    rows = [
        {
            "rule": flag.rule,
            "source": series.source,
            "coin_id": series.coin_id,
            "vs_currency": series.vs_currency,
            "observed_at": flag.observed_at,
            "value": flag.value,
            "expected": flag.expected,
            "score": flag.score,
            "run_id": run_id,
            "created_at": now,
        }
        for flag in flags
    ]
    with engine.begin() as conn:
        _insert_ignoring_duplicates(conn, AnomalyFlag.__table__, rows)


def mark_evaluated(engine: Engine, run_id: int, flags: int, now: datetime) -> None:
    with engine.begin() as conn:
        _insert_ignoring_duplicates(
            conn,
            AlertEvaluation.__table__,
            [{"run_id": run_id, "evaluated_at": now, "flags": flags}],
        )


# -- alert states ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """An alert opened or resolved by an evaluation: a message is owed for it."""

    event: str  # opened or resolved
    alert_id: int
    message: dict[str, Any]


def message_for(alert: Alert, event: str) -> dict[str, Any]:
    """What the webhooks are told (crypto_etl.alerts.delivery formats it)."""
    return {
        "event": event,
        "alert_id": alert.id,
        "condition": alert.condition,
        "kind": alert.kind,
        "state": alert.state,
        "summary": alert.summary,
        "opened_at": alert.opened_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "run_ids": list(alert.run_ids),
        "coin_ids": list(alert.coin_ids),
        "details": alert.details,
    }


def _merged(old: Iterable, new: Iterable, keep: int = 50) -> list:
    out = list(old)
    out += [item for item in new if item not in out]
    return out[-keep:]


def apply(
    engine: Engine, evaluation: Evaluation, now: datetime, targets: Sequence[str]
) -> list[Change]:
    """Open an alert for each finding without one, refresh those already open (no message),
    resolve the open alerts of judged conditions that no longer hold; queue one outbox message
    per change and target."""
    changes: list[Change] = []
    with Session(engine, expire_on_commit=False) as session:
        judged = sorted(evaluation.judged)
        open_alerts = (
            {
                alert.condition: alert
                for alert in session.scalars(
                    select(Alert).where(Alert.state == "open", Alert.condition.in_(judged))
                )
            }
            if judged
            else {}
        )
        for key in judged:
            finding: Finding | None = evaluation.findings.get(key)
            alert = open_alerts.get(key)
            if finding is not None and alert is None:
                alert = Alert(
                    condition=key,
                    kind=finding.kind,
                    state="open",
                    summary=finding.summary,
                    opened_at=now,
                    last_seen_at=now,
                    details=finding.details,
                    run_ids=list(finding.run_ids),
                    coin_ids=list(finding.coin_ids),
                )
                session.add(alert)
                session.flush()
                changes.append(Change("opened", alert.id, message_for(alert, "opened")))
            elif finding is not None:
                alert.last_seen_at = now
                alert.summary = finding.summary
                alert.details = finding.details
                alert.run_ids = _merged(alert.run_ids, finding.run_ids)
                alert.coin_ids = _merged(alert.coin_ids, finding.coin_ids)
            elif alert is not None:
                alert.state = "resolved"
                alert.resolved_at = now
                alert.last_seen_at = now
                changes.append(Change("resolved", alert.id, message_for(alert, "resolved")))
        for change in changes:
            for target in targets:
                session.add(
                    AlertOutbox(
                        alert_id=change.alert_id,
                        event=change.event,
                        target=target,
                        message=change.message,
                        created_at=now,
                        attempts=0,
                    )
                )
        try:
            session.commit()
        except IntegrityError:
            # Another process opened the same condition meanwhile: its alert stands.
            session.rollback()
            return []
    return changes


# -- the outbox ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pending:
    id: int
    alert_id: int
    event: str
    target: str
    message: dict[str, Any]
    attempts: int


def pending_messages(engine: Engine, targets: Sequence[str]) -> list[Pending]:
    """Messages not yet accepted by a configured webhook, oldest first."""
    if not targets:
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                AlertOutbox.id,
                AlertOutbox.alert_id,
                AlertOutbox.event,
                AlertOutbox.target,
                AlertOutbox.message,
                AlertOutbox.attempts,
            )
            .where(AlertOutbox.delivered_at.is_(None), AlertOutbox.target.in_(list(targets)))
            .order_by(AlertOutbox.id)
        )
        return [Pending(*row) for row in rows]


def note_attempts(
    engine: Engine, message: Pending, attempts: int, now: datetime, error: str | None
) -> None:
    """Record a delivery's outcome: delivered when `error` is None."""
    values: dict[str, Any] = {
        "attempts": message.attempts + attempts,
        "last_attempt_at": now,
        "last_error": error,
    }
    if error is None:
        values["delivered_at"] = now
    with engine.begin() as conn:
        conn.execute(update(AlertOutbox).where(AlertOutbox.id == message.id).values(**values))
        if error is None:
            conn.execute(
                update(Alert).where(Alert.id == message.alert_id).values(last_notified_at=now)
            )


# -- listings (command line and API) ------------------------------------------------------------
def _like_suffix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%:{escaped}"


def list_alerts(
    reader: Session,
    *,
    state: str | None = None,
    kind: str | None = None,
    coin_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Alert], int]:
    """Alerts, newest first, with the number matching the filters. `since`/`until` bound the
    time an alert was last seen holding, so an alert open for long still shows."""
    filters = []
    if state:
        filters.append(Alert.state == state)
    if kind:
        filters.append(Alert.kind == kind)
    if coin_id:
        filters.append(Alert.condition.like(_like_suffix(coin_id), escape="\\"))
    if since:
        filters.append(Alert.last_seen_at >= since)
    if until:
        filters.append(Alert.opened_at <= until)
    count = reader.execute(select(func.count()).select_from(Alert).where(*filters)).scalar_one()
    stmt = select(Alert).where(*filters).order_by(Alert.id.desc()).limit(limit).offset(offset)
    return list(reader.scalars(stmt)), count


def list_flags(
    reader: Session,
    *,
    coin_id: str | None = None,
    rule: str | None = None,
    vs_currency: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AnomalyFlag], int]:
    """Anomaly flags, newest observation first, with the number matching the filters; the time
    filters bound the flagged point's time."""
    filters = []
    if coin_id:
        filters.append(AnomalyFlag.coin_id == coin_id)
    if rule:
        filters.append(AnomalyFlag.rule == rule)
    if vs_currency:
        filters.append(AnomalyFlag.vs_currency == vs_currency)
    if since:
        filters.append(AnomalyFlag.observed_at >= since)
    if until:
        filters.append(AnomalyFlag.observed_at <= until)
    count = reader.execute(
        select(func.count()).select_from(AnomalyFlag).where(*filters)
    ).scalar_one()
    stmt = (
        select(AnomalyFlag)
        .where(*filters)
        .order_by(AnomalyFlag.observed_at.desc(), AnomalyFlag.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(reader.scalars(stmt)), count


def open_conditions(reader: Session) -> list[tuple[str, str]]:
    """(condition, kind) of every open alert (for /metrics)."""
    rows = reader.execute(select(Alert.condition, Alert.kind).where(Alert.state == "open"))
    return [(condition, kind) for condition, kind in rows]
