"""The orchestrator's task bodies (crypto_etl.orchestration), without an orchestrator: the run
names and settings the Airflow DAG hands them, each task against a fake CoinGecko and a real
database, the Airflow run recorded on every etl_runs row and served by /api/v1/runs.
(The DAG itself, in Airflow, is tested in tests/airflow/.)"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from fake_coingecko import FakeCoinGecko
from helpers import fake_with_history, query
from history_data import NOW

from crypto_etl import clock, orchestration
from crypto_etl.errors import CoinGeckoError, ConfigError, ETLError
from crypto_etl.settings import Settings
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.runs import finish_run, start_run

COINS = {"bitcoin": 1.0, "ethereum": 0.04, "ripple": 0.00002}
RUN = "crypto_etl/scheduled__2025-10-28T08:05:00+00:00"


def test_the_run_name_is_dag_run_task_and_the_map_index_of_a_mapped_task():
    assert orchestration.orchestrator_run_id("d", "r", "snapshot") == "d/r/snapshot"
    assert orchestration.orchestrator_run_id("d", "r", "snapshot", -1) == "d/r/snapshot"
    assert orchestration.orchestrator_run_id("d", "r", "backfill_coin", 0) == "d/r/backfill_coin[0]"
    assert orchestration.orchestrator_run_id("d", "r", "backfill_coin", 12) == (
        "d/r/backfill_coin[12]"
    )


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        (
            "postgres://etl:s%40cret@db.example:5433/crypto",
            "postgresql+psycopg://etl:s%40cret@db.example:5433/crypto",
        ),
        (
            "postgresql://postgres@127.0.0.1/crypto",
            "postgresql+psycopg://postgres@127.0.0.1/crypto",
        ),
        (
            "postgres://etl@db/crypto?sslmode=require",
            "postgresql+psycopg://etl@db/crypto?sslmode=require",
        ),
        ("sqlite:////var/lib/crypto.db", "sqlite:////var/lib/crypto.db"),
    ],
)
def test_an_airflow_connection_uri_becomes_our_sqlalchemy_url(uri, url):
    assert orchestration.sqlalchemy_url(uri) == url


def test_a_connection_uri_that_is_no_database_url_is_one_line_without_the_uri():
    with pytest.raises(ConfigError) as info:
        orchestration.sqlalchemy_url("not a url with secret-password")
    assert "\n" not in str(info.value)
    assert "secret-password" not in str(info.value)


def test_task_settings_take_the_connection_and_key_over_the_environment():
    base = Settings(database_url="sqlite:///data/crypto.db", coingecko_api_key="from-env")

    settings = orchestration.task_settings(
        base, f"{RUN}/snapshot", "postgres://etl@db/crypto", " from-airflow "
    )

    assert settings.database_url == "postgresql+psycopg://etl@db/crypto"
    assert settings.coingecko_api_key == "from-airflow"
    assert settings.orchestrator_run_id == f"{RUN}/snapshot"
    assert settings.shared_rate_limit is True
    assert dataclasses.replace(
        settings,
        database_url=base.database_url,
        coingecko_api_key=base.coingecko_api_key,
        orchestrator_run_id=None,
        shared_rate_limit=False,
    ) == dataclasses.replace(base, shared_rate_limit=False)


def test_task_settings_fall_back_to_the_environment_without_connection_or_variable():
    base = Settings(database_url="postgresql://env@db/crypto", coingecko_api_key="from-env")

    settings = orchestration.task_settings(base, f"{RUN}/snapshot", None, None)

    assert settings.database_url == "postgresql://env@db/crypto"
    assert settings.coingecko_api_key == "from-env"
    assert settings.shared_rate_limit is True


def test_start_run_records_the_orchestrator_run_cut_to_the_column(sqlite_url):
    engine = make_engine(sqlite_url)
    named = start_run(engine, "run", "usd", orchestrator_run_id="d/r/" + "t" * 600)
    plain = start_run(engine, "run", "usd")
    for run_id in (named, plain):
        finish_run(engine, run_id, "success")
    engine.dispose()

    rows = dict(query(sqlite_url, "SELECT id, orchestrator_run_id FROM etl_runs"))
    assert rows[named] == ("d/r/" + "t" * 600)[:500]
    assert rows[plain] is None


# -- the tasks against a fake CoinGecko and PostgreSQL ---------------------------------------------
@pytest.fixture
def fake():
    with fake_with_history(COINS) as server:
        yield server


@pytest.fixture
def at_now(monkeypatch):
    """The product's clock pinned at NOW, where the fake's history ends."""
    for module in ("crypto_etl.clock", "crypto_etl.pipeline.snapshot", "crypto_etl.orchestration"):
        monkeypatch.setattr(f"{module}.utcnow", lambda: NOW)
    assert clock.utcnow() == NOW


def task_settings(url: str, fake: FakeCoinGecko, task: str, tmp_path) -> Settings:
    base = Settings(
        database_url=url,
        coingecko_base_url=fake.url,
        calls_per_minute=1_000_000,
        max_retries=0,
        top_n=3,
        ohlc_top_n=2,
        data_dir=tmp_path / "data",
    )
    return orchestration.task_settings(base, f"{RUN}/{task}")


def runs(url: str) -> list[tuple]:
    return query(url, "SELECT command, status, orchestrator_run_id FROM etl_runs ORDER BY id")


def test_the_tasks_in_dag_order_fill_the_tables_and_name_the_airflow_run_on_every_run(
    pg_url, fake, at_now, tmp_path
):
    def settings(task: str) -> Settings:
        return task_settings(pg_url, fake, task, tmp_path)

    snap = orchestration.snapshot_task(settings("snapshot"))
    ohlc = orchestration.ohlc_task(settings("refresh_ohlc"))
    coins = orchestration.coins_to_backfill(settings("list_backfill_coins"))
    filled = [
        orchestration.backfill_coin_task(settings(f"backfill_coin[{i}]"), coin)
        for i, coin in enumerate(coins)
    ]
    gaps = orchestration.gaps_task(settings("detect_gaps"))
    alerts = orchestration.alerts_task(settings("evaluate_alerts"))

    assert snap["status"] == "success" and snap["loaded"] == 3
    assert ohlc["status"] == "success" and ohlc["coins"] == 2 and ohlc["candles_new"] > 0
    assert coins == ["bitcoin", "ethereum", "ripple"]
    assert [f["coin_id"] for f in filled] == coins
    assert all(f["points_new"] > 0 for f in filled)
    assert gaps["gaps"] == 0 and gaps["fill_command"] is None
    assert alerts["runs_checked"] >= 1
    assert runs(pg_url) == [
        ("run", "success", f"{RUN}/snapshot"),
        ("ohlc", "success", f"{RUN}/refresh_ohlc"),
        ("backfill", "success", f"{RUN}/backfill_coin[0]"),
        ("backfill", "success", f"{RUN}/backfill_coin[1]"),
        ("backfill", "success", f"{RUN}/backfill_coin[2]"),
    ]
    # Everything is up to date: the next DAG run lists no coin and refreshes no candle.
    assert orchestration.coins_to_backfill(settings("list_backfill_coins")) == []
    assert orchestration.ohlc_task(settings("refresh_ohlc"))["status"] == "nothing due"


def test_a_coin_coingecko_refuses_fails_its_task_alone_with_its_run_recorded(
    pg_url, fake, at_now, tmp_path
):
    orchestration.snapshot_task(task_settings(pg_url, fake, "snapshot", tmp_path))
    fake.fail_coins["ethereum"] = (503, '{"error": "upstream down"}')

    with pytest.raises(CoinGeckoError) as info:
        orchestration.backfill_coin_task(
            task_settings(pg_url, fake, "backfill_coin[1]", tmp_path), "ethereum"
        )
    done = orchestration.backfill_coin_task(
        task_settings(pg_url, fake, "backfill_coin[0]", tmp_path), "bitcoin"
    )

    assert "\n" not in str(info.value) and "ethereum" in str(info.value)
    assert done["points_new"] > 0
    assert runs(pg_url)[1:] == [
        ("backfill", "failed", f"{RUN}/backfill_coin[1]"),
        ("backfill", "success", f"{RUN}/backfill_coin[0]"),
    ]


def test_gaps_are_reported_by_the_task_not_raised(pg_url, fake, at_now, tmp_path):
    settings = task_settings(pg_url, fake, "x", tmp_path)
    orchestration.snapshot_task(settings)
    orchestration.backfill_coin_task(settings, "bitcoin")
    query(
        pg_url,
        "DELETE FROM price_history WHERE coin_id = 'bitcoin' AND ts BETWEEN "
        f"'{NOW - timedelta(days=20)}' AND '{NOW - timedelta(days=10)}'",
    )

    gaps = orchestration.gaps_task(settings)

    assert gaps["gaps"] == 1 and gaps["coins"] == ["bitcoin"]
    assert gaps["fill_command"].startswith("python etl.py backfill --coins=bitcoin")


def test_an_alert_evaluation_that_could_not_run_fails_its_task(sqlite_url, monkeypatch, tmp_path):
    monkeypatch.setattr(orchestration, "check_alerts", lambda settings, engine: None)
    settings = Settings(database_url=sqlite_url, data_dir=tmp_path / "data")

    with pytest.raises(ETLError, match="could not be evaluated"):
        orchestration.alerts_task(settings)


class OrchestratorTimeout(Exception):
    """What Airflow raises inside a task at its execution_timeout (AirflowTaskTimeout)."""


def test_a_timeout_raised_inside_a_task_closes_its_run_as_failed(pg_url, fake, at_now, tmp_path):
    from crypto_etl.coingecko.client import CoinGeckoClient

    orchestration.snapshot_task(task_settings(pg_url, fake, "snapshot", tmp_path))

    def times_out(*args, **kwargs):
        raise OrchestratorTimeout("Timeout, PID: 4242")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CoinGeckoClient, "fetch_market_chart_range", times_out)
        with pytest.raises(OrchestratorTimeout):
            orchestration.backfill_coin_task(
                task_settings(pg_url, fake, "backfill_coin[0]", tmp_path), "bitcoin"
            )

    assert query(
        pg_url,
        "SELECT status, error_message, orchestrator_run_id FROM etl_runs WHERE command = "
        "'backfill'",
    ) == [("failed", "Timeout, PID: 4242", f"{RUN}/backfill_coin[0]")]
