"""Two writers at once, on SQLite and PostgreSQL: two `run`s, or a `run` and a `backfill`, on the
same database. Both finish; the one that needs the write lock while the other holds it waits and
says so; no deadlock error, no duplicate row, and the counts in both run rows add up.

The overlap is forced (tests/etl_child.py pauses each child at a chosen point): B opens its run
and pauses before writing; A starts and pauses inside its write transaction, lock held; B goes on
and must wait for the lock (the test sees its "waiting" line); then A goes on. A second test just
starts two real `python etl.py` processes at the same moment, as a user would.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from etl_child import ChildResult, ChildRunner
from fake_coingecko import FakeCoinGecko
from helpers import ETL, TOP50_FETCHED_AT, etl_env, market_rows, query, scalar, shifted
from history_data import NOW, serve_history

COINS = {"bitcoin": 1.0, "ethereum": 0.04}
BACKFILL = ["backfill", "--coins=bitcoin,ethereum", "--days=3"]


@pytest.fixture(scope="module")
def fake():
    minutes = int((NOW - TOP50_FETCHED_AT).total_seconds() // 60) - 5
    with FakeCoinGecko(shifted(market_rows(), minutes)) as server:
        serve_history(server, COINS)
        yield server


@pytest.fixture(scope="module")
def second_runner():
    """A second harness, so that two commands run at the same time."""
    runner = ChildRunner()
    yield runner
    runner.close()


def wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)  # polling other processes, not waiting out a timer


class Child(threading.Thread):
    """One command in a harness, in the background, paused at `hold_at`."""

    def __init__(self, runner, tmp: Path, name: str, args, env, hold_at: str) -> None:
        super().__init__(daemon=True)
        self.runner, self.args, self.env, self.hold_at = runner, args, env, hold_at
        self.cwd = tmp / name
        self.hold = self.cwd / "hold"
        self.hold.mkdir(parents=True)
        self.stderr_path = self.cwd / "stderr.log"
        self.result: ChildResult | None = None

    def run(self) -> None:
        self.result = self.runner.run(
            self.args,
            self.cwd,
            self.env,
            now=NOW,
            hold_at=self.hold_at,
            hold=self.hold,
            stderr_path=self.stderr_path,
        )

    def paused(self) -> bool:
        return (self.hold / "reached").exists()

    def release(self) -> None:
        (self.hold / "release").write_text("go")

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""


def overlap(a: Child, b: Child) -> tuple[ChildResult, ChildResult]:
    """B pauses before its write, A pauses holding the lock, B must wait, then A goes on."""
    b.start()
    wait_for(b.paused, "B never reached its pause")
    a.start()
    wait_for(a.paused, "A never reached its pause")
    b.release()
    wait_for(lambda: "waiting" in b.stderr(), "B did not wait for A's write lock")
    a.release()
    a.join(120)
    b.join(120)
    assert a.result is not None and b.result is not None
    for child in (a, b):
        assert child.result.returncode == 0, child.result.stderr
        assert "deadlock" not in child.result.stderr.lower()
        assert "error:" not in child.result.stderr
    return a.result, b.result


def env_for(db_url: str, fake, cwd: Path, **settings: str) -> dict[str, str]:
    return etl_env(db_url, fake.url, cwd / "data", COINGECKO_MAX_RETRIES="0", **settings)


def test_two_runs_at_once_one_waits_and_both_count_right(
    db_url, fake, etl_children, second_runner, tmp_path
):
    # Each its own data folder (as on two machines): a run also loads the payloads another run
    # left pending in a shared one (crypto_etl.pipeline.landing), which is not under test here.
    env_a = env_for(db_url, fake, tmp_path / "data-a", OHLC_TOP_N="0")
    env_b = env_for(db_url, fake, tmp_path / "data-b", OHLC_TOP_N="0")
    a = Child(etl_children, tmp_path, "a", ["run"], env_a, "write:market_snapshots.done")
    b = Child(second_runner, tmp_path, "b", ["run"], env_b, "transform.done")
    _, waited = overlap(a, b)
    waits = [line for line in waited.stderr.splitlines() if "waiting" in line]
    assert len(waits) == 1, waited.stderr

    runs = query(
        db_url,
        "SELECT id, status, rows_extracted, rows_loaded, rows_skipped FROM etl_runs ORDER BY id",
    )
    # B opened run 1 first; A (run 2) wrote first, so B found every row stored already.
    assert runs == [(1, "success", 50, 0, 50), (2, "success", 50, 50, 0)]
    assert scalar(db_url, "SELECT count(*) FROM market_snapshots") == 50
    assert scalar(db_url, "SELECT count(DISTINCT coin_id) FROM market_snapshots") == 50
    assert scalar(db_url, "SELECT count(*) FROM coins") == 50


def test_a_run_and_a_backfill_at_once(db_url, fake, etl_children, second_runner, tmp_path):
    env = env_for(db_url, fake, tmp_path, OHLC_TOP_N="0")
    a = Child(etl_children, tmp_path, "a", ["run"], env, "write:market_snapshots.done")
    b = Child(second_runner, tmp_path, "b", BACKFILL, env, "parse.done")
    _, waited = overlap(a, b)
    # The backfill writes in several transactions and the run goes on writing after its pause,
    # so the backfill may wait more than once; it waited at least for the run's held lock.
    assert [line for line in waited.stderr.splitlines() if "waiting" in line], waited.stderr

    runs = query(db_url, "SELECT id, command, status, rows_extracted, rows_loaded FROM etl_runs")
    prices = scalar(db_url, "SELECT count(*) FROM price_history")
    candles = scalar(db_url, "SELECT count(*) FROM ohlc")
    assert sorted(runs) == [
        (1, "backfill", "success", prices + candles, prices + candles),
        (2, "run", "success", 50, 50),
    ]
    assert prices > 0 and candles > 0
    assert scalar(db_url, "SELECT count(*) FROM market_snapshots") == 50


@pytest.mark.parametrize("second", ["run", "backfill"])
def test_two_real_processes_started_together(db_url, fake, tmp_path, second):
    """As a user would: two `python etl.py` started at the same moment, twice over."""
    for attempt in range(2):
        procs = []
        for name, args in (
            ("first", ["run"]),
            ("second", [second] if second == "run" else BACKFILL),
        ):
            cwd = tmp_path / f"{attempt}-{name}"
            cwd.mkdir()
            env = env_for(db_url, fake, cwd, OHLC_TOP_N="0")
            procs.append(
                subprocess.Popen(
                    [sys.executable, ETL, *args],
                    cwd=cwd,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in procs:
            _, stderr = proc.communicate(timeout=180)
            assert proc.returncode == 0, stderr
            assert "deadlock" not in stderr.lower() and "locked" not in stderr
    assert query(db_url, "SELECT count(*) FROM etl_runs WHERE status <> 'success'") == [(0,)]
    assert scalar(db_url, "SELECT count(*) FROM market_snapshots") == 50
    loaded = scalar(db_url, "SELECT sum(rows_loaded) FROM etl_runs WHERE command = 'run'")
    assert loaded == 50  # one run stored each row, the others found it stored
