"""`python etl.py schedule` while its PostgreSQL server goes away and comes back, as in
`docker-compose restart db`: runs during the outage fail with one line each, the next run after it
succeeds, and no run stays `running` in etl_runs. The snapshots of the ticks during the outage are
fetched and kept all the same, and the first run after it loads them: the history has no hole.

The server is the test's own (tests/pg_cluster.py), so stopping it disturbs nobody. The outage is
placed deterministically: the fake CoinGecko's answer to the first run stops the server in the
middle of that run, and the scheduler's second wait starts it again. Nothing sleeps.
"""

from __future__ import annotations

import json
import logging
import os
import re

import pg_cluster
import pytest
from fake_coingecko import FakeCoinGecko
from helpers import etl_env, market_rows, query, shifted

from crypto_etl import cli as etl
from crypto_etl.pipeline import scheduler

pytestmark = pytest.mark.postgres
if not pg_cluster.available():
    if os.environ.get("CI"):
        pytest.fail(f"CI needs PostgreSQL 15's initdb and pg_ctl in {pg_cluster.BIN}")
    pytestmark = [pytestmark, pytest.mark.skip(reason=f"no initdb/pg_ctl in {pg_cluster.BIN}")]


@pytest.fixture
def cluster():
    server = pg_cluster.Cluster()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def restore_logging():
    """etl.py configures the root logger for the process; give the next tests theirs back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class StopsTheDatabase(FakeCoinGecko):
    """Stops `cluster` while answering the first /coins/markets request: mid-run."""

    def __init__(self, cluster: pg_cluster.Cluster) -> None:
        super().__init__(market_rows())
        self.cluster = cluster
        self.stopped = False

    def _respond(self, path, query_, headers=None):
        if not self.stopped and path.split("?")[0].endswith("/coins/markets"):
            self.stopped = True
            self.cluster.stop()
        return super()._respond(path, query_, headers)


def test_runs_cut_off_by_a_database_restart_fail_in_one_line_and_none_stays_running(
    cluster, tmp_path, monkeypatch, capsys, restore_logging
):
    waits: list[float] = []

    def wait(self, seconds: float) -> bool:  # the scheduler's pause between two runs
        waits.append(seconds)
        if len(waits) == 2:
            cluster.start()  # the database is back before the third run
        return False

    monkeypatch.setattr(scheduler.StopFlag, "wait", wait)
    monkeypatch.setattr(scheduler.StopFlag, "install", lambda self: None)
    monkeypatch.chdir(tmp_path)
    with StopsTheDatabase(cluster) as fake:
        env = etl_env(cluster.url, fake.url, tmp_path / "data", OHLC_TOP_N="0")
        for name in list(os.environ):
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        etl.CryptoETLPipeline().schedule(interval_seconds=1, max_runs=3)

    out, err = capsys.readouterr()
    assert "schedule stopped after 3 run(s), 2 failed" in out
    # Every line on stderr is one log record: no traceback, no driver hint, no link.
    log_line = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) \S+: ")
    assert all(log_line.match(line) for line in err.splitlines()), err
    failures = [line for line in err.splitlines() if " failed: " in line and "tick " in line]
    assert len(failures) == 2, err
    assert all("Connection refused" in line for line in failures), err
    assert "database unavailable at postgresql" in failures[1], err
    assert "run(s) [1], cut off by the database, recorded as failed" in err

    assert all("is kept in" in line and "the next run loads it" in line for line in failures)

    runs = query(cluster.url, "SELECT id, status, error_message FROM etl_runs ORDER BY id")
    # The run cut off, the two kept snapshots caught up on, then the third tick's own run.
    assert [(run_id, status) for run_id, status, _ in runs] == [
        (1, "failed"),
        (2, "success"),
        (3, "success"),
        (4, "success"),
    ]
    assert "connection was lost" in runs[0][2]
    assert query(cluster.url, "SELECT count(*) FROM market_snapshots") == [(50,)]


class ShiftsEveryTick(StopsTheDatabase):
    """Each /coins/markets answer is a new snapshot: last_updated five minutes on per request."""

    def __init__(self, cluster: pg_cluster.Cluster) -> None:
        super().__init__(cluster)
        self.base = market_rows()
        self.ticks = 0

    def _respond(self, path, query_, headers=None):
        if path.split("?")[0].endswith("/coins/markets"):
            self.markets = shifted(self.base, 5 * self.ticks)
            self.ticks += 1
        return super()._respond(path, query_, headers)


def test_every_tick_of_an_outage_ends_in_market_snapshots_once_the_database_is_back(
    cluster, tmp_path, monkeypatch, capsys, restore_logging
):
    """Five ticks: the database goes away during the first, stays away for the second and third,
    and is back for the fourth, which loads the three kept snapshots before its own."""
    waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        waits.append(seconds)
        if len(waits) == 3:
            cluster.start()
        return False

    monkeypatch.setattr(scheduler.StopFlag, "wait", wait)
    monkeypatch.setattr(scheduler.StopFlag, "install", lambda self: None)
    monkeypatch.chdir(tmp_path)
    with ShiftsEveryTick(cluster) as fake:
        env = etl_env(cluster.url, fake.url, tmp_path / "data", OHLC_TOP_N="0")
        for name in list(os.environ):
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        etl.CryptoETLPipeline().schedule(interval_seconds=1, max_runs=5)

    out, err = capsys.readouterr()
    assert "schedule stopped after 5 run(s), 3 failed" in out
    assert fake.ticks == 5  # every tick fetched, the database up or not
    failures = [line for line in err.splitlines() if " failed: " in line and "tick " in line]
    assert len(failures) == 3 and all("is kept in" in line for line in failures), err

    # Every tick's snapshot is stored, with the time it was fetched as its snapshot time.
    per_tick = query(
        cluster.url,
        "SELECT snapshot_at, count(*) FROM market_snapshots GROUP BY snapshot_at "
        "ORDER BY snapshot_at",
    )
    assert [count for _, count in per_tick] == [50] * 5
    raw = tmp_path / "data" / "raw"
    fetched = sorted(json.loads(meta.read_text())["fetched_at"] for meta in raw.glob("*.meta.json"))
    assert [snapshot_at.isoformat() for snapshot_at, _ in per_tick] == fetched
    assert query(cluster.url, "SELECT count(DISTINCT last_updated) FROM market_snapshots") == [
        (5 * len({row["last_updated"] for row in market_rows()}),)
    ]
    assert list((raw / "pending").iterdir()) == []  # nothing left to load

    runs = query(cluster.url, "SELECT command, status FROM etl_runs ORDER BY id")
    assert runs == [
        ("run", "failed"),  # cut off in the first tick, closed once the database was back
        ("catch_up", "success"),
        ("catch_up", "success"),
        ("catch_up", "success"),
        ("run", "success"),
        ("run", "success"),
    ]
    loaded = query(cluster.url, "SELECT rows_loaded FROM etl_runs WHERE command = 'catch_up'")
    assert loaded == [(50,), (50,), (50,)]
