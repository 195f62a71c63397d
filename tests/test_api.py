"""The REST API through TestClient, on SQLite and on PostgreSQL, with data seeded directly: the real
250-coin /coins/markets response as one pipeline run, plus hourly snapshots of three coins before
it, backfilled daily points and stored candles."""

from __future__ import annotations

import json

import pytest
import schemathesis
from api_seed import (
    API_KEY,
    END,
    FETCHED_AT,
    HOURS,
    START,
    api_client,
    start_run,
)
from fastapi.testclient import TestClient
from helpers import head_revision
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from crypto_etl.api.app import create_app
from crypto_etl.errors import ConfigError
from crypto_etl.settings import Settings, load_settings
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.schema import EtlRun, RejectedRow


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    """The one error shape; returns the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"status", "code", "message", "details"}
    assert (error["status"], error["code"]) == (status, code)
    assert error["message"]
    if field:
        assert field in error["message"]
        assert field in [d["field"].split(".")[0] for d in error["details"]]
    return error


# ---------------------------------------------------------------- operations


def test_health_touches_no_database():
    with api_client("postgresql://nobody@127.0.0.1:1/none") as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_when_database_answers(client, db_url):
    response = client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["database"] == db_url.split(":")[0]
    assert body["revision"] == head_revision()


@pytest.mark.parametrize(
    "url", ["postgresql://nobody@127.0.0.1:1/none", "sqlite:////nonexistent-dir/x/crypto.db"]
)
def test_ready_503_and_routes_503_when_database_is_down(url, tmp_path):
    if url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'empty.db'}"  # answers, but has no schema
    with api_client(url) as client:
        assert_error(client.get("/ready"), 503, "database_unavailable")
        assert_error(client.get("/api/v1/cryptos"), 503, "database_unavailable")
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_metrics_count_requests_by_route_template(client):
    client.get("/api/v1/cryptos/bitcoin")
    client.get("/api/v1/cryptos/nope-coin")
    body = client.get("/metrics").text
    assert 'route="/api/v1/cryptos/{coin_id}",status="200"' in body
    assert 'route="/api/v1/cryptos/{coin_id}",status="404"' in body
    assert "crypto_api_request_duration_seconds_bucket" in body
    assert 'crypto_data_age_seconds{table="market_snapshots"}' in body
    assert "/api/v1/cryptos/bitcoin" not in body


def test_docs_and_openapi_are_served(client):
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200
    spec = client.get("/openapi.json").json()
    paths = list(spec["paths"])
    assert paths.index("/api/v1/cryptos/top10_market_cap") < paths.index(
        "/api/v1/cryptos/{coin_id}"
    )
    for path in ("/api/v1/market/summary", "/api/v1/freshness", "/metrics", "/ready"):
        assert path in spec["paths"]
    schemas = spec["components"]["schemas"]
    assert "examples" in schemas["CryptoLatest"]
    assert "HTTPValidationError" not in schemas  # 422 documents our own error body


# ---------------------------------------------------------------- cryptos


def test_list_defaults_to_rank_order_with_total_count(client):
    response = client.get("/api/v1/cryptos")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 250
    assert len(body["data"]) == 50
    first = body["data"][0]
    assert (first["coin_id"], first["symbol"], first["name"]) == ("bitcoin", "btc", "Bitcoin")
    assert first["current_price"] == 29309.0
    assert first["last_updated"].startswith("2023-07-28T20:03:29.093")
    ranks = [row["market_cap_rank"] for row in body["data"]]
    assert ranks == sorted(ranks)


def test_list_paging_ordering_and_search(client):
    page = client.get("/api/v1/cryptos", params={"limit": 10, "offset": 245}).json()
    assert page["count"] == 250
    assert len(page["data"]) == 5
    by_volume = client.get("/api/v1/cryptos", params={"order_by": "total_volume"}).json()["data"]
    volumes = [row["total_volume"] for row in by_volume]
    assert volumes == sorted(volumes, reverse=True)
    ascending = client.get(
        "/api/v1/cryptos", params={"order_by": "price_change_percentage_24h", "order": "asc"}
    ).json()["data"]
    changes = [row["price_change_percentage_24h"] for row in ascending]
    assert changes == sorted(changes)
    found = client.get("/api/v1/cryptos", params={"q": "BIT"}).json()
    ids = {row["coin_id"] for row in found["data"]}
    assert "bitcoin" in ids and found["count"] == len(ids)
    assert client.get("/api/v1/cryptos", params={"q": "%"}).json()["count"] == 0
    eur = client.get("/api/v1/cryptos", params={"vs_currency": "EUR"}).json()
    assert [row["current_price"] for row in eur["data"]] == [26500.0]


def test_list_answers_from_cache_until_a_run_starts(seeded_url):
    with api_client(seeded_url, api_cache_check_seconds=0) as client:
        assert client.get("/api/v1/cryptos").headers["x-cache"] == "miss"
        assert client.get("/api/v1/cryptos").headers["x-cache"] == "hit"
        start_run(seeded_url)
        assert client.get("/api/v1/cryptos").headers["x-cache"] == "miss"


def test_cache_check_interval_lets_answers_lag_a_new_run(seeded_url):
    with api_client(seeded_url, api_cache_check_seconds=3600) as client:
        assert client.get("/api/v1/cryptos").headers["x-cache"] == "miss"
        start_run(seeded_url)
        assert client.get("/api/v1/cryptos").headers["x-cache"] == "hit"


def test_seed_route_top10_market_cap(client):
    response = client.get("/api/v1/cryptos/top10_market_cap")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 10
    caps = [row["market_cap"] for row in body["data"]]
    assert caps == sorted(caps, reverse=True)
    assert body["data"][0]["coin_id"] == "bitcoin"


def test_seed_route_market_cap_vs_volume(client):
    body = client.get("/api/v1/cryptos/market_cap_vs_volume", params={"limit": 5}).json()
    assert body["count"] == 5
    btc = body["data"][0]
    assert btc["coin_id"] == "bitcoin"
    assert btc["volume_to_market_cap"] == pytest.approx(7555609615 / 569778313238)


def test_coin_detail_and_404s(client):
    body = client.get("/api/v1/cryptos/bitcoin").json()
    assert body["coin_id"] == "bitcoin"
    assert body["market_cap_rank"] == 1
    assert body["first_seen_at"].startswith("2023-06-28")
    assert (
        client.get("/api/v1/cryptos/bitcoin", params={"vs_currency": "eur"}).json()["current_price"]
        == 26500.0
    )
    error = assert_error(client.get("/api/v1/cryptos/no-such-coin"), 404, "not_found")
    assert "no-such-coin" in error["message"]
    error = assert_error(
        client.get("/api/v1/cryptos/ethereum", params={"vs_currency": "eur"}), 404, "not_found"
    )
    assert "eur" in error["message"]
    assert_error(client.get("/api/v1/cryptos/no-such-coin/history"), 404, "not_found")
    assert_error(client.get("/api/v1/cryptos/no-such-coin/ohlc"), 404, "not_found")


def test_history_merges_snapshots_and_backfill(client):
    params = {"start": START, "end": END, "interval": "raw"}
    body = client.get("/api/v1/cryptos/bitcoin/history", params=params).json()
    assert body["interval"] == "raw"
    assert body["count"] == 25 + HOURS + 1 == len(body["data"])
    times = [point["ts"] for point in body["data"]]
    assert times == sorted(times)
    last = body["data"][-1]
    assert last["price"] == 29309.0
    assert set(last) == {
        "ts",
        "price",
        "market_cap",
        "total_volume",
        "simple_return",
        "log_return",
        "ma_7",
        "ma_30",
    }
    assert last["ma_7"] is not None
    assert body["data"][0]["simple_return"] is None
    second = body["data"][1]
    assert second["simple_return"] == pytest.approx(29010.0 / 29000.0 - 1)


def test_history_interval_auto_follows_the_range(client):
    url = "/api/v1/cryptos/bitcoin/history"
    month = client.get(url, params={"start": START, "end": END}).json()
    assert month["interval"] == "1h"
    assert month["count"] == 25 + HOURS + 1  # one point per hour that has one
    day = client.get(url, params={"start": "2023-07-28T00:00:00Z", "end": END}).json()
    assert day["interval"] == "raw"


def test_history_resampling_windows_and_paging(client):
    params = {"start": "2023-07-26T00:00:00Z", "end": END, "interval": "1h", "ma": [3]}
    body = client.get("/api/v1/cryptos/bitcoin/history", params=params).json()
    assert body["count"] == HOURS + 1
    assert all(point["ts"].endswith(":00:00.000Z") for point in body["data"])
    assert "ma_3" in body["data"][0] and "ma_7" not in body["data"][0]
    daily = client.get(
        "/api/v1/cryptos/bitcoin/history",
        params={"start": START, "end": END, "interval": "1d", "limit": 2, "offset": 1},
    ).json()
    assert daily["count"] == 28 and len(daily["data"]) == 2
    empty = client.get(
        "/api/v1/cryptos/bitcoin/history",
        params={"start": "2020-01-01", "end": "2020-01-02"},
    ).json()
    assert (empty["count"], empty["data"]) == (0, [])


def test_history_parameter_errors_name_the_field(client):
    url = "/api/v1/cryptos/bitcoin/history"
    assert_error(
        client.get(url, params={"start": END, "end": START}), 422, "validation_error", "start"
    )
    assert_error(
        client.get(url, params={"start": "2020-01-01", "end": "2023-01-01"}),
        422,
        "validation_error",
        "start",
    )
    assert_error(client.get(url, params={"end": "1900-01-01"}), 422, "validation_error", "end")
    assert_error(client.get(url, params={"interval": "2m"}), 422, "validation_error", "interval")
    assert_error(client.get(url, params={"ma": 1}), 422, "validation_error", "ma")
    assert_error(client.get(url, params={"start": "yesterday"}), 422, "validation_error", "start")


def test_ohlc_from_table_history_and_snapshots(client):
    url = "/api/v1/cryptos/bitcoin/ohlc"
    stored = client.get(url, params={"start": START, "end": END}).json()
    assert (stored["source"], stored["interval"], stored["count"]) == ("ohlc", "4h", 6)
    assert stored["data"][0] == {
        "ts": "2023-07-28T00:00:00.000Z",
        "open": 29000.0,
        "high": 29100.0,
        "low": 28900.0,
        "close": 29050.0,
    }
    derived = client.get(url, params={"start": START, "end": END, "interval": "1d"}).json()
    assert derived["source"] == "history"
    assert derived["count"] > 20
    for candle in derived["data"]:
        assert candle["low"] <= min(candle["open"], candle["close"])
        assert candle["high"] >= max(candle["open"], candle["close"])
    daily = client.get(
        url, params={"start": START, "end": END, "source": "snapshot_24h", "limit": 1, "offset": 48}
    ).json()
    assert (daily["source"], daily["interval"], daily["count"]) == ("snapshot_24h", "24h", 49)
    assert daily["data"][0]["open"] == pytest.approx(29309 - 143.86)
    assert daily["data"][0]["high"] == 29507.0
    empty = client.get(url, params={"start": START, "end": END, "source": "ohlc", "interval": "1h"})
    assert empty.json()["count"] == 0
    assert_error(client.get(url, params={"interval": "2h"}), 422, "validation_error", "interval")


# ---------------------------------------------------------------- market


def test_market_summary(client):
    body = client.get("/api/v1/market/summary", params={"top_n": 3}).json()
    assert body["coins"] == 250
    assert body["as_of"].startswith("2023-07-28")
    dominance = body["dominance"]
    assert [d["coin_id"] for d in dominance] == ["bitcoin", "ethereum", "tether", "others"]
    assert sum(d["share"] for d in dominance) == pytest.approx(1.0)
    assert sum(d["market_cap"] for d in dominance) == pytest.approx(body["total_market_cap"])
    assert dominance[0]["symbol"] == "btc" and dominance[-1]["symbol"] is None
    assert body["total_volume"] > 0
    assert_error(
        client.get("/api/v1/market/summary", params={"top_n": 0}), 422, "validation_error", "top_n"
    )


def test_market_summary_of_an_unknown_currency_is_empty(client):
    body = client.get("/api/v1/market/summary", params={"vs_currency": "jpy"}).json()
    assert (body["coins"], body["total_market_cap"], body["dominance"]) == (0, 0.0, [])


def test_market_correlation(client):
    params = {"top_n": 3, "days": 3, "interval": "1h"}
    body = client.get("/api/v1/market/correlation", params=params).json()
    assert body["coins"] == ["bitcoin", "ethereum", "tether"]
    matrix = body["matrix"]
    assert [matrix[i][i] for i in range(3)] == pytest.approx([1.0, 1.0, 1.0])
    assert matrix[0][1] == pytest.approx(matrix[1][0])
    assert body["observations"] == HOURS + 1
    assert body["end"].startswith("2023-07-28")
    params = {"top_n": 5, "days": 2, "interval": "1d"}
    sparse = client.get("/api/v1/market/correlation", params=params).json()
    assert sparse["matrix"] == []  # three daily prices are not enough for any coin
    assert_error(
        client.get("/api/v1/market/correlation", params={"top_n": 1}),
        422,
        "validation_error",
        "top_n",
    )


# ---------------------------------------------------------------- pipeline


def test_runs_newest_first_with_filters(client):
    body = client.get("/api/v1/runs").json()
    assert body["count"] == 3
    assert [run["id"] for run in body["data"]] == [3, 2, 1]
    assert body["data"][0]["duration_seconds"] == 30.0
    failed = client.get("/api/v1/runs", params={"status": "failed"}).json()
    assert failed["count"] == 1 and failed["data"][0]["error_message"] == "CoinGecko answered 429"
    assert client.get("/api/v1/runs", params={"command": "backfill"}).json()["count"] == 1
    assert_error(
        client.get("/api/v1/runs", params={"status": "done"}), 422, "validation_error", "status"
    )


def test_rejected_rows_newest_first_with_filters(seeded_url):
    engine = make_engine(seeded_url)
    with engine.begin() as conn:
        for i, rule in enumerate(("non_negative", "high_low", "non_negative")):
            raw = {"id": f"coin-{i}", "current_price": -1}
            conn.execute(
                insert(RejectedRow).values(
                    run_id=1 + (i == 2),
                    coin_id=f"coin-{i}",
                    vs_currency="usd",
                    rule=rule,
                    reason=f"reason {i}",
                    raw=json.dumps(raw),
                    row_hash=f"{i:064d}",
                    rejected_at=FETCHED_AT,
                )
            )
    engine.dispose()
    with api_client(seeded_url) as client:
        body = client.get("/api/v1/rejected_rows").json()
        assert body["count"] == 3
        assert [row["coin_id"] for row in body["data"]] == ["coin-2", "coin-1", "coin-0"]
        assert body["data"][0]["raw"] == {"id": "coin-2", "current_price": -1}
        only = client.get("/api/v1/rejected_rows", params={"run_id": 2}).json()
        assert [row["coin_id"] for row in only["data"]] == ["coin-2"]
        rule = client.get("/api/v1/rejected_rows", params={"rule": "high_low"}).json()
        assert rule["count"] == 1 and rule["data"][0]["reason"] == "reason 1"
        assert_error(
            client.get("/api/v1/rejected_rows", params={"limit": 0}),
            422,
            "validation_error",
            "limit",
        )


def test_freshness_reports_age_per_table(client):
    body = client.get("/api/v1/freshness").json()
    assert body["expected_cadence_seconds"] == 300
    tables = {row["table"]: row for row in body["data"]}
    assert body["count"] == len(tables) == 5
    snapshots = tables["market_snapshots"]
    assert snapshots["column"] == "last_updated"
    assert snapshots["newest"].startswith("2023-07-28")
    assert snapshots["age_seconds"] > 3600 * 24 * 365
    assert (snapshots["max_age_seconds"], snapshots["fresh"]) == (600, False)
    assert (tables["ohlc"]["max_age_seconds"], tables["ohlc"]["fresh"]) == (None, None)


def test_freshness_of_an_empty_database(sqlite_url):
    with api_client(sqlite_url) as client:
        body = client.get("/api/v1/freshness").json()
        assert all(row["newest"] is None and row["fresh"] in (False, None) for row in body["data"])
        assert client.get("/api/v1/cryptos").json() == {"data": [], "count": 0}


# ---------------------------------------------------------------- errors, key, CORS


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 251}, "limit"),
        ({"offset": -1}, "offset"),
        ({"order_by": "price"}, "order_by"),
        ({"order": "up"}, "order"),
        ({"q": "bit\x00coin"}, "q"),
        ({"vs_currency": "u$d"}, "vs_currency"),
    ],
)
def test_list_parameter_errors_name_the_field(client, params, field):
    assert_error(client.get("/api/v1/cryptos", params=params), 422, "validation_error", field)


def test_unknown_route_and_method_use_the_error_shape(client):
    assert_error(client.get("/api/v1/nothing"), 404, "not_found")
    assert_error(client.post("/api/v1/cryptos"), 405, "method_not_allowed")
    assert_error(client.get("/api/v1/cryptos/bad%20id"), 422, "validation_error", "coin_id")


def test_unexpected_error_uses_the_error_shape(seeded_url, monkeypatch):
    from crypto_etl.storage import queries

    def boom(*_args, **_kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(queries, "list_latest", boom)
    app = create_app(Settings(database_url=seeded_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        error = assert_error(client.get("/api/v1/cryptos"), 500, "internal_error")
    assert "bug" not in error["message"]


def test_api_key_guards_api_routes_only(seeded_url):
    with api_client(seeded_url, api_key=API_KEY) as client:
        assert_error(client.get("/api/v1/cryptos"), 401, "unauthorized")
        wrong = client.get("/api/v1/cryptos", headers={"X-API-Key": "nope"})
        assert_error(wrong, 401, "unauthorized")
        assert wrong.headers["www-authenticate"] == "X-API-Key"
        assert_error(client.get("/api/v1/runs", params={"limit": 0}), 401, "unauthorized")
        ok = client.get("/api/v1/cryptos", headers={"X-API-Key": API_KEY})
        assert ok.status_code == 200
        for path in ("/health", "/ready", "/docs", "/redoc", "/openapi.json", "/metrics"):
            assert client.get(path).status_code == 200, path
        spec = client.get("/openapi.json").json()
        assert "X-API-Key" in json.dumps(spec["components"]["securitySchemes"])


def test_api_key_off_by_default(client):
    assert client.get("/api/v1/runs", headers={"X-API-Key": "anything"}).status_code == 200


def test_cors_origins_are_configurable(seeded_url):
    origin = "https://dash.example.com"
    with api_client(seeded_url, cors_origins=(origin,)) as client:
        allowed = client.get("/api/v1/runs", headers={"Origin": origin})
        assert allowed.headers["access-control-allow-origin"] == origin
        other = client.get("/api/v1/runs", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = client.options(
            "/api/v1/runs",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "X-API-Key",
            },
        )
        assert preflight.status_code == 200
    with api_client(seeded_url) as client:
        plain = client.get("/api/v1/runs", headers={"Origin": origin})
        assert "access-control-allow-origin" not in plain.headers


def test_api_never_writes(seeded_url):
    with api_client(seeded_url) as client:
        engine = client.app.state.engine
        with Session(engine) as session, pytest.raises(Exception, match=r"(?i)read.only|readonly"):
            session.execute(text("DELETE FROM etl_runs"))
            session.flush()
        with Session(engine) as session:
            assert session.scalar(select(EtlRun.id).limit(1)) == 1


# ---------------------------------------------------------------- settings


def test_api_settings_from_the_environment():
    settings = load_settings(
        {
            "API_KEY": " k3y ",
            "CORS_ORIGINS": "https://a.example, http://localhost:8501/",
            "ETL_INTERVAL_SECONDS": "60",
            "API_CACHE_CHECK_SECONDS": "0",
        }
    )
    assert settings.api_key == "k3y"
    assert settings.cors_origins == ("https://a.example", "http://localhost:8501")
    assert settings.expected_cadence_seconds == 60
    assert settings.api_cache_check_seconds == 0.0
    defaults = load_settings({})
    assert (defaults.api_key, defaults.cors_origins) == (None, ())
    assert (defaults.expected_cadence_seconds, defaults.api_cache_check_seconds) == (300, 1.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CORS_ORIGINS", "dash.example.com"),
        ("ETL_INTERVAL_SECONDS", "0"),
        ("API_CACHE_CHECK_SECONDS", "-1"),
        ("API_CACHE_CHECK_SECONDS", "soon"),
    ],
)
def test_invalid_api_settings_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


# ---------------------------------------------------------------- schemathesis

OPERATIONS = [
    (path, method.upper(), bool(spec.get("parameters")))
    for path, item in create_app(Settings()).openapi()["paths"].items()
    for method, spec in item.items()
]
CONTRACT_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.mark.parametrize(("path", "method", "has_parameters"), OPERATIONS)
def test_openapi_contract(seeded_url, path, method, has_parameters):
    """Schemathesis sends generated requests, valid and invalid, to each operation of
    /openapi.json: no 5xx, and every answer matches its documented status, media type and schema.
    Bounded (a few examples per mode) and derandomized, so it stays quick and repeatable."""
    app = create_app(Settings(database_url=seeded_url))
    with TestClient(app) as client:
        # From the running client: from_asgi would start a second app life it never ends.
        schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
        operation = schema[path][method]
        modes = [GenerationMode.POSITIVE]
        if has_parameters:  # an operation without parameters has no invalid request to make
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=8,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case):
                kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
                kwargs.pop("cookies", None)
                response = client.request(**kwargs)
                case.validate_response(response, checks=CONTRACT_CHECKS)

            check()
