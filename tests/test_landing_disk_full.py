"""Disk full on the landing folder: `python etl.py run` fails with one line, its run is recorded
`failed`, the database holds no snapshot row, and no partial file is left. The landing folder is a
64 KiB tmpfs (we run as root; without the right to mount, the test is skipped with the reason,
except under CI where that fails)."""

from __future__ import annotations

import errno
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fake_coingecko import FakeCoinGecko
from helpers import etl_env, etl_runner, market_rows, query

from crypto_etl.pipeline import landing
from crypto_etl.pipeline.landing import LandingError, save_raw


@pytest.fixture
def tiny_raw(tmp_path):
    """DATA_DIR/raw as a 64 KiB tmpfs."""
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(raw)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        reason = f"cannot mount a tmpfs here: {mount.stderr.strip() or mount.returncode}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield raw
    finally:
        subprocess.run(["umount", str(raw)], check=True)


def test_a_full_landing_folder_fails_the_run_in_one_line_and_leaves_the_database_untouched(
    tmp_path, tiny_raw, db_url
):
    rows = market_rows("coins_markets_usd_250.json")  # about 180 KB of JSON: more than 64 KiB
    with FakeCoinGecko(rows) as fake:
        env = etl_env(db_url, fake.url, tmp_path / "data", OHLC_TOP_N="0")
        proc = etl_runner(tmp_path, env)("run", "--top_n=250", check=False)

    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    # The line names the run etl_runs recorded (error: run 1 failed: ...), then the cause.
    assert re.match(r"error: run \d+ failed: no space left on device: ", errors[0]), errors[0]
    assert str(tiny_raw) in errors[0] and "250 coins" in errors[0]
    assert "Traceback" not in proc.stderr
    runs = query(db_url, "SELECT command, status, error_message FROM etl_runs")
    assert len(runs) == 1 and runs[0][:2] == ("run", "failed")
    assert runs[0][2].startswith("no space left on device: ")
    for table in ("market_snapshots", "coins", "rejected_rows"):
        assert query(db_url, f"SELECT count(*) FROM {table}") == [(0,)], table
    assert list(tiny_raw.iterdir()) == []  # no partial payload, sidecar or marker


def test_a_payload_is_kept_whole_or_not_at_all(tmp_path, monkeypatch):
    """The payload fits but its sidecar does not: neither stays."""
    real = Path.write_bytes
    written: list[str] = []

    def write_bytes(self, data):
        written.append(self.name)
        if self.name.endswith(".meta.json.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    target = tmp_path / "raw" / "snap.json"
    with pytest.raises(LandingError, match=r"^no space left on device: .* 1 coins"):
        save_raw([{"id": "bitcoin"}], target, datetime(2025, 1, 1, tzinfo=UTC), pending=True)
    assert written == ["snap.json.tmp", "snap.json.meta.json.tmp"]
    assert list((tmp_path / "raw").iterdir()) == []
    assert landing.pending_payloads(tmp_path / "raw") == []
