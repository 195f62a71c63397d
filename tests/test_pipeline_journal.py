"""Journaling runs in etl_runs: every way a run can end is recorded, once, by the pipeline layer;
and Ctrl-C during a load is recorded as cancelled and reported as `error: interrupted`."""

from __future__ import annotations

import logging

import pytest
from helpers import TOP50_FETCHED_AT, market_rows, query

from crypto_etl.cli import CryptoETLPipeline
from crypto_etl.errors import CoinGeckoError, first_line
from crypto_etl.pipeline import snapshot
from crypto_etl.pipeline.journal import Cancelled, record_step, recorded_run
from crypto_etl.run_status import RunStatus
from crypto_etl.settings import Settings
from crypto_etl.shaping.snapshot_table import transform_markets, write_csv
from crypto_etl.storage.engine import Database, make_engine

RUN_ROW = "SELECT command, status, error_message, rows_extracted, rows_loaded FROM etl_runs"


@pytest.fixture(autouse=True)
def logging_restored():
    """The in-process CLI sets up logging for the process; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_the_stored_statuses_are_the_strings_sql_users_know():
    assert [s.value for s in RunStatus] == [
        "running",
        "success",
        "partial",
        "failed",
        "cancelled",
        "abandoned",
    ]
    assert f"{RunStatus.PARTIAL}" == "partial" and RunStatus("cancelled") is RunStatus.CANCELLED


def test_first_line_of_any_exception():
    assert first_line(ValueError("bad value\nmore detail")) == "bad value"
    assert first_line(ValueError()) == "ValueError"
    assert first_line(ValueError("   ")) == "ValueError"
    assert first_line(KeyboardInterrupt()) == "interrupted"  # the Ctrl-C bug: it has no message


def test_a_run_that_returns_is_recorded_with_its_status_and_counts(engine, db_url):
    with recorded_run(engine, "load", source="x.csv") as run:
        run.status, run.rows_extracted, run.rows_loaded = RunStatus.PARTIAL, 10, 8
    assert query(db_url, RUN_ROW) == [("load", "partial", None, 10, 8)]


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (CoinGeckoError("CoinGecko refused\nsecond line"), "failed", "CoinGecko refused"),
        (KeyboardInterrupt(), "cancelled", "interrupted"),
        (Cancelled(), "cancelled", "stopped"),
    ],
)
def test_a_run_that_fails_or_is_stopped_is_recorded_with_how_far_it_got(
    engine, db_url, error, status, message
):
    with pytest.raises(type(error)), recorded_run(engine, "run", vs_currency="usd") as run:
        run.rows_extracted = 50
        raise error
    assert query(db_url, RUN_ROW) == [("run", status, message, 50, 0)]


def test_a_step_is_recorded_and_an_unreachable_database_does_not_fail_it(db_url, caplog):
    assert record_step(Database(db_url), "extract", rows_extracted=3) == 1
    assert query(db_url, RUN_ROW) == [("extract", "success", None, 3, 0)]
    down = Database("postgresql://nobody@127.0.0.1:1/none")
    with caplog.at_level(logging.WARNING):
        assert record_step(down, "extract", rows_extracted=3) is None
    assert "could not record the extract step in etl_runs" in caplog.text


def test_ctrl_c_during_a_load_is_recorded_as_cancelled_and_one_line(
    sqlite_url, tmp_path, monkeypatch, capsys
):
    path = write_csv(transform_markets(market_rows(), "usd", TOP50_FETCHED_AT), tmp_path / "s.csv")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(snapshot, "load_snapshot_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        snapshot.load_file(Settings(database_url=sqlite_url), Database(sqlite_url), path)
    assert query(sqlite_url, RUN_ROW) == [("load", "cancelled", "interrupted", 0, 0)]

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        CryptoETLPipeline().load(csv_path=str(path))
    assert stopped.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: interrupted"
    assert query(sqlite_url, "SELECT status, error_message FROM etl_runs WHERE id = 2") == [
        ("cancelled", "interrupted")
    ]
