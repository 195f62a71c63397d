"""Two commands sharing one data folder never load each other's live payload: the run that fetched
a payload holds its pending marker until it ends, and a catch-up in another process leaves a held
marker alone; once its owner is gone (ended or killed), the next catch-up loads it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from helpers import market_rows, query

from crypto_etl.pipeline.landing import claim, pending_payloads, release, save_raw
from crypto_etl.pipeline.snapshot import load_pending
from crypto_etl.settings import load_settings
from crypto_etl.storage.engine import init_db, make_engine

FETCHED_AT = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)

# A process that keeps one payload pending and holds it until its stdin closes (no sleeping).
OWNER = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime
    from pathlib import Path
    from crypto_etl.pipeline.landing import save_raw
    rows = json.loads(Path(sys.argv[2]).read_text())
    save_raw(rows, Path(sys.argv[1]), datetime.fromisoformat(sys.argv[3]), pending=True,
             vs_currency="usd", top_n=len(rows))
    print("kept", flush=True)
    sys.stdin.read()
    """
)


def start_owner(raw_path: Path, tmp_path: Path) -> subprocess.Popen:
    rows = tmp_path / "rows.json"
    rows.write_text(__import__("json").dumps(market_rows()))
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(raw_path), str(rows), FETCHED_AT.isoformat()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout.readline().strip() == "kept"
    return owner


def test_a_payload_held_by_its_live_run_is_left_to_it_then_loaded_once_it_is_gone(tmp_path, db_url):
    settings = load_settings({"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path / "data")})
    engine = make_engine(db_url)
    init_db(engine)
    raw_path = settings.raw_dir / "20261129T040000000000Z_usd_top50.json"
    owner = start_owner(raw_path, tmp_path)
    try:
        (pending,) = pending_payloads(settings.raw_dir)
        assert not claim(pending)  # another process holds it
        assert load_pending(settings, engine) == []
        assert query(db_url, "SELECT count(*) FROM market_snapshots") == [(0,)]
        assert pending.marker.exists()
    finally:
        owner.stdin.close()
        assert owner.wait(timeout=30) == 0
    # Its owner is gone and never stored it: the next catch-up loads it, at its fetch time.
    (outcome,) = load_pending(settings, engine)
    assert outcome.result.loaded == 50
    assert not pending.marker.exists()
    assert query(db_url, "SELECT count(DISTINCT snapshot_at) FROM market_snapshots") == [(1,)]
    engine.dispose()


def test_a_process_holds_its_own_payload_and_can_let_it_go(tmp_path):
    raw_path = tmp_path / "raw" / "20261129T040000000000Z_usd_top50.json"
    save_raw(market_rows(), raw_path, FETCHED_AT, pending=True)
    (pending,) = pending_payloads(raw_path.parent)
    assert claim(pending)  # its own: a later tick of the same `schedule` loads it
    release(raw_path)
    owner = start_owner(tmp_path / "raw" / "other.json", tmp_path)
    try:
        other = next(
            p for p in pending_payloads(raw_path.parent) if p.raw_path.name == "other.json"
        )
        assert not claim(other)
        assert claim(pending)  # released, so free for whoever claims it
    finally:
        owner.stdin.close()
        owner.wait(timeout=30)
        release(raw_path)
