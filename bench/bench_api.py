"""Benchmark of the REST API on PostgreSQL (a script, not a test).

Seeds a database of its own (default crypto_etl_bench_api) with 10,000,000 market_snapshots rows
(250 coins, one snapshot every 5 minutes for ~139 days, written by generate_series on the server),
starts `uvicorn api:app` as a real process, then measures
- the list endpoint /api/v1/cryptos with wrk at 50 connections (requests/s, latency), and the same
  query uncached (a different page each request, so every answer is computed);
- a 30-day history of one coin (8,640 points) over many sequential requests (p50/p99), each
  request a randomly chosen coin.
Prints a table with the machine and writes it to bench/results/api.md.

    python bench/bench_api.py                  # seeds once (kept for later runs), then measures
    python bench/bench_api.py --reseed         # drop and seed the benchmark database again
    python bench/bench_api.py --rows 1000000   # a smaller database

Needs PostgreSQL (TEST_POSTGRES_ADMIN_URL, default postgresql://postgres@127.0.0.1:5432/postgres)
and wrk (apt-get install -y wrk).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from crypto_etl.storage.engine import init_db, make_engine

ROOT = Path(__file__).resolve().parent.parent

ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STEP_SECONDS = 300
SEED_MARK = "bench_api seed"


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def create_database(name: str, reseed: bool) -> str:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first()
        if exists and reseed:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            exists = None
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    admin.dispose()
    return url


def seeded_rows(url: str) -> int | None:
    """The row count recorded by a finished seed, or None."""
    engine = create_engine(url)
    with engine.connect() as conn:
        source = conn.execute(
            text("SELECT source FROM etl_runs WHERE source LIKE :m ORDER BY id DESC LIMIT 1"),
            {"m": f"{SEED_MARK}%"},
        ).scalar()
    engine.dispose()
    return int(source.rsplit("=", 1)[1]) if source else None


def seed(url: str, rows: int, coins: int) -> datetime:
    """`rows` snapshots: `coins` coins x rows/coins steps of 5 minutes ending now; one etl_runs
    row per step, as the pipeline would leave them."""
    steps = rows // coins
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    end -= timedelta(minutes=end.minute % 5)
    first = end - timedelta(seconds=STEP_SECONDS * (steps - 1))
    engine = create_engine(url)
    params = {"coins": coins, "steps": steps, "first": first, "step": STEP_SECONDS}
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE market_snapshots, coins, etl_runs RESTART IDENTITY CASCADE"))
        conn.execute(
            text(
                """
                INSERT INTO coins (id, symbol, name, image, first_seen_at, last_seen_at)
                SELECT CASE WHEN c = 0 THEN 'bitcoin' ELSE 'coin-' || lpad(c::text, 4, '0') END,
                       'c' || c, 'Coin ' || c, NULL, :first,
                       :first + make_interval(secs => :step * (:steps - 1))
                FROM generate_series(0, CAST(:coins AS integer) - 1) AS c
                """
            ),
            params,
        )
        conn.execute(
            text(
                """
                INSERT INTO etl_runs (command, status, started_at, finished_at, vs_currency,
                                      rows_extracted, rows_loaded, rows_rejected, rows_skipped)
                SELECT 'run', 'success', t, t + interval '20 seconds', 'usd', :coins, :coins, 0, 0
                FROM (SELECT :first + make_interval(secs => :step * s) AS t
                      FROM generate_series(0, CAST(:steps AS integer) - 1) AS s) AS runs
                ORDER BY t
                """
            ),
            params,
        )
    log(f"inserting {steps * coins:,} market_snapshots rows ({coins} coins x {steps} steps)")
    started = time.perf_counter()
    chunk = 2000  # steps per statement, so progress shows and no statement runs for minutes
    for offset in range(0, steps, chunk):
        with engine.begin() as conn:
            conn.execute(
                text(
                    """
                    INSERT INTO market_snapshots (
                        coin_id, vs_currency, last_updated, snapshot_at, current_price, market_cap,
                        market_cap_rank, total_volume, high_24h, low_24h, price_change_24h,
                        price_change_percentage_24h, circulating_supply, run_id)
                    SELECT
                        CASE WHEN c = 0 THEN 'bitcoin' ELSE 'coin-' || lpad(c::text, 4, '0') END,
                        'usd',
                        :first + make_interval(secs => :step * s),
                        :first + make_interval(secs => :step * s + 20),
                        p, p * 1e7 / (c + 1), c + 1, p * 1e5 / (c + 1), p * 1.02, p * 0.98,
                        p * 0.01, 1.0, 1e7 / (c + 1), s + 1
                    FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS s
                    CROSS JOIN generate_series(0, CAST(:coins AS integer) - 1) AS c
                    CROSS JOIN LATERAL (
                        SELECT (30000.0 / (c + 1)) * (1 + 0.2 * sin(s / 500.0 + c)) AS p
                    ) AS price
                    ORDER BY s, c
                    """
                ),
                {**params, "lo": offset, "hi": min(offset + chunk, steps) - 1},
            )
        done = min(offset + chunk, steps)
        if done % 10000 == 0 or done == steps:
            log(f"  {done * coins:,} rows, {time.perf_counter() - started:.0f} s")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        log("VACUUM ANALYZE (visibility map for index-only scans, planner statistics)")
        conn.execute(text("VACUUM ANALYZE market_snapshots"))
        conn.execute(text("VACUUM ANALYZE coins"))
        conn.execute(text("VACUUM ANALYZE etl_runs"))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO etl_runs (command, status, started_at, finished_at, rows_extracted,"
                " rows_loaded, rows_rejected, rows_skipped, source)"
                " SELECT 'bench-seed', 'success', :t, :t, 0, 0, 0, 0, :source"
            ),
            {"t": datetime.now(UTC), "source": f"{SEED_MARK} rows={steps * coins}"},
        )
    engine.dispose()
    log(f"seeded in {time.perf_counter() - started:.0f} s")
    return end


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(url: str, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    env.pop("API_KEY", None)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "api:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise SystemExit(f"uvicorn exited with status {server.returncode}")
        time.sleep(0.2)
    server.terminate()
    raise SystemExit("uvicorn did not become ready within 60 s")


def run_wrk(url: str, connections: int, seconds: int, threads: int) -> dict[str, str]:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = {"rps": re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)}
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.MULTILINE)
        result[f"p{pct}"] = match.group(1) if match else "?"
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = errors.group(1) if errors else "0"
    socket_errors = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = socket_errors.group(1) if socket_errors else "none"
    return result


def timed_requests(client: httpx.Client, urls: list[str]) -> list[float]:
    """Milliseconds per request, sequentially; every answer must be 200."""
    times = []
    for url in urls:
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    return times


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "load average before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="crypto_etl_bench_api")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--coins", type=int, default=250)
    parser.add_argument("--reseed", action="store_true", help="drop and seed the database again")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=15, help="wrk duration")
    parser.add_argument("--history-requests", type=int, default=500)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "api.md")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    url = create_database(args.database, args.reseed)
    engine = make_engine(url)
    init_db(engine)
    engine.dispose()
    if seeded_rows(url) != args.rows:
        seed(url, args.rows, args.coins)
    engine = create_engine(url)
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM market_snapshots")).scalar_one()
        newest = conn.execute(text("SELECT max(last_updated) FROM market_snapshots")).scalar_one()
        pg_version = conn.execute(text("SHOW server_version")).scalar_one()
    engine.dispose()
    log(f"{total:,} market_snapshots rows, newest {newest:%Y-%m-%d %H:%M} UTC")

    info = machine()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(url, port, args.workers)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            timed_requests(client, ["/api/v1/cryptos"] * 20)  # warm both workers
            log(f"wrk: {args.connections} connections, {args.seconds} s on /api/v1/cryptos")
            listing = run_wrk(f"{base}/api/v1/cryptos", args.connections, args.seconds, 2)
            uncached = timed_requests(
                client, [f"/api/v1/cryptos?limit=50&offset={i}" for i in range(1, 201)]
            )
            start = (newest - timedelta(days=30)).isoformat()
            end = newest.isoformat()
            coin_ids = ["bitcoin"] + [f"coin-{c:04d}" for c in range(1, args.coins)]
            history = {}
            for interval in ("auto", "raw"):
                rng = random.Random(42)
                urls = [
                    httpx.URL(
                        f"/api/v1/cryptos/{rng.choice(coin_ids)}/history",
                        params={"start": start, "end": end, "interval": interval},
                    )
                    for _ in range(args.history_requests)
                ]
                body = client.get(urls[0]).json()
                log(f"history interval={interval}: {args.history_requests} requests")
                timed_requests(client, urls[:20])  # warm
                history[interval] = (body["interval"], body["count"], timed_requests(client, urls))
    finally:
        server.terminate()
        server.wait(timeout=30)

    rows = [
        ("list /api/v1/cryptos (wrk, 50 conn., cached)", "requests/s", listing["rps"], ">= 2000"),
        ("", "latency p50 / p99", f"{listing['p50']} / {listing['p99']}", ""),
        ("", "non-2xx / socket errors", f"{listing['non_2xx']} / {listing['socket_errors']}", ""),
        (
            "list, uncached (200 distinct pages, sequential)",
            "p50 / p99 ms",
            f"{statistics.median(uncached):.1f} / {percentile(uncached, 99):.1f}",
            "",
        ),
    ]
    rows_read = history["raw"][1]
    for interval, (used, points, times) in history.items():
        rows.append(
            (
                f"history, 30 days of one coin ({rows_read:,} rows read), interval={interval} "
                f"({used}: {points:,} points), {len(times)} sequential requests, random coins",
                "p50 / p99 ms",
                f"{statistics.median(times):.1f} / {percentile(times, 99):.1f}",
                "p99 < 50",
            )
        )
    report = [
        "# REST API benchmark",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python bench/bench_api.py` "
        f"(uvicorn with {args.workers} workers and wrk on the same machine).",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, "
        f"PostgreSQL {pg_version}; load average before the run: {info['load average before']} "
        "(above 0, other work shared the cores).",
        f"Data: {total:,} market_snapshots rows ({args.coins} coins, a snapshot every 5 minutes).",
        "",
        "| what | measure | result | target |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
    ]
    text_report = "\n".join(report)
    print(text_report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text_report)
    log(f"written to {args.output}")


if __name__ == "__main__":
    main()
