"""Monthly partitions against one table at scale (issue 14): a script, not a test.

One variant at a time, each on a database of its own that is dropped at the end (two copies of
100,000,000 rows do not fit on the disk together):
- `unpartitioned`: the head schema with market_snapshots and price_history as plain tables;
- `partitioned`: the same columns and indexes, RANGE-partitioned by month on last_updated (ts for
  price_history), one partition `<table>_pYYYYMM` per month of the data.

For each variant:
1. the schema (migration 0009 partitions the empty tables; the plain layout is made again with
   crypto_etl.storage.partitions.create_partitioned_like(partitioned=False) + swap_tables),
   then `--coins` coins x `--days` days of 5-minute snapshots (default 800 x 434 days =
   99,993,600 rows) written on the server by INSERT ... SELECT from generate_series, coin by
   coin in 1,000,000-row statements, with the table's indexes dropped first and built again after
   (`--generate-minutes` caps the writing: the coins written by then are the data, and the other
   variant is then run with that many coins), then VACUUM ANALYZE;
2. the table and index sizes, summed over the partitions;
3. `uvicorn api:app` as bench/bench_api.py serves it: the history of a random coin over the last
   30 and 365 days through /api/v1/cryptos/{id}/history (interval auto, each URL distinct so
   nothing comes from a cache) against a direct binary fetch of the same rows, p50 / p99;
   /api/v1/market/summary uncached (a new data version, then top_n 1..50: one cache key each)
   and cached;
4. the product's load of a 1,000,000-row snapshot CSV (bench/make_snapshots_csv.py, moved to the
   days after the data, in the newest month) into the large table, timed in process through
   crypto_etl.storage.snapshots.load_snapshot_csv: rows per second. (`etl.py load` itself adds
   the alert check after the load, which judges every point not judged yet: minutes on a database
   seeded outside the pipeline, and nothing to do with the table's layout.)
Each variant writes bench/results/partitions-<variant>.json; with both there, the table goes to
bench/results/partitions.md.

    python bench/bench_partitions.py --variant unpartitioned
    python bench/bench_partitions.py --variant partitioned --coins 800
    python bench/bench_partitions.py --report          # the table from the two JSON files
    python bench/bench_partitions.py --variant partitioned --coins 20 --days 60   # a quick try
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from bench_api import (  # the API served, the history timed and the percentiles as bench_api does
    IDENTITY,
    free_port,
    history_against_direct,
    load_average,
    p50_p99,
    start_api,
    stop,
)
from bench_load import make_url_for
from sqlalchemy import text

from crypto_etl.settings import load_settings
from crypto_etl.storage import partitions
from crypto_etl.storage.engine import init_db, make_engine
from crypto_etl.storage.snapshots import load_snapshot_csv

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
VARIANTS = ("unpartitioned", "partitioned")
PARTITION_KEYS = partitions.PARTITION_COLUMNS
STEP_SECONDS = 300
ROWS_PER_STATEMENT = 1_000_000
# The newest snapshot is 5 minutes before this; the load sample follows it, in the same month.
DATA_END = datetime(2026, 11, 10, tzinfo=UTC)
SEED_SOURCE = "bench_partitions seed"


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


# --- schema --------------------------------------------------------------------------------------


def index_definitions(conn: psycopg.Connection, table: str) -> list[tuple[str, str, str]]:
    """(kind, name, SQL that makes it again) of `table`'s primary key and other indexes; on a
    partitioned table the SQL makes them on every partition."""
    found = []
    for name, definition in conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype = 'p'",
        (table,),
    ):
        found.append(("key", name, f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"))
    for name, definition in conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s::regclass AND NOT i.indisprimary ORDER BY 1",
        (table,),
    ):
        found.append(("index", name, definition.replace(" ON ONLY ", " ON ")))
    return found


def drop_indexes(conn: psycopg.Connection, table: str, definitions) -> None:
    for kind, name, _sql in definitions:
        if kind == "key":
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        else:
            conn.execute(f"DROP INDEX {name}")


def fresh_database(name: str, variant: str, first: datetime, last: datetime) -> tuple[str, str]:
    """A new database migrated to the head with the product's migrations (which partition the
    empty time-series tables by month) and `variant`'s layout: for `partitioned` the months of
    [first, last] made by crypto_etl.storage.partitions.ensure_partitions; for `unpartitioned`
    both tables made again as plain tables with the same columns, keys and indexes (the
    product's create_partitioned_like and swap_tables, as migration 0009's downgrade does).
    Returns the URL and where the layout came from."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url_for(name)
    engine = make_engine(url)
    revision = init_db(engine)
    if not partitions.is_partitioned(engine, "market_snapshots"):
        raise SystemExit(f"migrating to {revision} left market_snapshots unpartitioned")
    if variant == "partitioned":
        for table in PARTITION_KEYS:
            partitions.ensure_partitions(engine, table, first, last)
        origin = f"migrations to {revision} + partitions.ensure_partitions for the data's months"
    else:
        with engine.begin() as conn:
            for table in PARTITION_KEYS:
                partitions.create_partitioned_like(conn, table, f"{table}_plain", partitioned=False)
                old = partitions.swap_tables(conn, table, f"{table}_plain", old_suffix="_monthly")
                conn.execute(text(f'DROP TABLE "{old}"'))
        origin = (
            f"migrations to {revision}, both tables made again as plain tables by "
            "partitions.create_partitioned_like(partitioned=False) + swap_tables"
        )
    engine.dispose()
    log(f"{variant}: {origin}")
    return url, origin


