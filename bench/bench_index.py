"""Index layout benchmark for market_snapshots on PostgreSQL (a script, not a test).

Two layouts of the same table, each on a fresh database, in the same run, alternating:
- 0003: the primary key (coin_id, vs_currency, last_updated) and a separate covering index with
  the same key columns INCLUDE (current_price, market_cap, total_volume), as migration 0003 left;
- 0006: one primary key with those INCLUDE columns (migration 0006).
For each: `python etl.py load` of the same snapshot CSV (default 1,000,000 rows, written once by
bench/make_snapshots_csv.py) as a new process, then the history read of the API
(crypto_etl.storage.queries.history_matrix) of random coins over their whole range, p50/p99,
and the size of the table's indexes. Writes bench/results/index.md.

    python bench/bench_index.py                      # 1,000,000 rows, 2 rounds
    python bench/bench_index.py --rows 200000 --rounds 1

Run it alone on the machine: `python bench/bench_index.py` with nothing else busy.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from bench_load import timed_cli_load  # the same timed `etl.py load` as the load benchmark
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from crypto_etl.storage import queries
from crypto_etl.storage.engine import init_db, make_engine

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DB_NAME = "crypto_etl_bench_index"
LAYOUTS = {"0003": "primary key + covering index", "0006": "primary key INCLUDE (one index)"}


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def fresh_database(name: str, layout: str) -> str:
    """A new database migrated to the head revision, with `layout`'s indexes. The 0003 layout is
    made by SQL and the revision left at the head, because `etl.py load` migrates to the head
    before it loads."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    init_db(engine)
    engine.dispose()
    with psycopg.connect(url, autocommit=True) as conn:
        if layout == "0003":
            conn.execute(
                "ALTER TABLE market_snapshots DROP CONSTRAINT market_snapshots_pkey, ADD "
                "CONSTRAINT market_snapshots_pkey PRIMARY KEY (coin_id, vs_currency, last_updated)"
            )
            conn.execute(
                "CREATE INDEX ix_market_snapshots_history ON market_snapshots"
                " (coin_id, vs_currency, last_updated)"
                " INCLUDE (current_price, market_cap, total_volume)"
            )
        indexes = [
            d
            for (d,) in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'market_snapshots' ORDER BY 1"
            )
        ]
    log(f"layout {layout}: {'; '.join(indexes)}")
    return url


def history_times(url: str, requests: int) -> tuple[list[float], int, int]:
    """Milliseconds of the API's history read of random coins over their whole range."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE market_snapshots")
        coins = [c for (c,) in conn.execute("SELECT DISTINCT coin_id FROM market_snapshots")]
        first, last = conn.execute(
            "SELECT min(last_updated), max(last_updated) FROM market_snapshots"
        ).fetchone()
        index_bytes = conn.execute("SELECT pg_indexes_size('market_snapshots')").fetchone()[0]
    engine = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    rng = random.Random(7)
    times, rows = [], 0
    with Session(engine) as session:
        for i in range(requests + 20):
            coin = rng.choice(coins)
            started = time.perf_counter()
            matrix = queries.history_matrix(session, coin, "usd", first, last)
            if i >= 20:
                times.append((time.perf_counter() - started) * 1000)
                rows = len(matrix)
    engine.dispose()
    return times, rows, index_bytes


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    with psycopg.connect(ADMIN_URL) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    return f"{os.cpu_count()} cores ({cpu}), PostgreSQL {server}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history-requests", type=int, default=300)
    parser.add_argument("--database", default=DB_NAME)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "index.md")
    args = parser.parse_args()

    workdir = ROOT / "bench" / "out"
    workdir.mkdir(parents=True, exist_ok=True)
    csv_path = workdir / f"snapshots_{args.rows}.csv"
    if not csv_path.exists():
        sys.path.insert(0, str(ROOT / "bench"))
        from make_snapshots_csv import make_frame

        from crypto_etl.shaping.snapshot_table import write_csv

        log(f"writing {args.rows:,} rows to {csv_path}")
        write_csv(make_frame(args.rows), csv_path)

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results: dict[str, dict[str, list]] = {r: {"load": [], "history": []} for r in LAYOUTS}
    sizes, rows_read = {}, 0
    for round_ in range(args.rounds):
        order = list(LAYOUTS) if round_ % 2 == 0 else list(reversed(LAYOUTS))
        for revision in order:
            url = fresh_database(args.database, revision)
            seconds = timed_cli_load(url, csv_path)
            log(f"layout {revision}: etl.py load {seconds:.1f} s")
            times, rows_read, sizes[revision] = history_times(url, args.history_requests)
            log(f"layout {revision}: history p50 {statistics.median(times):.2f} ms")
            results[revision]["load"].append(seconds)
            results[revision]["history"].extend(times)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())

    lines = [
        f"# Index layout benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine()}; load average before {load_before}, after {load_after}.",
        f"`python etl.py load` of {args.rows:,} snapshot rows into an empty, freshly migrated "
        f"database, then {args.history_requests} history reads per round of a random coin's "
        f"whole range ({rows_read:,} rows each, the API's query), {args.rounds} round(s), "
        "layouts alternating.",
        "",
        "| layout | etl.py load, each round (s) | load median (s) | history p50 / p99 (ms) | "
        "index size |",
        "|---|---|---:|---|---:|",
    ]
    for revision, what in LAYOUTS.items():
        loads = results[revision]["load"]
        history = results[revision]["history"]
        lines.append(
            f"| {revision}: {what} | {', '.join(f'{s:.1f}' for s in loads)} | "
            f"{statistics.median(loads):.1f} | {statistics.median(history):.2f} / "
            f"{percentile(history, 99):.2f} | {sizes[revision] / 1e6:.0f} MB |"
        )
    report = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
