"""Crash at any point, converge: `run`, `load` and `backfill` are each killed with SIGKILL at 20
moments picked by a seeded RNG from the events of an uninterrupted run (CoinGecko requests,
transforms, bulk writes, commits; see tests/etl_child.py), on SQLite and on PostgreSQL. After each
kill a plain re-run must leave every table identical to the uninterrupted run's (a checksum of each
table's rows; run ids and surrogate ids aside, which differ by design), with no `running` row left
and each run the kill cut off closed as `abandoned`.

The clock is pinned by the harness and one fake CoinGecko serves every command, so the event
sequence of a command is the same on every attempt and a kill point means the same moment each
time.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from fake_coingecko import FakeCoinGecko
from helpers import TOP50_FETCHED_AT, etl_env, market_rows, query, shifted
from history_data import NOW, serve_history
from sqlalchemy import create_engine, inspect, text

from crypto_etl.shaping.snapshot_table import transform_markets, write_csv
from crypto_etl.storage.partitions import is_partition_name

KILLS = 20
DATA_TABLES = (
    "coins",
    "market_snapshots",
    "rejected_rows",
    "price_history",
    "ohlc",
    "history_fetches",
    "history_hourly",  # the hourly rollup, kept in each write's transaction
)
VOLATILE = {"id", "run_id"}  # surrogate keys and the run that wrote a row differ between attempts
# The phases a kill point is drawn from, a share from each, so that every phase is hit.
PHASES = {
    "fetch": ("fetch",),
    "transform": ("transform", "parse", "validate"),
    "write": ("write:",),
    "commit": ("commit",),
    "statement": ("sql",),
}
COMMANDS = {
    "run": (["run", "--top_n=50"], {"OHLC_TOP_N": "2"}),
    "load": (["load", "--csv_path=snapshot.csv"], {"OHLC_TOP_N": "0"}),
    "backfill": (["backfill", "--coins=bitcoin,ethereum,solana", "--days=3"], {}),
}
# The tables each command fills (the others stay empty).
FILLS = {
    "run": {"coins", "market_snapshots", "ohlc", "history_fetches", "history_hourly"},
    "load": {"coins", "market_snapshots", "rejected_rows", "history_hourly"},
    "backfill": {"price_history", "ohlc", "history_fetches", "history_hourly"},
}


@pytest.fixture(scope="module")
def fake():
    """One fake CoinGecko for every command and attempt: markets just before NOW, history."""
    minutes = int((NOW - TOP50_FETCHED_AT).total_seconds() // 60) - 5
    with FakeCoinGecko(shifted(market_rows(), minutes)) as server:
        serve_history(server, {"bitcoin": 1.0, "ethereum": 0.04, "solana": 0.002})
        yield server


@pytest.fixture(scope="module")
def snapshot_csv(tmp_path_factory) -> Path:
    """The CSV `load` loads: the top 50 at NOW, one row breaking a critical rule."""
    rows = shifted(market_rows(), int((NOW - TOP50_FETCHED_AT).total_seconds() // 60) - 5)
    rows[7]["current_price"] = -1
    frame = transform_markets(rows, "usd", NOW - timedelta(minutes=4))
    return write_csv(frame, tmp_path_factory.mktemp("csv") / "snapshot.csv")


@dataclass
class Attempt:
    """A fresh database and working directory for one attempt."""

    url: str
    cwd: Path


class Databases:
    """Fresh databases, fast: a copy of a migrated SQLite file, or PostgreSQL tables truncated."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp, self.count = url, tmp, 0
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            self.template = Path(url.removeprefix("sqlite:///"))
        else:
            # The monthly partitions there now; those a command creates are dropped again, so
            # that every attempt starts from the same tables and runs the same statements.
            self.partitions = self._partitions()

    def _partitions(self) -> set[str]:
        engine = create_engine(self.url)
        try:
            return {t for t in inspect(engine).get_table_names() if is_partition_name(t)}
        finally:
            engine.dispose()

    def fresh(self) -> Attempt:
        self.count += 1
        cwd = self.tmp / f"attempt{self.count}"
        cwd.mkdir()
        if self.sqlite:
            target = cwd / "crypto.db"
            shutil.copyfile(self.template, target)
            return Attempt(f"sqlite:///{target}", cwd)
        engine = create_engine(self.url)
        made = self._partitions() - self.partitions
        with engine.begin() as conn:
            for name in sorted(made):
                conn.execute(text(f'DROP TABLE "{name}"'))
        tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
        with engine.begin() as conn:  # every table the migrations made, whatever they are
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return Attempt(self.url, cwd)