# --- data ----------------------------------------------------------------------------------------

INSERT_SNAPSHOTS = """
INSERT INTO market_snapshots (
    coin_id, vs_currency, last_updated, snapshot_at, current_price, market_cap, market_cap_rank,
    total_volume, high_24h, low_24h, price_change_24h, price_change_percentage_24h,
    circulating_supply, run_id)
SELECT coin.id, 'usd', t.ts, t.ts + interval '20 seconds', p, p * 1e7 / (c + 1), c + 1,
       p * 1e5 / (c + 1), p * 1.02, p * 0.98, p * 0.01, 1.0, 1e7 / (c + 1), 1
FROM generate_series(%(lo)s::integer, %(hi)s::integer) AS c
CROSS JOIN LATERAL (
    SELECT CASE WHEN c = 0 THEN 'bitcoin' ELSE 'coin-' || lpad(c::text, 4, '0') END AS id,
           30000.0::float8 / (c + 1) AS base
) AS coin
CROSS JOIN LATERAL (
    SELECT s, %(first)s::timestamptz + make_interval(secs => %(step)s * s) AS ts
    FROM generate_series(0, %(steps)s::integer - 1) AS s
) AS t
CROSS JOIN LATERAL (SELECT coin.base * (1 + 0.2 * sin(t.s / 500.0::float8 + c)) AS p) AS price
"""

INSERT_COINS = """
INSERT INTO coins (id, symbol, name, image, first_seen_at, last_seen_at)
SELECT CASE WHEN c = 0 THEN 'bitcoin' ELSE 'coin-' || lpad(c::text, 4, '0') END,
       'c' || c, 'Coin ' || c, NULL, %(first)s, %(last)s
FROM generate_series(%(lo)s::integer, %(hi)s::integer) AS c
"""


