"""No lying rows: a run's owner and lease in etl_runs, the heartbeat that renews it, and closing the
runs whose process is gone as `abandoned`, with when and why; safe with two machines on one
database (only the lease counts across hosts). The clock is handed in, never waited for."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from helpers import query
from sqlalchemy import update

from crypto_etl.api.app import create_app
from crypto_etl.errors import ConfigError
from crypto_etl.pipeline.journal import recorded_run
from crypto_etl.run_status import RunStatus
from crypto_etl.settings import Settings, load_settings
from crypto_etl.storage import runs
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.schema import EtlRun

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
TERMS = runs.LeaseTerms(heartbeat_seconds=30, lease_seconds=120)
ROW = "SELECT status, finished_at, error_message FROM etl_runs WHERE id = {}"


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pinned(monkeypatch):
    """The journal's clock, pinned: `pinned.now` is what `utcnow` answers."""

    class Clock:
        now = T0

    monkeypatch.setattr("crypto_etl.clock.utcnow", lambda: Clock.now)
    return Clock


def owned_by(engine, run_id: int, host: str, pid: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(EtlRun).where(EtlRun.id == run_id).values(owner_host=host, owner_pid=pid)
        )


def status(url: str, run_id: int) -> tuple:
    return query(url, ROW.format(run_id))[0]


def test_a_run_records_its_owner_and_lease(engine, db_url, pinned):
    run_id = runs.start_run(engine, "run", "usd", terms=TERMS)
    row = query(
        db_url,
        "SELECT status, owner_host, owner_pid, owner_token, heartbeat_at, lease_expires_at "
        "FROM etl_runs",
    )[0]
    assert row[:3] == ("running", runs.this_host(), os.getpid())
    assert len(row[3]) == 32
    pinned.now = T0 + timedelta(seconds=30)
    assert runs.renew_lease(engine, run_id, TERMS)
    beat, lease = query(db_url, "SELECT heartbeat_at, lease_expires_at FROM etl_runs")[0]
    assert str(beat)[:19] == "2026-01-05 12:00:30"
    assert str(lease)[:19] == "2026-01-05 12:02:30"
    runs.finish_run(engine, run_id, RunStatus.SUCCESS)
    assert not runs.renew_lease(engine, run_id, TERMS)  # a closed run is not renewed
    assert query(db_url, "SELECT lease_expires_at FROM etl_runs") == [(None,)]


def test_another_hosts_run_is_closed_only_when_its_lease_expired(engine, db_url, pinned):
    """Two machines on one database: a pid means nothing on the other host, the lease does."""
    run_id = runs.start_run(engine, "backfill", terms=TERMS)
    owned_by(engine, run_id, "machine-a", 4242)

    def no_pid_runs(pid: int) -> bool:
        return False  # on machine-b no process 4242 exists: that must not matter

    sweep = {"host": "machine-b", "is_alive": no_pid_runs, "terms": TERMS}
    assert runs.close_dead_runs(engine, now=T0 + timedelta(seconds=119), **sweep) == []
    assert status(db_url, run_id)[0] == "running"

    # Its heartbeat lands first: alive again for a full lease.
    runs.renew_lease(engine, run_id, TERMS, now=T0 + timedelta(seconds=100))
    assert runs.close_dead_runs(engine, now=T0 + timedelta(seconds=200), **sweep) == []

    closed = runs.close_dead_runs(engine, now=T0 + timedelta(seconds=221), **sweep)
    assert [(c.id, c.command) for c in closed] == [(run_id, "backfill")]
    state, finished, message = status(db_url, run_id)
    assert state == "abandoned"
    assert str(finished)[:19] == "2026-01-05 12:01:40"  # its last heartbeat
    assert message == (
        "process gone: lease expired at 2026-01-05T12:03:40Z (owner machine-a:4242); "
        "closed at 2026-01-05T12:03:41Z"
    )
    # A second sweep (another machine at the same time) finds nothing left to close.
    assert runs.close_dead_runs(engine, now=T0 + timedelta(seconds=222), **sweep) == []


def test_on_the_same_host_a_dead_pid_is_closed_at_once(engine, db_url, pinned):
    run_id = runs.start_run(engine, "load", terms=TERMS)
    live_id = runs.start_run(engine, "run", terms=TERMS)
    owned_by(engine, run_id, "here", 999_999)
    owned_by(engine, live_id, "here", 1)
    closed = runs.close_dead_runs(
        engine, now=T0, host="here", is_alive=lambda pid: pid == 1, terms=TERMS
    )
    assert [c.id for c in closed] == [run_id]
    assert status(db_url, run_id)[2].startswith("process gone: pid 999999 on here no longer runs")
    assert status(db_url, live_id)[0] == "running"  # live pid, lease valid


