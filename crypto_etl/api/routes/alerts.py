"""/api/v1/alerts and /api/v1/anomalies: the alerts the pipeline raised and the market values its
anomaly rules flagged (crypto_etl.alerts), read from the database. Webhook URLs are never stored,
so no answer can carry one."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from crypto_etl.alerts.store import list_alerts, list_flags
from crypto_etl.api.deps import SessionDep
from crypto_etl.api.errors import ERROR_RESPONSES, InvalidParameter
from crypto_etl.api.params import API_V1, PRINTABLE, Offset, utc
from crypto_etl.api.responses import json_response

router = APIRouter(prefix=API_V1, tags=["alerts"], responses=ERROR_RESPONSES)


class AlertState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class AlertKind(StrEnum):
    RUN_FAILED = "run_failed"
    FAILED_STREAK = "failed_streak"
    DATA_STALE = "data_stale"
    QUARANTINE_RATE = "quarantine_rate"
    ANOMALY = "anomaly"


class AnomalyRule(StrEnum):
    PRICE_MOVE = "price_move"
    VOLUME_JUMP = "volume_jump"
    MARKET_CAP = "market_cap"


ALERT_EXAMPLE = {
    "id": 12,
    "condition": "run_failed:run",
    "kind": "run_failed",
    "state": "open",
    "summary": "run 41 (run) failed: CoinGecko refused the request (401)",
    "opened_at": "2026-11-29T03:40:00Z",
    "last_seen_at": "2026-11-29T03:45:00Z",
    "resolved_at": None,
    "last_notified_at": "2026-11-29T03:40:01Z",
    "details": {"run_id": 41, "status": "failed", "error": "CoinGecko refused the request (401)"},
    "run_ids": [41],
    "coin_ids": [],
}
ANOMALY_EXAMPLE = {
    "id": 3,
    "rule": "price_move",
    "source": "market_snapshots",
    "coin_id": "bitcoin",
    "vs_currency": "usd",
    "observed_at": "2026-11-29T03:39:12Z",
    "value": 912340.0,
    "expected": 91230.5,
    "score": 881.2,
    "run_id": 41,
    "created_at": "2026-11-29T03:40:00Z",
}


class AlertOut(BaseModel):
    """One alert: an episode of a condition, open while it holds."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [ALERT_EXAMPLE]})

    id: int
    condition: str = Field(description="The condition's key", examples=["run_failed:run"])
    kind: AlertKind
    state: AlertState
    summary: str
    opened_at: datetime
    last_seen_at: datetime = Field(description="The last check that found the condition holding")
    resolved_at: datetime | None = None
    last_notified_at: datetime | None = Field(None, description="When a webhook last accepted it")
    details: dict[str, Any]
    run_ids: list[int] = Field(description="The etl_runs rows concerned")
    coin_ids: list[str] = Field(description="The coins concerned")


class AlertList(BaseModel):
    data: list[AlertOut]
    count: int = Field(description="Alerts matching the filters, over all pages")


class AnomalyOut(BaseModel):
    """A market value an anomaly rule flagged; flags are never altered or deleted."""

    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [ANOMALY_EXAMPLE]}
    )

    id: int
    rule: AnomalyRule
    source: str = Field(description="market_snapshots or price_history")
    coin_id: str
    vs_currency: str
    observed_at: datetime = Field(description="The flagged point's time")
    value: float | None = None
    expected: float | None = Field(None, description="The baseline the value was compared with")
    score: float | None = Field(
        None, description="Robust z-score (price_move, volume_jump) or relative gap (market_cap)"
    )
    run_id: int | None = None
    created_at: datetime


class AnomalyList(BaseModel):
    data: list[AnomalyOut]
    count: int = Field(description="Flags matching the filters, over all pages")


Limit = Annotated[int, Query(ge=1, le=200, description="Rows per page")]
Coin = Annotated[
    str | None,
    Query(max_length=200, pattern=PRINTABLE, description="Only this coin id", examples=["bitcoin"]),
]
Since = Annotated[datetime | None, Query(description="From this time, ISO 8601 (UTC by default)")]
Until = Annotated[datetime | None, Query(description="Up to this time, ISO 8601")]


def _window(since: datetime | None, until: datetime | None) -> tuple[datetime | None, ...]:
    since = utc(since, "since") if since else None
    until = utc(until, "until") if until else None
    if since and until and since > until:
        raise InvalidParameter("since", "must not be after until")
    return since, until


@router.get("/alerts", response_model=AlertList, summary="Alerts raised by the pipeline")
def alerts(
    session: SessionDep,
    state: Annotated[AlertState | None, Query()] = None,
    kind: Annotated[AlertKind | None, Query()] = None,
    coin: Coin = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Response:
    """Alerts, newest first: open ones while their condition holds, resolved ones once it cleared.
    `since` keeps the alerts last seen holding since then, `until` those opened by then; `coin`
    the anomaly alerts of that coin."""
    since, until = _window(since, until)
    rows, count = list_alerts(
        session,
        state=state,
        kind=kind,
        coin_id=coin,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return json_response(AlertList(data=[AlertOut.model_validate(r) for r in rows], count=count))


@router.get("/anomalies", response_model=AnomalyList, summary="Market values flagged suspicious")
def anomalies(
    session: SessionDep,
    coin: Coin = None,
    rule: Annotated[AnomalyRule | None, Query()] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Response:
    """Flagged values, newest observation first; `since` and `until` bound the flagged point's
    time."""
    since, until = _window(since, until)
    rows, count = list_flags(
        session, coin_id=coin, rule=rule, since=since, until=until, limit=limit, offset=offset
    )
    data = [AnomalyOut.model_validate(r) for r in rows]
    return json_response(AnomalyList(data=data, count=count))
