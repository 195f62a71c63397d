"""Every dashboard page through Streamlit's AppTest, with the API faked at the HTTP layer.

requests-mock answers the dashboard's requests: with the real API app run in-process on a seeded or
an empty SQLite database (so the fake cannot drift from the API's contract), or with a connection
error (API down). Each page must show its charts or a clear message, never an exception.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import requests_mock
import streamlit as st
from fastapi.testclient import TestClient
from market_seed import seed_alerts, seed_market
from streamlit.testing.v1 import AppTest

from crypto_etl.api.app import create_app
from crypto_etl.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://api.test"
PAGES = {
    "market": "crypto_etl/dashboard/pages/market_overview.py",
    "coin": "crypto_etl/dashboard/pages/coin.py",
    "correlation": "crypto_etl/dashboard/pages/correlation.py",
    "health": "crypto_etl/dashboard/pages/pipeline_health.py",
}


@pytest.fixture(autouse=True)
def dashboard_env(monkeypatch):
    monkeypatch.setenv("API_BASE_URL", BASE)
    monkeypatch.delenv("API_KEY", raising=False)
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def serve(settings: Settings):
    """requests-mock routes every call to the real API app on `settings`' database."""
    client = TestClient(create_app(settings)).__enter__()

    def answer(request, context):
        response = client.get(request.path_url, headers=dict(request.headers))
        context.status_code = response.status_code
        context.headers["content-type"] = response.headers.get("content-type", "")
        return response.content

    mock = requests_mock.Mocker()
    mock.get(re.compile(f"^{re.escape(BASE)}/"), content=answer)
    return client, mock


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory) -> str:
    from crypto_etl.storage.engine import init_db, make_engine

    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'crypto.db'}"
    engine = make_engine(url)
    init_db(engine)
    engine.dispose()
    anchor = datetime.now(UTC).replace(microsecond=0)
    seed_market(url, anchor=anchor)
    seed_alerts(url, anchor)
    return url


@pytest.fixture
def api(seeded_db):
    client, mock = serve(Settings(database_url=seeded_db))
    with mock:
        yield mock
    client.__exit__(None, None, None)


@pytest.fixture
def empty_api(sqlite_url):
    client, mock = serve(Settings(database_url=sqlite_url))
    with mock:
        yield mock
    client.__exit__(None, None, None)


@pytest.fixture
def api_down():
    with requests_mock.Mocker() as mock:
        mock.get(requests_mock.ANY, exc=requests.exceptions.ConnectionError("refused"))
        yield mock


def open_page(name: str) -> AppTest:
    app = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    app.run()
    if name != "market":
        app.switch_page(PAGES[name])
        app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def plotly_charts(app: AppTest) -> int:
    return len(app.get("plotly_chart"))


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def test_market_overview(api):
    app = open_page("market")
    labels = [m.label for m in app.metric]
    assert labels == [
        "Total market cap (USD)",
        "24h volume (USD)",
        "Bitcoin dominance",
        "Age of the data",
    ]
    assert app.metric[0].value.startswith("$") and app.metric[0].value.endswith(" T")
    assert app.metric[2].value.endswith(" %")
    assert plotly_charts(app) == 3  # market share, movers, prices
    assert len(app.dataframe) == 1 and len(app.dataframe[0].value) == 50
    app.text_input[0].input("ETH").run()
    assert not app.exception
    found = app.dataframe[0].value
    assert "ethereum" in set(found["name"].str.lower()) and len(found) < 50
    app.text_input[0].input("no-such-coin").run()
    assert "No coin matches" in texts(app.info)


def test_coin_page_with_history_and_candles(api):
    app = open_page("coin")
    assert app.selectbox[0].value == "bitcoin"
    assert [m.label for m in app.metric][:4] == [
        "Price (USD)",
        "Market cap (USD)",
        "24h volume (USD)",
        "All-time high (USD)",
    ]
    assert plotly_charts(app) == 3  # price with averages, candles, volume
    assert not app.info
    price = json.loads(app.get("plotly_chart")[0].proto.spec)
    flagged = [t for t in price["data"] if t.get("name") == "Flagged value"]
    assert len(flagged) == 1 and len(flagged[0]["x"]) == 1
    assert flagged[0]["text"][0].startswith("price_move: ")
    app.segmented_control[0].set_value("7d").run()
    assert not app.exception and plotly_charts(app) == 3


def test_coin_without_history_says_so(api):
    app = open_page("coin")
    app.selectbox[0].set_value("cardano").run()  # one snapshot, no backfill
    assert not app.exception
    assert "No price history for Cardano (ADA)" in texts(app.info)


def test_correlation_page(api):
    app = open_page("correlation")
    assert plotly_charts(app) == 1
    app.radio[0].set_value("Hourly returns").run()
    assert not app.exception and plotly_charts(app) == 1
    app.selectbox[0].set_value("7 days").run()
    app.slider[0].set_value(3).run()
    assert not app.exception and plotly_charts(app) == 1


def test_pipeline_health_page(api):
    app = open_page("health")
    assert "Data is fresh" in texts(app.success)
    assert [m.label for m in app.metric] == [
        "Last run",
        "Last successful run",
        "Failed runs (last 12)",
        "Rows quarantined (last 12 runs)",
    ]
    assert app.metric[2].value == "1" and app.metric[3].value == "2"
    assert plotly_charts(app) == 1
    assert len(app.dataframe) == 4  # open alerts, runs, rejected rows, freshness
    assert "1 open alert(s): bitcoin (usd): 1 price_move flag(s) in run 9" in texts(app.error)
    alerts = app.dataframe[0].value
    assert list(alerts["condition"]) == ["anomaly:price_move:usd:bitcoin"]


@pytest.mark.parametrize("name", list(PAGES))
def test_empty_database_gives_a_message_on_every_page(empty_api, name):
    app = open_page(name)
    assert plotly_charts(app) == 0
    if name == "health":
        assert "No pipeline runs recorded yet" in texts(app.info)
    else:
        assert "No market data yet" in texts(app.info)


@pytest.mark.parametrize("name", list(PAGES))
def test_api_down_gives_a_message_on_every_page(api_down, name):
    app = open_page(name)
    assert f"Cannot reach the API at {BASE}" in texts(app.warning)
    assert plotly_charts(app) == 0


def test_wrong_api_key_is_explained(seeded_db, monkeypatch):
    client, mock = serve(Settings(database_url=seeded_db, api_key="right-key"))
    monkeypatch.setenv("API_KEY", "wrong-key")
    with mock:
        app = open_page("market")
    client.__exit__(None, None, None)
    assert "set API_KEY" in texts(app.warning)


def test_the_key_is_sent_when_set(seeded_db, monkeypatch):
    client, mock = serve(Settings(database_url=seeded_db, api_key="right-key"))
    monkeypatch.setenv("API_KEY", "right-key")
    with mock:
        app = open_page("market")
        assert mock.request_history[0].headers["X-API-Key"] == "right-key"
    client.__exit__(None, None, None)
    assert not app.warning and plotly_charts(app) == 3


def test_refresh_clears_the_cache(api):
    app = open_page("market")
    calls = api.call_count
    app.run()
    assert api.call_count == calls  # cached
    app.button[0].click().run()
    assert not app.exception
    assert api.call_count > calls