def test_a_row_without_a_lease_from_before_the_upgrade(engine, db_url, pinned):
    run_id = runs.start_run(engine, "run", terms=TERMS)
    with engine.begin() as conn:
        conn.execute(
            update(EtlRun)
            .where(EtlRun.id == run_id)
            .values(owner_host=None, owner_pid=None, heartbeat_at=None, lease_expires_at=None)
        )
    assert runs.close_dead_runs(engine, now=T0 + timedelta(seconds=60), terms=TERMS) == []
    closed = runs.close_dead_runs(engine, now=T0 + timedelta(seconds=121), terms=TERMS)
    assert [c.id for c in closed] == [run_id]
    assert "owner an older version" in status(db_url, run_id)[2]


def test_the_real_outcome_wins_over_an_early_abandoned(engine, db_url, pinned):
    run_id = runs.start_run(engine, "run", terms=TERMS)
    owned_by(engine, run_id, "elsewhere", 7)
    runs.close_dead_runs(engine, now=T0 + timedelta(hours=1), terms=TERMS)
    assert status(db_url, run_id)[0] == "abandoned"
    runs.finish_run(engine, run_id, RunStatus.SUCCESS)  # it was only suspended, and finished
    assert status(db_url, run_id)[0] == "success"


def test_the_heartbeat_thread_renews_while_the_run_works(engine, db_url):
    terms = runs.LeaseTerms(heartbeat_seconds=0.02, lease_seconds=0.04)
    settings = Settings(database_url=db_url, run_heartbeat_seconds=0.02, run_lease_seconds=0.04)
    with recorded_run(engine, "run", settings=settings) as run:
        first = query(db_url, "SELECT lease_expires_at FROM etl_runs")[0][0]
        deadline = time.monotonic() + 20
        while query(db_url, "SELECT lease_expires_at FROM etl_runs")[0][0] == first:
            assert time.monotonic() < deadline, "no heartbeat within 20 s"
            time.sleep(0.01)  # polling the other thread's write, not waiting out a timer
        assert runs.close_dead_runs(engine, terms=terms) == []
    assert query(db_url, f"SELECT status FROM etl_runs WHERE id = {run.id}") == [("success",)]


def test_every_new_run_first_closes_the_runs_whose_process_is_gone(engine, db_url, pinned):
    dead = runs.start_run(engine, "backfill", terms=TERMS)
    owned_by(engine, dead, runs.this_host(), 999_999)  # no such process here
    with recorded_run(engine, "load"):
        pass
    assert query(db_url, "SELECT id, status FROM etl_runs ORDER BY id") == [
        (dead, "abandoned"),
        (dead + 1, "success"),
    ]


def test_lease_settings():
    settings = load_settings({"RUN_HEARTBEAT_SECONDS": "5", "RUN_LEASE_SECONDS": "20"}, False)
    assert (settings.run_heartbeat_seconds, settings.run_lease_seconds) == (5.0, 20.0)
    defaults = load_settings({}, False)
    assert (defaults.run_heartbeat_seconds, defaults.run_lease_seconds) == (30.0, 120.0)
    with pytest.raises(ConfigError, match=r"RUN_LEASE_SECONDS .* at least twice"):
        load_settings({"RUN_HEARTBEAT_SECONDS": "60", "RUN_LEASE_SECONDS": "90"}, False)


def test_the_api_shows_a_run_whose_lease_expired_as_abandoned(engine, db_url):
    """The API only reads: it shows the truth before the next command records it."""
    now = datetime.now(UTC)
    lost = runs.start_run(engine, "run", "usd")
    alive = runs.start_run(engine, "backfill", "usd")
    with engine.begin() as conn:
        conn.execute(
            update(EtlRun)
            .where(EtlRun.id == lost)
            .values(
                heartbeat_at=now - timedelta(hours=2), lease_expires_at=now - timedelta(hours=1)
            )
        )
    with TestClient(create_app(Settings(database_url=db_url))) as client:
        body = client.get("/api/v1/runs").json()
        by_id = {run["id"]: run for run in body["data"]}
        assert by_id[alive]["status"] == "running" and by_id[alive]["finished_at"] is None
        assert by_id[lost]["status"] == "abandoned"
        assert by_id[lost]["error_message"].startswith("process gone: lease expired at ")
        assert by_id[lost]["finished_at"] is not None
        only = client.get("/api/v1/runs", params={"status": "abandoned"}).json()
        assert [r["id"] for r in only["data"]] == [lost]
        running = client.get("/api/v1/runs", params={"status": "running"}).json()
        assert [r["id"] for r in running["data"]] == [alive]
