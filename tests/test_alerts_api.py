"""GET /api/v1/alerts and /api/v1/anomalies, and the open-alert gauges of /metrics, through
TestClient on SQLite and PostgreSQL with alerts and flags stored directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from crypto_etl.api.app import create_app
from crypto_etl.settings import Settings, load_settings
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.schema import Alert, AnomalyFlag

T0 = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def _alert(condition: str, kind: str, state: str, minutes: int, coins=()) -> dict:
    opened = T0 + timedelta(minutes=minutes)
    return dict(
        condition=condition,
        kind=kind,
        state=state,
        summary=f"{condition} summary",
        opened_at=opened,
        last_seen_at=opened + timedelta(minutes=5),
        resolved_at=opened + timedelta(minutes=5) if state == "resolved" else None,
        details={"n": minutes},
        run_ids=[minutes],
        coin_ids=list(coins),
    )


def _flag(rule: str, coin: str, minutes: int) -> dict:
    return dict(
        rule=rule,
        source="market_snapshots",
        coin_id=coin,
        vs_currency="usd",
        observed_at=T0 + timedelta(minutes=minutes),
        value=10.0,
        expected=1.0,
        score=99.0,
        run_id=minutes,
        created_at=T0 + timedelta(minutes=minutes),
    )


@pytest.fixture
def client(db_url):
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            insert(Alert),
            [
                _alert("run_failed:run", "run_failed", "resolved", 0),
                _alert("data_stale:usd", "data_stale", "open", 10),
                _alert("anomaly:price_move:usd:bitcoin", "anomaly", "open", 20, ["bitcoin"]),
                _alert("anomaly:price_move:usd:bitcoin_cash", "anomaly", "open", 30, ["x"]),
            ],
        )
        conn.execute(
            insert(AnomalyFlag),
            [
                _flag("price_move", "bitcoin", 20),
                _flag("market_cap", "bitcoin", 21),
                _flag("price_move", "ethereum", 40),
            ],
        )
    engine.dispose()
    settings = load_settings(
        {"DATABASE_URL": db_url, "ALERT_WEBHOOK_URLS": "slack+https://hooks.slack.com/SECRET"},
        dotenv=False,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_alerts_with_filters_and_pages(client):
    body = client.get("/api/v1/alerts").json()
    assert body["count"] == 4
    assert [a["condition"] for a in body["data"]][:2] == [
        "anomaly:price_move:usd:bitcoin_cash",
        "anomaly:price_move:usd:bitcoin",
    ]
    first = body["data"][1]
    assert first["run_ids"] == [20] and first["coin_ids"] == ["bitcoin"]
    assert first["opened_at"].startswith("2026-11-29T03:20:00")
    assert client.get("/api/v1/alerts", params={"state": "open"}).json()["count"] == 3
    assert client.get("/api/v1/alerts", params={"kind": "run_failed"}).json()["count"] == 1
    bitcoin = client.get("/api/v1/alerts", params={"coin": "bitcoin"}).json()
    assert [a["condition"] for a in bitcoin["data"]] == ["anomaly:price_move:usd:bitcoin"]
    since = client.get("/api/v1/alerts", params={"since": "2026-11-29T03:20:00Z"}).json()
    assert since["count"] == 2
    page = client.get("/api/v1/alerts", params={"limit": 1, "offset": 1}).json()
    assert page["count"] == 4 and len(page["data"]) == 1


def test_anomalies_with_filters(client):
    body = client.get("/api/v1/anomalies").json()
    assert body["count"] == 3
    assert [f["coin_id"] for f in body["data"]] == ["ethereum", "bitcoin", "bitcoin"]
    assert body["data"][0]["value"] == 10.0 and body["data"][0]["rule"] == "price_move"
    only = client.get("/api/v1/anomalies", params={"coin": "bitcoin", "rule": "market_cap"})
    assert only.json()["count"] == 1
    window = client.get(
        "/api/v1/anomalies",
        params={"since": "2026-11-29T03:20:00Z", "until": "2026-11-29T03:20:30Z"},
    ).json()
    assert window["count"] == 1


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/alerts", {"state": "closed"}, "state"),
        ("/api/v1/alerts", {"kind": "nope"}, "kind"),
        ("/api/v1/alerts", {"limit": 0}, "limit"),
        ("/api/v1/anomalies", {"rule": "nope"}, "rule"),
        ("/api/v1/anomalies", {"since": "yesterday"}, "since"),
        ("/api/v1/anomalies", {"since": "2026-02-01", "until": "2026-01-01"}, "since"),
        ("/api/v1/alerts", {"until": "1999-01-01"}, "until"),
    ],
)
def test_errors_in_the_one_error_shape(client, path, params, field):
    response = client.get(path, params=params)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == field


def test_openapi_documents_both_with_examples_and_no_url_leaks(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/alerts", "/api/v1/anomalies"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["AlertOut"]["examples"][0]["condition"] == "run_failed:run"
    assert schemas["AnomalyOut"]["examples"][0]["rule"] == "price_move"
    for path in ("/openapi.json", "/api/v1/alerts", "/api/v1/anomalies", "/metrics"):
        assert "SECRET" not in client.get(path).text
        assert "hooks.slack.com" not in client.get(path).text


def test_metrics_count_open_alerts_by_kind_and_condition(client):
    text = client.get("/metrics").text
    assert 'crypto_alerts_open{kind="anomaly"} 2.0' in text
    assert 'crypto_alerts_open{kind="data_stale"} 1.0' in text
    assert 'crypto_alerts_open{kind="run_failed"} 0.0' in text
    assert 'crypto_alert_open{condition="data_stale:usd",kind="data_stale"} 1.0' in text
    assert 'condition="run_failed:run"' not in text


def test_a_database_without_alert_tables_still_serves_metrics(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with TestClient(create_app(Settings(database_url=url))) as client:
        assert client.get("/metrics").status_code == 200
