"""`python etl.py run` with the database down still fetches and keeps the snapshot (pending in
data/raw/), fails with one line, and the next run that reaches the database loads every kept
payload first, with its fetch time as snapshot time: no hole in the history. Loading a payload
twice never duplicates a row; a payload changed since it was fetched is refused, not loaded."""

from __future__ import annotations

import json
import shutil
import socket

import pytest
from fake_coingecko import FakeCoinGecko
from helpers import etl_env, etl_runner, market_rows, query, shifted


def closed_port_url() -> str:
    """A PostgreSQL URL where nothing listens: the database is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/crypto"


@pytest.fixture
def fake():
    with FakeCoinGecko(market_rows()) as server:
        yield server


@pytest.fixture
def etl(tmp_path, fake, db_url):
    run = etl_runner(tmp_path, etl_env(db_url, fake.url, tmp_path / "data", OHLC_TOP_N="0"))
    run.db_url = db_url
    run.raw = tmp_path / "data" / "raw"
    return run


def snapshot_times(url: str) -> list[tuple[str, int]]:
    rows = query(url, "SELECT snapshot_at, count(*) FROM market_snapshots GROUP BY snapshot_at")
    return sorted((str(when)[:19].replace(" ", "T"), count) for when, count in rows)


def fetch_times(raw) -> list[str]:
    return sorted(json.loads(p.read_text())["fetched_at"][:19] for p in raw.glob("*.meta.json"))


def test_runs_while_the_database_is_down_are_kept_and_loaded_by_the_next_run(etl, fake):
    down = closed_port_url()
    for minutes in (0, 5):
        fake.markets = shifted(market_rows(), minutes)
        proc = etl("run", check=False, DATABASE_URL=down)
        assert proc.returncode == 1
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, proc.stderr
        assert errors[0].startswith("error: database unavailable at postgresql://")
        assert "the snapshot of 50 coins is kept in" in errors[0]
        assert "Traceback" not in proc.stderr
    assert len(list((etl.raw / "pending").iterdir())) == 2

    fake.markets = shifted(market_rows(), 10)
    out = etl("run").stdout
    assert out.count("caught up: run") == 2 and "run 3 success: 50 extracted, 50 loaded" in out
    assert list((etl.raw / "pending").iterdir()) == []
    # Three snapshots of 50 coins, each at the time it was fetched.
    times = snapshot_times(etl.db_url)
    assert [count for _, count in times] == [50, 50, 50]
    assert [when for when, _ in times] == fetch_times(etl.raw)
    runs = query(etl.db_url, "SELECT command, status, rows_loaded FROM etl_runs ORDER BY id")
    assert runs == [
        ("catch_up", "success", 50),
        ("catch_up", "success", 50),
        ("run", "success", 50),
    ]


def test_a_payload_loaded_twice_adds_nothing_and_a_changed_one_is_refused(etl, fake):
    proc = etl("run", check=False, DATABASE_URL=closed_port_url())
    assert proc.returncode == 1
    (marker,) = (etl.raw / "pending").iterdir()
    saved = marker.read_text()

    etl("run")  # loads the kept payload, then its own (the same rows: skipped)
    stored = query(etl.db_url, "SELECT count(*) FROM market_snapshots")
    assert stored == [(50,)]

    # As if the process died after the load committed but before the marker was removed.
    marker.write_text(saved)
    out = etl("run").stdout
    assert "caught up: run" in out and "0 loaded" in out
    assert query(etl.db_url, "SELECT count(*) FROM market_snapshots") == stored

    # A kept payload edited since it was fetched: recorded as a failed catch-up, not loaded.
    marker.write_text(saved)
    raw = etl.raw / json.loads(saved)["raw"]
    rows = json.loads(raw.read_text())
    rows[0]["current_price"] = 1
    shutil.copy(raw, raw.with_suffix(".bak"))
    raw.write_text(json.dumps(rows))
    proc = etl("run")
    assert "changed since it was fetched" in proc.stderr
    failed = query(
        etl.db_url,
        "SELECT error_message FROM etl_runs WHERE command = 'catch_up' AND status = 'failed'",
    )
    assert len(failed) == 1 and "changed since it was fetched" in failed[0][0]
    assert query(etl.db_url, "SELECT count(*) FROM market_snapshots") == stored
    assert list((etl.raw / "pending").iterdir()) == []
