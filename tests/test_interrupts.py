"""Ctrl-C and SIGTERM during a long `load` (a 200,000-row CSV), sent to a real `python etl.py`
process: the load is rolled back whole, the run is recorded as `cancelled`, and the command ends
with one line (`error: interrupted`, exit 130; `error: terminated (SIGTERM)`, exit 143)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from helpers import ETL, ROWS250_FETCHED_AT, etl_env, market_rows, query, scalar

from crypto_etl.shaping.snapshot_table import transform_markets, write_csv

ROWS = 200_000


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory) -> Path:
    """200,000 snapshot rows: the 250 fixture coins at 800 successive minutes."""
    base = transform_markets(market_rows("coins_markets_usd_250.json"), "usd", ROWS250_FETCHED_AT)
    frames = []
    for minute in range(ROWS // len(base)):
        frame = base.copy()
        frame["last_updated"] = frame["last_updated"] + timedelta(minutes=minute)
        frames.append(frame)
    return write_csv(pd.concat(frames, ignore_index=True), tmp_path_factory.mktemp("big") / "b.csv")


@pytest.mark.parametrize(
    ("stop", "code", "line"),
    [
        (signal.SIGINT, 130, "error: interrupted"),
        (signal.SIGTERM, 143, "error: terminated (SIGTERM)"),
    ],
)
def test_a_signal_during_a_long_load_cancels_it_cleanly(
    big_csv, db_url, tmp_path, stop, code, line
):
    env = etl_env(db_url, "http://127.0.0.1:1", tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, ETL, "load", f"--csv_path={big_csv}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not query(db_url, "SELECT id FROM etl_runs WHERE status = 'running'"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the load never started"
            time.sleep(0.02)  # polling another process, not waiting out a timer
        proc.send_signal(stop)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code, stderr
    errors = [text for text in stderr.splitlines() if text.startswith("error: ")]
    assert errors == [line], stderr
    assert "Traceback" not in stderr
    status, message, finished = query(
        db_url, "SELECT status, error_message, finished_at FROM etl_runs"
    )[0]
    assert (status, message) == ("cancelled", line.removeprefix("error: "))
    assert finished is not None
    assert scalar(db_url, "SELECT count(*) FROM market_snapshots") == 0  # rolled back whole
    assert scalar(db_url, "SELECT count(*) FROM coins") == 0