def generate(url: str, coins: int, steps: int, first: datetime, minutes: float) -> dict:
    """Snapshots of up to `coins` coins x `steps` steps, indexes dropped during the writing and
    built again after, then VACUUM ANALYZE; stops starting new coins after `minutes`."""
    last = first + timedelta(seconds=STEP_SECONDS * (steps - 1))
    per_statement = max(1, ROWS_PER_STATEMENT // steps)
    timings: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO etl_runs (command, status, started_at, finished_at, rows_extracted,"
            " rows_loaded, rows_rejected, rows_skipped, source)"
            " VALUES ('run', 'success', %s, %s, 0, 0, 0, 0, %s)",
            (last, last, SEED_SOURCE),
        )
        definitions = index_definitions(conn, "market_snapshots")
        drop_indexes(conn, "market_snapshots", definitions)
        log(f"writing up to {coins * steps:,} rows ({coins} coins x {steps:,} steps)")
        started = time.perf_counter()
        done = 0
        while done < coins and time.perf_counter() - started < minutes * 60:
            params = {"lo": done, "hi": min(done + per_statement, coins) - 1, "steps": steps}
            params.update(first=first, last=last, step=STEP_SECONDS)
            conn.execute(INSERT_COINS, params)
            conn.execute(INSERT_SNAPSHOTS, params)
            done = params["hi"] + 1
            if done % (per_statement * 10) == 0 or done == coins:
                elapsed = time.perf_counter() - started
                log(f"  {done} coins, {done * steps:,} rows, {elapsed:.0f} s")
        timings["write_seconds"] = time.perf_counter() - started
        conn.execute("SET maintenance_work_mem = '1GB'")
        for _kind, name, sql in definitions:
            began = time.perf_counter()
            conn.execute(sql)
            timings[f"build_{name}_seconds"] = time.perf_counter() - began
            log(f"  {name} built in {timings[f'build_{name}_seconds']:.0f} s")
        began = time.perf_counter()
        conn.execute("VACUUM ANALYZE market_snapshots")
        conn.execute("VACUUM ANALYZE coins")
        timings["vacuum_analyze_seconds"] = time.perf_counter() - began
        log(f"  VACUUM ANALYZE {timings['vacuum_analyze_seconds']:.0f} s")
        rows = conn.execute("SELECT count(*) FROM market_snapshots").fetchone()[0]
    assert rows == done * steps, f"{rows} rows stored, {done * steps} written"
    return {"coins": done, "steps": steps, "rows": rows, "first": first, "last": last, **timings}


def sizes(url: str) -> dict:
    """Bytes of each time-series table (heap with TOAST, indexes, total), summed over the
    partitions, and the number of partitions (0: a plain table)."""
    found = {}
    engine = make_engine(url)
    with psycopg.connect(url) as conn:
        for table in PARTITION_KEYS:
            split = partitions.is_partitioned(engine, table)
            if split:
                leaves = "SELECT relid FROM pg_partition_tree(%s::regclass) WHERE isleaf"
            else:
                leaves = "SELECT %s::regclass AS relid"
            heap, indexes, total, count = conn.execute(
                "SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid)),"
                f" sum(pg_total_relation_size(relid)), count(*) FROM ({leaves}) AS leaves",
                (table,),
            ).fetchone()
            found[table] = {
                "heap_bytes": int(heap),
                "index_bytes": int(indexes),
                "total_bytes": int(total),
                "partitions": count if split else 0,
            }
    engine.dispose()
    return found


# --- reads through the API ----------------------------------------------------------------------


def new_data_version(url: str) -> None:
    """A finished run recorded, as the pipeline leaves one: the API's response cache drops
    everything at its next version check."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO etl_runs (command, status, started_at, finished_at, rows_extracted,"
            " rows_loaded, rows_rejected, rows_skipped) VALUES ('run', 'success', now(), now(),"
            " 0, 0, 0, 0)"
        )


def summary_times(client: httpx.Client, url: str, rounds: int, cached: int) -> dict:
    """Milliseconds of /api/v1/market/summary: uncached (after a new data version, top_n 1..50,
    each its own cache key, `rounds` times) and cached (top_n=10 again, `cached` times)."""
    check_seconds = float(os.environ.get("API_CACHE_CHECK_SECONDS", "1.0"))
    uncached = []
    for _ in range(rounds):
        new_data_version(url)
        time.sleep(check_seconds + 1.0)  # the API's background check sees the new version
        for top_n in range(1, 51):
            began = time.perf_counter()
            response = client.get("/api/v1/market/summary", params={"top_n": top_n})
            took = (time.perf_counter() - began) * 1000
            if response.status_code != 200 or response.headers.get("x-cache") != "miss":
                raise SystemExit(
                    f"summary: {response.status_code} x-cache={response.headers.get('x-cache')}"
                )
            uncached.append(took)
    coins = response.json()["coins"]
    hits = []
    for _ in range(cached):
        began = time.perf_counter()
        response = client.get("/api/v1/market/summary", params={"top_n": 10}, headers=IDENTITY)
        hits.append((time.perf_counter() - began) * 1000)
        if response.headers.get("x-cache") != "hit":
            raise SystemExit(f"summary: expected a cache hit, got {response.headers}")
    return {"uncached_ms": uncached, "cached_ms": hits, "coins": coins}


def api_reads(url: str, data: dict, requests: int, summary_rounds: int) -> dict:
    coin_ids = ["bitcoin"] + [f"coin-{c:04d}" for c in range(1, data["coins"])]
    newest = data["last"]
    port = free_port()
    api = start_api(url, port, 1, ROOT)
    result = {}
    try:
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client,
            psycopg.connect(url, autocommit=True) as direct,
        ):
            for days in (30, 365):
                log(f"history of {days} days: {requests} API requests + direct fetches")
                found = history_against_direct(
                    client,
                    direct,
                    coin_ids,
                    newest - timedelta(days=days),
                    newest,
                    "auto",
                    requests,
                )
                result[f"history_{days}d"] = found
                log(
                    f"  API p50/p99 {p50_p99(found['api'])[0]:.1f}/{p50_p99(found['api'])[1]:.1f}"
                    f" ms, direct {p50_p99(found['direct'])[0]:.1f}/"
                    f"{p50_p99(found['direct'])[1]:.1f} ms"
                )
            log("market summary, uncached and cached")
            result["summary"] = summary_times(client, url, summary_rounds, requests)
    finally:
        stop(api)
    return result


# --- the product's load path ---------------------------------------------------------------------


def sample_csv(rows: int, start: datetime) -> Path:
    """bench/make_snapshots_csv.py's rows moved so the first snapshot is at `start`."""
    path = ROOT / "bench" / "out" / f"partitions_sample_{rows}_{start:%Y%m%d}.csv"
    if not path.exists():
        from make_snapshots_csv import make_frame

        from crypto_etl.shaping.snapshot_table import write_csv

        frame = make_frame(rows)
        shift = start - frame["last_updated"].min()
        frame["last_updated"] = frame["last_updated"] + shift
        frame["snapshot_at"] = frame["snapshot_at"] + shift
        path.parent.mkdir(parents=True, exist_ok=True)
        log(f"writing {rows:,} sample rows to {path}")
        write_csv(frame, path)
    return path


def timed_load(url: str, csv_path: Path, rows: int, since: datetime) -> dict:
    """The product's load of a snapshot CSV (validation, COPY into a staging table, INSERT ...
    ON CONFLICT DO NOTHING, the coins upserted; one transaction), in this process: what `etl.py
    load` does without its process start, run journal and the alert check after it."""
    settings = load_settings(dotenv=False)
    engine = make_engine(url)
    before = load_average()
    began = time.perf_counter()
    result, _report = load_snapshot_csv(
        engine,
        csv_path,
        None,
        datetime.now(UTC),
        stale_after=timedelta(seconds=settings.stale_after_seconds),
        future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
    )
    seconds = time.perf_counter() - began
    engine.dispose()
    with psycopg.connect(url) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM market_snapshots WHERE last_updated >= %s", (since,)
        ).fetchone()[0]
    assert result.loaded == stored == rows, f"loaded {result.loaded}, {stored} stored of {rows}"
    return {"rows": rows, "seconds": seconds, "load_average": [before, load_average()]}


