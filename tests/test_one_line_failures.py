"""One line, always: PostgreSQL goes away in the middle of `run`, `load`, `backfill` and `schedule`
(the harness, tests/etl_child.py, refuses new connections to the test database and terminates the
open ones at a chosen point). Each failure is reported on exactly one line that names the run's
etl_runs id; it is the first failure, not the journal's own failure to close the run in the same
broken database; the traceback shows only with LOG_LEVEL=DEBUG. Once the database is back, the
next command closes the run that could not be closed, so none stays `running`."""

from __future__ import annotations

import pytest
from conftest import ADMIN_URL
from etl_child import child_runner
from fake_coingecko import FakeCoinGecko
from helpers import TOP50_FETCHED_AT, etl_env, market_rows, query, shifted
from history_data import NOW, serve_history
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

LOST = "load failed and was rolled back: the connection is lost"
# How psycopg words a connection the server cut (pg_terminate_backend), by what it read first.
CUT_OFF = ("the connection is lost", "terminating connection due to administrator command")


def kept(cli) -> str:
    """The snapshot file a run cut off by the database kept in the landing folder."""
    (path,) = sorted((cli.data_dir / "raw").glob("*_top50.json"))
    return str(path)


def problem_lines(stderr: str) -> list[str]:
    """The lines that report something wrong: `error:` lines and WARNING or ERROR log records."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith("error: ") or " WARNING " in line or " ERROR " in line
    ]


@pytest.fixture
def fake():
    minutes = int((NOW - TOP50_FETCHED_AT).total_seconds() // 60) - 5
    with FakeCoinGecko(shifted(market_rows(), minutes)) as server:
        serve_history(server, {"bitcoin": 1.0})
        yield server


@pytest.fixture
def cli(pg_url, fake, tmp_path, etl_children):
    database = make_url(pg_url).database
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    env = etl_env(pg_url, fake.url, tmp_path / "data", OHLC_TOP_N="0", COINGECKO_MAX_RETRIES="0")
    run = child_runner(etl_children, tmp_path, env, NOW)

    def cut(*args: str, at: str, **extra_env: str):
        """Run `args` with the database going away at event `at`; it is back afterwards."""
        try:
            return etl_children.run(
                args,
                tmp_path,
                {**env, **extra_env},
                now=NOW,
                cut_at=at,
                cut={"admin_url": ADMIN_URL, "database": database},
            )
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))

    run.cut, run.url, run.data_dir = cut, pg_url, tmp_path / "data"
    yield run
    admin.dispose()


def test_run_cut_off_mid_load_reports_the_load_failure_naming_the_run(cli):
    proc = cli.cut("run", at="write:market_snapshots")
    assert proc.returncode == 1
    lines = problem_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: run 1 failed: database unavailable at postgresql://")
    assert LOST in lines[0] and lines[0].endswith(
        "is kept in " + kept(cli) + " and the next run loads it"
    )
    assert "Traceback" not in proc.stderr
    # The run could not be closed in the broken database; the next command closes it.
    assert query(cli.url, "SELECT id, status FROM etl_runs") == [(1, "running")]
    cli("gaps")
    cli("run")
    rows = query(cli.url, "SELECT id, status, error_message FROM etl_runs ORDER BY id")
    # The kept payload is loaded first, as a run of its own, then the run's own snapshot.
    assert [(i, s) for i, s, _ in rows] == [(1, "abandoned"), (2, "success"), (3, "success")]
    assert rows[0][2].startswith("process gone: pid ")


def test_the_traceback_shows_only_at_debug_level(cli):
    proc = cli.cut("run", at="write:market_snapshots", LOG_LEVEL="DEBUG")
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: run 1 failed: database unavailable")
    assert LOST in errors[0]


def test_a_database_gone_before_the_run_opens_is_one_database_line(cli):
    proc = cli.cut("run", at="commit#1")
    assert proc.returncode == 1
    lines = problem_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: database unavailable at postgresql://")
    assert ": connection failed: " in lines[0] and lines[0].endswith("the next run loads it")
    assert "not currently accepting connections" in lines[0]
    assert "OperationalError" not in proc.stderr and "Traceback" not in proc.stderr


def test_load_and_backfill_cut_off_report_one_line_each(cli):
    cli("extract", "--save_path=raw.json")
    cli("transform", "--input_path=raw.json", "--output_path=snap.csv")
    proc = cli.cut("load", "--csv_path=snap.csv", at="validate")
    assert proc.returncode == 1
    # psycopg names the cut as the server's last word when it arrived before the next statement
    # ("terminating connection due to administrator command"), else as "the connection is lost".
    lines = problem_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: run 3 failed: load failed and was rolled back: ")
    assert lines[0].endswith(CUT_OFF), proc.stderr

    proc = cli.cut("backfill", "--coins=bitcoin", "--days=2", at="write:price_history")
    assert proc.returncode == 1
    # Before its own work the backfill closed the load the outage left open (its own line).
    closed, *lines = problem_lines(proc.stderr)
    assert " WARNING " in closed and "run 3 (load) closed as abandoned: process gone" in closed
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: run 4 failed: storing price_history of bitcoin failed")
    assert query(cli.url, "SELECT id, status FROM etl_runs WHERE id = 3") == [(3, "abandoned")]


def test_schedule_logs_one_line_per_failed_tick_naming_tick_and_run(cli):
    proc = cli.cut(
        "schedule", "--interval_seconds=0.001", "--max_runs=2", at="write:market_snapshots"
    )
    assert proc.returncode == 0
    assert "schedule stopped after 2 run(s), 2 failed" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 2, proc.stderr
    assert " tick 1: run 1 failed: database unavailable at postgresql://" in errors[0]
    assert LOST in errors[0] and errors[0].endswith("; retrying at the next tick")
    # The second tick cannot even open its run: it says so, and names no run.
    assert " tick 2 failed: database unavailable at postgresql://" in errors[1]
    assert "Traceback" not in proc.stderr
