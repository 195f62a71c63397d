"""The pipeline's CoinGecko client (crypto_etl.pipeline.source): paced per process by default, by
the budget shared through the database with COINGECKO_SHARED_RATE_LIMIT on (every attempt, retries
too), per process again when the database cannot be reached; and four processes fetching from the
fake CoinGecko at once stay within one budget together."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta

import pytest
from fake_coingecko import FakeCoinGecko
from fakes import VirtualTime
from history_data import NOW, serve_history
from sqlalchemy import select

from crypto_etl.coingecko.client import CoinGeckoClient
from crypto_etl.pipeline.backfill import run_backfill
from crypto_etl.pipeline.snapshot import extract_file
from crypto_etl.pipeline.source import SharedPacer, budget_name, make_client
from crypto_etl.settings import PUBLIC_BASE_URL, Settings
from crypto_etl.storage.engine import Database, make_engine
from crypto_etl.storage.schema import RateLimit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKETS = f"{PUBLIC_BASE_URL}/coins/markets"
ROW = {"id": "bitcoin", "symbol": "btc", "name": "Bitcoin", "current_price": 1.0}
START = 1_800_000_000.0


def budgets(engine) -> dict[str, float]:
    with engine.connect() as conn:
        return dict(conn.execute(select(RateLimit.name, RateLimit.next_slot_unix_seconds)).all())


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_one_budget_per_plan_and_keyless_apart_never_the_key():
    assert budget_name(Settings()) == "coingecko:keyless"
    assert budget_name(Settings(coingecko_api_key="CG-secret")) == "coingecko:demo"
    pro = Settings(coingecko_api_key="CG-secret", coingecko_api_plan="pro")
    assert budget_name(pro) == "coingecko:pro"


@pytest.mark.parametrize(("shared", "rows"), [(False, 0), (True, 1)])
def test_the_setting_decides_where_the_budget_is_kept(engine, requests_mock, shared, rows):
    requests_mock.get(MARKETS, json=[ROW])
    settings = Settings(calls_per_minute=1e6, shared_rate_limit=shared)

    with make_client(settings, engine) as client:
        assert client.fetch_markets(1, "usd") == [ROW]

    assert len(budgets(engine)) == rows


def test_without_a_database_the_client_paces_itself(requests_mock):
    requests_mock.get(MARKETS, json=[ROW])
    with make_client(Settings(calls_per_minute=1e6, shared_rate_limit=True), None) as client:
        assert client.fetch_markets(1, "usd") == [ROW]


def test_every_attempt_retries_included_takes_a_slot(engine, requests_mock):
    requests_mock.get(
        MARKETS,
        [
            {"status_code": 429, "headers": {"retry-after": "0"}},
            {"status_code": 503},
            {"json": [ROW]},
        ],
    )
    settings = Settings(
        calls_per_minute=30, shared_rate_limit=True, retry_wait_min_seconds=0, max_retries=3
    )
    virtual = VirtualTime(START)
    pacer = SharedPacer(settings, engine, clock=virtual.clock, sleep=virtual.sleep)

    with CoinGeckoClient(settings, sleep=lambda s: None, pacer=pacer) as client:
        assert client.fetch_markets(1, "usd") == [ROW]

    assert requests_mock.call_count == 3
    assert budgets(engine) == {"coingecko:keyless": pytest.approx(START + 3 * 2.0)}
    assert virtual.sleeps == pytest.approx([2.0, 2.0])  # the first attempt waited for nothing


def test_an_unreachable_database_falls_back_to_pacing_per_process(requests_mock, caplog):
    requests_mock.get(MARKETS, json=[ROW])
    settings = Settings(calls_per_minute=1e6, shared_rate_limit=True)
    database = Database("postgresql://postgres@127.0.0.1:1/nothing")

    with caplog.at_level(logging.WARNING), make_client(settings, database) as client:
        for _ in range(3):
            assert client.fetch_markets(1, "usd") == [ROW]

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # said once, not at every call
    assert "shared CoinGecko rate limit is out of reach" in warnings[0]
    assert "pacing this process alone" in warnings[0]


def test_pipeline_steps_make_their_client_through_the_factory(engine, tmp_path):
    """extract and backfill take their slots from the shared budget when it is on."""
    with FakeCoinGecko([ROW]) as fake:
        settings = Settings(
            database_url=engine.url.render_as_string(hide_password=False),
            coingecko_base_url=fake.url,
            calls_per_minute=1e6,
            max_retries=0,
            data_dir=tmp_path,
        )
        extract_file(settings, Database.of(engine), tmp_path / "raw.json", 1, "usd")
        assert budgets(engine) == {}

        shared = replace(settings, shared_rate_limit=True)
        extract_file(shared, Database.of(engine), tmp_path / "raw.json", 1, "usd")
        after_extract = budgets(engine)["coingecko:keyless"]

        serve_history(fake, {"bitcoin": 1.0}, now=NOW)
        fake.now = NOW
        requests = len(fake.requests)
        run_backfill(engine, shared, ["bitcoin"], "usd", 1, NOW - timedelta(days=2), NOW)
        assert len(fake.requests) > requests
        assert budgets(engine)["coingecko:keyless"] > after_extract


# -- four processes, one budget, real HTTP --------------------------------------------------------
PROCESSES = 4
CALLS_EACH = 8
CALLS_PER_MINUTE = 1200  # one call every 0.05 s, so the test stays short
CHILD = f"""
import sys
from crypto_etl.pipeline.source import make_client
from crypto_etl.settings import load_settings
from crypto_etl.storage.engine import Database

settings = load_settings(dotenv=False)
database = Database(settings.database_url)
database.engine  # connected and migrated before the start signal
with make_client(settings, database) as client:
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range({CALLS_EACH}):
        client.fetch_markets(1, "usd")
print("done", flush=True)
"""


def test_four_processes_fetching_at_once_stay_within_one_budget(pg_url):
    interval = 60 / CALLS_PER_MINUTE
    with FakeCoinGecko([ROW]) as fake:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COINGECKO_")}
        env.update(
            PYTHONPATH=ROOT,
            DATABASE_URL=pg_url,
            COINGECKO_BASE_URL=fake.url,
            COINGECKO_CALLS_PER_MINUTE=str(CALLS_PER_MINUTE),
            COINGECKO_SHARED_RATE_LIMIT="on",
            COINGECKO_MAX_RETRIES="0",
        )
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        try:
            for child in children:
                assert child.stdout.readline().strip() == "ready", child.stderr.read()
            for child in children:  # all four start fetching at once
                child.stdin.write("go\n")
                child.stdin.flush()
            for child in children:
                out, err = child.communicate(timeout=60)
                assert child.returncode == 0, err
                assert out.strip() == "done"
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
        arrivals = sorted(fake.request_times)

    assert len(arrivals) == PROCESSES * CALLS_EACH
    # Slots are granted exactly one interval apart; arrivals at the server add a little jitter
    # (process scheduling, HTTP), hence the margin of two calls. Four processes each pacing
    # themselves alone would put all 32 calls in under half a second.
    per_second = CALLS_PER_MINUTE / 60
    most = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert most <= per_second + 2
    span = arrivals[-1] - arrivals[0]
    assert span >= (len(arrivals) - 2) * interval
    engine = make_engine(pg_url)
    try:
        assert list(budgets(engine)) == ["coingecko:keyless"]
    finally:
        engine.dispose()