def checksums(url: str) -> dict[str, tuple[int, str]]:
    """Per data table: its row count and a SHA-256 of its rows (all columns but the volatile
    ones), in a fixed order."""
    engine = create_engine(url)
    try:
        columns = {
            table: [c["name"] for c in inspect(engine).get_columns(table)] for table in DATA_TABLES
        }
        out = {}
        with engine.connect() as conn:
            for table, names in columns.items():
                kept = ", ".join(f'"{n}"' for n in names if n not in VOLATILE)
                rows = conn.execute(text(f"SELECT {kept} FROM {table} ORDER BY {kept}")).all()
                digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
                out[table] = (len(rows), digest)
        return out
    finally:
        engine.dispose()


def kill_points(events: list[str], seed: str) -> list[int]:
    """KILLS event numbers (1-based), an equal share from each phase and the rest from anywhere,
    picked by a seeded RNG."""
    rng = random.Random(seed)
    picked: set[int] = set()
    per_phase = KILLS // len(PHASES)
    for prefixes in PHASES.values():
        numbers = [i for i, e in enumerate(events, 1) if e.startswith(prefixes)]
        picked.update(rng.sample(numbers, min(per_phase, len(numbers))))
    rest = [i for i in range(1, len(events) + 1) if i not in picked]
    picked.update(rng.sample(rest, KILLS - len(picked)))
    return sorted(picked)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_killed_anywhere_a_rerun_converges(
    command, db_url, fake, snapshot_csv, etl_children, tmp_path
):
    args, settings = COMMANDS[command]
    databases = Databases(db_url, tmp_path)

    def run(attempt: Attempt, kill_at: int | None = None, trace: bool = False):
        shutil.copyfile(snapshot_csv, attempt.cwd / "snapshot.csv")
        env = etl_env(
            attempt.url, fake.url, attempt.cwd / "data", COINGECKO_MAX_RETRIES="0", **settings
        )
        return etl_children.run(args, attempt.cwd, env, now=NOW, kill_at=kill_at, trace=trace)

    clean = databases.fresh()
    uninterrupted = run(clean, trace=True)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    expected = checksums(clean.url)
    assert {table for table, (count, _) in expected.items() if count} == FILLS[command]
    events = uninterrupted.events
    points = kill_points(events, seed=f"{command}-{db_url.split(':')[0]}")
    assert len(points) == KILLS

    killed_in = {phase: 0 for phase in PHASES}
    for point in points:
        attempt = databases.fresh()
        killed = run(attempt, kill_at=point)
        assert killed.returncode == -9, (point, events[point - 1], killed.stderr)
        phase = next(p for p, prefixes in PHASES.items() if events[point - 1].startswith(prefixes))
        killed_in[phase] += 1
        cut_off = [
            r for (r,) in query(attempt.url, "SELECT id FROM etl_runs WHERE status = 'running'")
        ]

        rerun = run(attempt)
        assert rerun.returncode == 0, (point, events[point - 1], rerun.stderr)
        where = f"killed at event {point} ({events[point - 1]})"
        assert checksums(attempt.url) == expected, where
        assert query(attempt.url, "SELECT id FROM etl_runs WHERE status = 'running'") == [], where
        for run_id in cut_off:
            status, message, finished = query(
                attempt.url,
                f"SELECT status, error_message, finished_at FROM etl_runs WHERE id = {run_id}",
            )[0]
            assert status == "abandoned" and message.startswith("process gone: "), where
            assert finished is not None, where
    # Every phase was hit (a phase a command does not have, e.g. no fetch in `load`, excepted).
    for phase, prefixes in PHASES.items():
        if any(e.startswith(prefixes) for e in events):
            assert killed_in[phase] >= 1, (phase, killed_in)
    print(f"{command} on {db_url.split(':')[0]}: {len(events)} events, kills by phase {killed_in}")


def test_the_product_has_no_fault_switch_and_no_clock_override():
    """Faults and clocks are the harness's business (tests/etl_child.py), never the product's."""
    package = Path(__file__).resolve().parent.parent / "crypto_etl"
    for path in package.rglob("*.py"):
        source = path.read_text()
        for needle in ("CRYPTO_ETL_FAULT", "CRYPTO_ETL_NOW", "os.getpid(), 9", "signal.SIGKILL"):
            assert needle not in source, f"{path}: {needle}"
