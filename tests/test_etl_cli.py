"""End-to-end: every command of etl.py as a user runs it, against a fake CoinGecko over HTTP, on
SQLite and on the real PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_coingecko import FakeCoinGecko
from helpers import etl_env, etl_runner, market_rows, query, scalar, shifted

ROOT = Path(__file__).resolve().parent.parent
ETL = str(ROOT / "etl.py")
COMMANDS = (
    "extract",
    "transform",
    "validate",
    "load",
    "run",
    "schedule",
    "backfill",
    "gaps",
    "partition",
    "retention",
    "rollup",
    "init_db",
    "alerts",
)


@pytest.fixture
def fake():
    with FakeCoinGecko(market_rows()) as server:
        yield server


@pytest.fixture
def cli(tmp_path, fake, db_url):
    """Runs `python etl.py ...` in a fresh working directory against the fake CoinGecko."""
    # These tests are about snapshots; candles are tested in test_backfill_cli.
    env = etl_env(db_url, fake.url, tmp_path / "data", OHLC_TOP_N="0")
    run = etl_runner(tmp_path, env)
    run.db_url = db_url
    return run


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_the_four_steps_as_written_in_the_readme(cli, fake):
    cli("extract", "--save_path=raw.json")
    raw = json.loads((cli.cwd / "raw.json").read_text())
    assert raw == market_rows()  # kept unmodified
    cli("transform", "--input_path=raw.json", "--output_path=crypto_top_50.csv")
    header = (cli.cwd / "crypto_top_50.csv").read_text().splitlines()[0]
    assert header.startswith("id,symbol,name,image,current_price")
    out = cli("validate", "--csv_path=crypto_top_50.csv").stdout
    assert "PASSED" in out
    out = cli("load", "--csv_path=crypto_top_50.csv").stdout
    assert "loaded 50 new rows" in out
    assert scalar(cli.db_url, "SELECT count(*) FROM market_snapshots") == 50
    commands = [r[0] for r in query(cli.db_url, "SELECT command FROM etl_runs ORDER BY id")]
    assert commands == ["extract", "transform", "validate", "load"]


def test_run_twice_is_idempotent_and_a_new_snapshot_adds_history(cli, fake):
    cli("run")
    first = query(cli.db_url, "SELECT count(*), count(DISTINCT coin_id) FROM market_snapshots")
    cli("run")
    assert (
        query(cli.db_url, "SELECT count(*), count(DISTINCT coin_id) FROM market_snapshots")
        == (first)
        == [(50, 50)]
    )
    fake.markets = shifted(market_rows(), minutes=5, price_factor=1.02)
    out = cli("run").stdout
    assert "50 loaded" in out
    assert scalar(cli.db_url, "SELECT count(*) FROM market_snapshots") == 100
    runs = query(cli.db_url, "SELECT command, status, rows_extracted, rows_loaded FROM etl_runs")
    assert runs == [
        ("run", "success", 50, 50),
        ("run", "success", 50, 0),
        ("run", "success", 50, 50),
    ]
    raw_files = sorted((cli.cwd / "data" / "raw").glob("*.json"))
    assert len([p for p in raw_files if not p.name.endswith(".meta.json")]) == 3


def test_run_paginates_and_quarantines_bad_rows(cli, fake):
    rows = market_rows("coins_markets_usd_250.json")
    rows[100]["current_price"] = -3
    fake.markets = rows + shifted(rows[:60], minutes=1)  # 310 "listed" coins
    out = cli("run", "--top_n=300", "--vs_currency=usd").stdout
    assert "300 extracted" in out and "1 quarantined" in out
    pages = [q["page"] for p, q, _ in fake.requests if p.endswith("/coins/markets")]
    assert pages == ["1", "2"]
    assert query(cli.db_url, "SELECT coin_id, rule FROM rejected_rows") == [
        (rows[100]["id"], "non_negative")
    ]
    assert query(cli.db_url, "SELECT status, rows_rejected FROM etl_runs") == [("partial", 1)]


def test_validate_exits_non_zero_on_a_critical_failure(cli, fake):
    rows = market_rows()
    rows[0]["high_24h"], rows[0]["low_24h"] = 1, 2
    (cli.cwd / "raw.json").write_text(json.dumps(rows))
    cli("transform", "--input_path=raw.json", "--output_path=bad.csv")
    proc = cli("validate", "--csv_path=bad.csv", check=False)
    assert proc.returncode == 1
    assert "[FAIL] high_low" in proc.stdout and "bitcoin" in proc.stdout
    assert_one_line_error(proc, "1 of 50 rows")


@pytest.mark.parametrize(
    ("args", "setup", "needles"),
    [
        (("load", "--csv_path=missing.csv"), None, ("missing.csv", "does not exist")),
        (("transform", "--input_path=missing.json"), None, ("missing.json", "does not exist")),
        (("transform", "--input_path=broken.json"), ("broken.json", "[{"), ("not valid JSON",)),
        (("load", "--csv_path=broken.csv"), ("broken.csv", "a,b\n1,2\n"), ("missing columns",)),
        (("validate", "--csv_path=empty.csv"), ("empty.csv", ""), ("is empty",)),
        (("extract", "--top_n=0"), None, ("--top_n",)),
        (("schedule", "--interval_seconds=-5"), None, ("--interval_seconds",)),
    ],
)
def test_bad_input_gives_one_line_and_a_non_zero_exit(cli, args, setup, needles):
    if setup:
        (cli.cwd / setup[0]).write_text(setup[1])
    assert_one_line_error(cli(*args, check=False), *needles)


def test_invalid_setting_stops_at_start(cli):
    proc = cli("run", check=False, TOP_N="lots")
    assert_one_line_error(proc, "TOP_N")


def test_unreachable_database_is_one_line(cli):
    proc = cli("run", check=False, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert_one_line_error(proc, "cannot reach the database", "127.0.0.1:1")


def test_rate_limit_that_does_not_lift_and_bad_key(cli, fake):
    fake.fail_next(429, '{"status": {"error_code": 429, "error_message": "slow down"}}', times=3)
    proc = cli("extract", check=False, COINGECKO_MAX_RETRIES="0")
    assert_one_line_error(proc, "rate limit")
    fake.failures.clear()
    fake.fail_next(401, '{"status": {"error_code": 10002, "error_message": "bad key"}}')
    proc = cli("run", check=False, COINGECKO_API_KEY="wrong-key")
    assert_one_line_error(proc, "401")
    assert "wrong-key" not in proc.stderr + proc.stdout
    assert query(cli.db_url, "SELECT command, status FROM etl_runs") == [("run", "failed")]
    assert scalar(cli.db_url, "SELECT count(*) FROM market_snapshots") == 0


def test_debug_log_level_shows_the_traceback(cli):
    proc = cli("load", "--csv_path=missing.csv", check=False, LOG_LEVEL="DEBUG")
    assert "Traceback" in proc.stderr


def test_logs_go_to_stderr_and_to_the_configured_file(cli):
    log_file = cli.cwd / "logs" / "etl.log"
    proc = cli("run", LOG_FILE=str(log_file))
    assert "run 1 success" in proc.stderr
    assert "run 1 success" in log_file.read_text()


def test_a_load_killed_before_commit_leaves_the_tables_as_they_were(cli, fake, etl_children):
    cli("run")
    before = query(cli.db_url, "SELECT count(*) FROM market_snapshots")
    fake.markets = shifted(market_rows(), minutes=5)
    cli("extract", "--save_path=raw.json")
    cli("transform", "--input_path=raw.json", "--output_path=next.csv")
    # The harness kills the load once its rows are written, before its transaction commits.
    killed = etl_children.run(
        ["load", "--csv_path=next.csv"], cli.cwd, cli.env, kill_at="write:market_snapshots.done"
    )
    assert killed.returncode == -signal.SIGKILL
    assert query(cli.db_url, "SELECT count(*) FROM market_snapshots") == before
    cli("load", "--csv_path=next.csv")
    assert scalar(cli.db_url, "SELECT count(*) FROM market_snapshots") == 100
    assert query(cli.db_url, "SELECT command, status FROM etl_runs WHERE command = 'load'") == [
        ("load", "abandoned"),
        ("load", "success"),
    ]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_schedule_runs_at_its_cadence_and_stops_cleanly_on_a_signal(cli, fake, stop_signal):
    out = cli("schedule", "--interval_seconds=300", "--max_runs=1").stdout
    assert "after 1 run(s), 0 failed" in out
    proc = subprocess.Popen(
        [sys.executable, ETL, "schedule", "--interval_seconds=3600"],
        cwd=cli.cwd,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if scalar(cli.db_url, "SELECT count(*) FROM etl_runs WHERE status <> 'running'") >= 2:
                break
            time.sleep(0.1)  # polling another process, not waiting out a timer
        proc.send_signal(stop_signal)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert f"schedule stopped ({stop_signal.name}) after 1 run(s)" in stdout
    assert query(cli.db_url, "SELECT status FROM etl_runs") == [("success",), ("success",)]


def test_schedule_survives_a_failed_run(cli, fake):
    fake.fail_next(500, '{"error": "boom"}')
    proc = cli("schedule", "--interval_seconds=0.001", "--max_runs=2", COINGECKO_MAX_RETRIES="0")
    assert "after 2 run(s), 1 failed" in proc.stdout
    assert query(cli.db_url, "SELECT status FROM etl_runs ORDER BY id") == [
        ("failed",),
        ("success",),
    ]


def test_init_db_and_help(cli):
    assert "schema at revision" in cli("init_db").stdout
    proc = cli("--help")
    top = proc.stdout + proc.stderr  # fire prints help to stderr when not on a terminal
    for name in COMMANDS:
        assert name in top
    for name in COMMANDS:
        proc = cli(name, "--help")
        help_text = proc.stdout + proc.stderr
        assert "Example: python etl.py" in help_text, name