# --- the run and the report ----------------------------------------------------------------------


def machine() -> dict:
    meminfo = Path("/proc/meminfo").read_text().split()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    settings = ("shared_buffers", "work_mem", "max_wal_size", "jit", "max_parallel_workers")
    with psycopg.connect(ADMIN_URL) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
        values = {s: conn.execute(f"SHOW {s}").fetchone()[0] for s in settings}
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024**2, 1),
        "python": platform.python_version(),
        "postgresql": server,
        "settings": values,
    }


def disk_free_gb() -> float:
    return round(shutil.disk_usage("/").free / 1e9, 1)


def run_variant(args: argparse.Namespace) -> Path:
    steps = round(args.days * 86400 / STEP_SECONDS)
    first = DATA_END - timedelta(seconds=STEP_SECONDS * steps)
    sample_start = DATA_END
    sample_end = sample_start + timedelta(seconds=STEP_SECONDS * (args.sample_rows // 250 + 1))
    csv_path = sample_csv(args.sample_rows, sample_start) if args.sample_rows else None
    name = f"{args.database}_{args.variant}"
    record: dict = {"variant": args.variant, "machine": machine(), "started": datetime.now(UTC)}
    record["disk_free_gb"] = {"start": disk_free_gb()}
    record["load_average"] = {"start": load_average()}
    url, record["origin"] = fresh_database(name, args.variant, first, sample_end)
    try:
        record["data"] = generate(url, args.coins, steps, first, args.generate_minutes)
        record["load_average"]["after_data"] = load_average()
        record["sizes"] = sizes(url)
        record["disk_free_gb"]["with_data"] = disk_free_gb()
        log(f"sizes: {record['sizes']}; disk free {record['disk_free_gb']['with_data']} GB")
        record["reads"] = api_reads(url, record["data"], args.history_requests, args.summary_rounds)
        record["load_average"]["after_reads"] = load_average()
        if csv_path is not None:
            log(f"loading {args.sample_rows:,} rows into the large table")
            record["load"] = timed_load(url, csv_path, args.sample_rows, sample_start)
            log(f"  {record['load']['seconds']:.1f} s")
        record["finished"] = datetime.now(UTC)
    finally:
        if not args.keep:
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    out = args.results / f"partitions-{args.variant}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=str) + "\n")
    log(f"written {out}")
    return out


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def report(results: Path) -> str:
    found = {v: json.loads((results / f"partitions-{v}.json").read_text()) for v in VARIANTS}
    plain, parts = found["unpartitioned"], found["partitioned"]
    m = plain["machine"]

    def ms(values: list[float]) -> str:
        p50, p99 = p50_p99(values)
        return f"{p50:.1f} / {p99:.1f}"

    def row(what: str, cell) -> str:
        return f"| {what} | {cell(plain)} | {cell(parts)} |"

    def write_rate(r: dict) -> str:
        return f"{r['data']['rows'] / r['data']['write_seconds']:,.0f} rows/s"

    def build_seconds(r: dict) -> str:
        return f"{sum(v for k, v in r['data'].items() if k.startswith('build_')):.0f} s"

    def load_rate(r: dict) -> str:
        load = r.get("load")
        if not load:
            return "not run"
        return f"{load['rows'] / load['seconds']:,.0f} rows/s ({load['seconds']:.1f} s)"

    def size(table: str, part: str):
        return lambda r: gb(r["sizes"][table][part])

    def history(days: int, side: str):
        return lambda r: ms(r["reads"][f"history_{days}d"][side])

    data = plain["data"]
    lines = [
        f"# Monthly partitions against one table, {plain['started'][:16]} UTC",
        "",
        "Measured by `python bench/bench_partitions.py` (issue 14), one variant after the other, "
        "each on a fresh database dropped after it.",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']} with its packaged settings "
        + ", ".join(f"{k} {v}" for k, v in m["settings"].items())
        + ". The cores are shared with other developers' work; load averages (1, 5, 15 min) "
        + "; ".join(
            f"{r['variant']}: {r['load_average']['start']} at the start, "
            f"{r['load_average']['after_data']} after the data, "
            f"{r['load_average']['after_reads']} after the reads"
            for r in (plain, parts)
        )
        + ".",
        "",
        f"Data: {data['rows']:,} market_snapshots rows: {data['coins']} coins x "
        f"{data['steps']:,} snapshots 5 minutes apart, {data['first'][:10]} to "
        f"{data['last'][:16]} UTC ({data['steps'] * STEP_SECONDS / 86400:.0f} days). "
        f"price_history empty in both. Unpartitioned: {plain['origin']}. Partitioned: "
        f"{parts['origin']}; {parts['sizes']['market_snapshots']['partitions']} monthly "
        "partitions of market_snapshots.",
        "",
        "| | unpartitioned | partitioned by month |",
        "|---|---:|---:|",
        row("writing the rows (INSERT ... SELECT, indexes dropped)", write_rate),
        row("building the primary key and the last_updated index", build_seconds),
        row(
            f"load of {parts['load']['rows']:,} new rows into the large table "
            "(load_snapshot_csv, in process)",
            load_rate,
        ),
        row("history, 30 days (hourly, auto): API p50 / p99 ms", history(30, "api")),
        row("history, 30 days: direct fetch of the rows, p50 / p99 ms", history(30, "direct")),
        row("history, 365 days (daily, auto): API p50 / p99 ms", history(365, "api")),
        row("history, 365 days: direct fetch of the rows, p50 / p99 ms", history(365, "direct")),
        row(
            "/api/v1/market/summary uncached, p50 / p99 ms",
            lambda r: ms(r["reads"]["summary"]["uncached_ms"]),
        ),
        row(
            "/api/v1/market/summary cached, p50 / p99 ms",
            lambda r: ms(r["reads"]["summary"]["cached_ms"]),
        ),
        row("market_snapshots table (heap + TOAST)", size("market_snapshots", "heap_bytes")),
        row("market_snapshots indexes", size("market_snapshots", "index_bytes")),
        row("market_snapshots total", size("market_snapshots", "total_bytes")),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--report", action="store_true", help="only write partitions.md")
    parser.add_argument("--coins", type=int, default=800)
    parser.add_argument("--days", type=float, default=434.0)
    parser.add_argument("--generate-minutes", type=float, default=60.0)
    parser.add_argument("--sample-rows", type=int, default=1_000_000, help="0: no etl.py load")
    parser.add_argument("--history-requests", type=int, default=200)
    parser.add_argument("--summary-rounds", type=int, default=2, help="x 50 uncached requests")
    parser.add_argument("--database", default="benchparts")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.report and not args.variant:
        parser.error("give --variant or --report")
    if args.variant:
        run_variant(args)
    if all((args.results / f"partitions-{v}.json").exists() for v in VARIANTS):
        text = report(args.results)
        (args.results / "partitions.md").write_text(text)
        print(text)
    elif args.report:
        sys.exit("--report needs both bench/results/partitions-*.json")


if __name__ == "__main__":
    main()
