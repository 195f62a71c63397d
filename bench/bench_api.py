"""Benchmark of the REST API on PostgreSQL (a script, not a test).

Seeds a database of its own (default crypto_etl_bench_api) with 10,000,000 market_snapshots rows
(250 coins, one snapshot every 5 minutes for ~139 days, written by generate_series on the server)
and fills the hourly rollup from them (as `python etl.py rollup --rebuild` does),
starts `uvicorn api:app` as a real process (one worker unless --workers, no access log) and, beside
it, a bare FastAPI app (bench/bare_app.py) whose async routes return the API's own answers as fixed
bytes, then measures in the same run:
- with wrk (-t2 -c50): the cached list /api/v1/cryptos, /health and a cached history of one coin,
  each on the API and on the bare app, and prints the ratio API / bare;
- a 30-day raw history of one coin (8,641 points) and the hourly default, sequential requests on
  random coins, each URL distinct so that every answer is computed, against a direct psycopg fetch
  (binary, same index) of the same rows, and prints the ratios of p50 and p99;
- the 30-day raw history with and without gzip (bytes on the wire, latency).
Prints a table with the machine and writes it to bench/results/api.md (--output).

    python bench/bench_api.py                  # seeds once (kept for later runs), then measures
    python bench/bench_api.py --reseed         # drop and seed the benchmark database again
    python bench/bench_api.py --rows 1000000   # a smaller database
    python bench/bench_api.py --app-dir /tmp/main --label before   # the API of another checkout

Needs PostgreSQL (TEST_POSTGRES_ADMIN_URL, default postgresql://postgres@127.0.0.1:5432/postgres)
and wrk (apt-get install -y wrk). Run it alone on the machine (nothing else busy).
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
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
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
        if engine.dialect.has_table(conn, "rollup_state"):  # the rows below bypass the rollup
            conn.execute(text("TRUNCATE history_hourly"))
            conn.execute(text("UPDATE rollup_state SET complete = false"))
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


def fill_rollup(url: str) -> None:
    """The seed writes its rows with SQL, not through the bulk writer: the hourly rollup
    (migration 0010) is filled after it, as `python etl.py rollup --rebuild` does, unless it is
    complete already (or the schema has none)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            complete = conn.execute(
                text(
                    "SELECT complete FROM rollup_state WHERE name = 'history_hourly'"
                    if engine.dialect.has_table(conn, "rollup_state")
                    else "SELECT true"
                )
            ).scalar()
        if complete:
            return
        from crypto_etl.storage.rollup import rebuild

        log("filling the hourly rollup (history_hourly)")
        started = time.perf_counter()
        done = rebuild(engine)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE history_hourly"))
        log(f"  {done.rows:,} hours of {done.pairs} coins in {time.perf_counter() - started:.0f} s")
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(server: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"{url} did not answer within 60 s")


def uvicorn(target: str, port: int, workers: int) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    return command


def start_api(url: str, port: int, workers: int, app_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(app_dir)}
    env.pop("API_KEY", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if workers > 1:  # as python -m crypto_etl.api.serve runs them: metrics shared in a folder
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-api-metrics-")
    server = subprocess.Popen(uvicorn("api:app", port, workers), cwd=app_dir, env=env)
    wait_ready(server, f"http://127.0.0.1:{port}/ready")
    return server


def start_bare(bodies: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "BARE_BODIES": str(bodies), "PYTHONPATH": str(ROOT / "bench")}
    command = uvicorn("bare_app:app", port, workers)
    server = subprocess.Popen(command, cwd=ROOT / "bench", env=env)
    wait_ready(server, f"http://127.0.0.1:{port}/health")
    return server


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)


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


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def p50_p99(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), percentile(values, 99)


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
    }


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


IDENTITY = {"Accept-Encoding": "identity"}
DIRECT_SQL = (
    "SELECT last_updated, current_price, market_cap, total_volume FROM market_snapshots"
    " WHERE coin_id = %s AND vs_currency = %s AND last_updated BETWEEN %s AND %s"
    " ORDER BY last_updated"
)


def history_against_direct(
    client: httpx.Client,
    direct: psycopg.Connection,
    coins: list[str],
    start: datetime,
    end: datetime,
    interval: str,
    requests: int,
) -> dict[str, object]:
    """Milliseconds of `requests` history answers (each URL distinct: `end` moves by a
    microsecond, the rows stay the same, so no answer comes from a cache) and, interleaved, of a
    direct binary psycopg fetch of the same rows.

    Both sides find the rows in the same place: the coin's rows are fetched once, untimed, before
    either is timed, so that they are in PostgreSQL's shared buffers for both. Without it the side
    that goes first reads them from the OS page cache (about 130 pages, 1 to 1.5 ms here) and the
    other profits from it; which side goes first alternates as well."""
    rng = random.Random(42)
    api_ms, direct_ms = [], []
    points = rows = 0
    for i in range(requests + 20):
        coin = rng.choice(coins)
        params = {
            "start": start.isoformat(),
            "end": (end + timedelta(microseconds=i + 1)).isoformat(),
            "interval": interval,
        }
        path = f"/api/v1/cryptos/{coin}/history"
        with direct.cursor(binary=True) as cursor:  # untimed: the rows into shared buffers
            cursor.execute(DIRECT_SQL, (coin, "usd", start, end))
            cursor.fetchall()
        for side in ("api", "direct") if i % 2 == 0 else ("direct", "api"):
            began = time.perf_counter()
            if side == "api":
                response = client.get(path, params=params, headers=IDENTITY)
                took = (time.perf_counter() - began) * 1000
            else:
                with direct.cursor(binary=True) as cursor:
                    cursor.execute(DIRECT_SQL, (coin, "usd", start, end))
                    fetched = cursor.fetchall()
                direct_took = (time.perf_counter() - began) * 1000
        if response.status_code != 200:
            raise SystemExit(f"history answered {response.status_code}: {response.text[:300]}")
        if i >= 20:  # the first 20 warm both sides
            api_ms.append(took)
            direct_ms.append(direct_took)
            points, rows = response.json()["count"], len(fetched)
    return {"api": api_ms, "direct": direct_ms, "points": points, "rows": rows}


def compression_timed(client: httpx.Client, path: str, params: dict, requests: int) -> dict:
    """Bytes on the wire and latency (the whole request) of one cacheable history answer, plain
    and gzip."""
    result = {}
    for name, encoding in (("identity", "identity"), ("gzip", "gzip")):
        sizes, times = set(), []
        for _ in range(requests):
            began = time.perf_counter()
            with client.stream(
                "GET", path, params=params, headers={"Accept-Encoding": encoding}
            ) as response:
                wire = sum(len(chunk) for chunk in response.iter_raw())
            times.append((time.perf_counter() - began) * 1000)
            sizes.add(wire)
        result[name] = (max(sizes), *p50_p99(times))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="crypto_etl_bench_api")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--coins", type=int, default=250)
    parser.add_argument("--reseed", action="store_true", help="drop and seed the database again")
    parser.add_argument("--no-migrate", action="store_true", help="leave the schema as it is")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="wrk rounds (API, bare) per route")
    parser.add_argument("--history-requests", type=int, default=300)
    parser.add_argument("--app-dir", type=Path, default=ROOT, help="checkout whose API to run")
    parser.add_argument("--label", default="this branch")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "api.md")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    url = create_database(args.database, args.reseed)
    if not args.no_migrate:
        engine = make_engine(url)
        init_db(engine)
        engine.dispose()
    if seeded_rows(url) != args.rows:
        seed(url, args.rows, args.coins)
    fill_rollup(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM market_snapshots")).scalar_one()
        newest = conn.execute(text("SELECT max(last_updated) FROM market_snapshots")).scalar_one()
        pg_version = conn.execute(text("SHOW server_version")).scalar_one()
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    log(f"{total:,} market_snapshots rows, newest {newest:%Y-%m-%d %H:%M} UTC, schema {revision}")

    info = machine()
    load_before = load_average()
    start, end = newest - timedelta(days=30), newest
    cached_history = {"start": start.isoformat(), "end": end.isoformat()}
    coin_ids = ["bitcoin"] + [f"coin-{c:04d}" for c in range(1, args.coins)]
    api_port, bare_port = free_port(), free_port()
    api_base, bare_base = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}"
    history_path = "/api/v1/cryptos/bitcoin/history"
    targets = {  # name: (API path, bare path)
        "list": ("/api/v1/cryptos", "/list"),
        "health": ("/health", "/health"),
        "history": (f"{history_path}?{httpx.QueryParams(cached_history)}", "/history"),
    }
    wrk: dict[str, dict[str, list[dict[str, str]]]] = {n: {"api": [], "bare": []} for n in targets}
    api = start_api(url, api_port, args.workers, args.app_dir.resolve())
    try:
        with (
            tempfile.TemporaryDirectory() as bodies,
            httpx.Client(base_url=api_base, timeout=60) as client,
        ):
            for name, (path, _bare) in targets.items():
                for _ in range(3):  # the last answer is a cache hit where there is a cache
                    response = client.get(path, headers=IDENTITY)
                    if response.status_code != 200:
                        raise SystemExit(f"GET {path}: {response.status_code} {response.text}")
                Path(bodies, f"{name}.json").write_bytes(response.content)
                log(f"{name}: {len(response.content):,} bytes, headers {dict(response.headers)}")
            bare = start_bare(Path(bodies), bare_port, args.workers)
            try:
                for name, (path, bare_path) in targets.items():
                    for _ in range(args.rounds):
                        log(f"wrk {name}: API, then bare")
                        wrk[name]["api"].append(
                            run_wrk(api_base + path, args.connections, args.seconds, 2)
                        )
                        wrk[name]["bare"].append(
                            run_wrk(bare_base + bare_path, args.connections, args.seconds, 2)
                        )
            finally:
                stop(bare)
            histories = {}
            with psycopg.connect(url, autocommit=True) as direct:
                for interval in ("raw", "auto"):
                    log(f"history interval={interval}: {args.history_requests} requests + direct")
                    histories[interval] = history_against_direct(
                        client, direct, coin_ids, start, end, interval, args.history_requests
                    )
            log("compression of a 30-day raw history")
            raw_params = {**cached_history, "interval": "raw"}
            gzip_effect = compression_timed(client, history_path, raw_params, 50)
    finally:
        stop(api)
    load_after = load_average()

    def rps(runs: list[dict[str, str]]) -> float:
        return statistics.mean(float(r["rps"]) for r in runs)

    rows = []
    for name, label in (
        ("list", "cached list /api/v1/cryptos"),
        ("health", "/health"),
        ("history", "cached history of one coin (30 days, hourly)"),
    ):
        api_rps, bare_rps = rps(wrk[name]["api"]), rps(wrk[name]["bare"])
        last = wrk[name]["api"][-1]
        errors = sum(int(r["non_2xx"]) for r in wrk[name]["api"])
        rows.append(
            (
                f"{label}: wrk -t2 -c{args.connections}, {args.rounds} x {args.seconds} s",
                f"{api_rps:,.0f} req/s (p50 {last['p50']}, p99 {last['p99']}, non-2xx {errors})",
                f"{bare_rps:,.0f} req/s",
                f"{api_rps / bare_rps:.2f}",
            )
        )
    for interval, result in histories.items():
        api50, api99 = p50_p99(result["api"])
        dir50, dir99 = p50_p99(result["direct"])
        rows.append(
            (
                f"history interval={interval} ({result['points']:,} points; direct fetch of "
                f"{result['rows']:,} rows), {args.history_requests} sequential requests, p50 / p99",
                f"{api50:.1f} / {api99:.1f} ms",
                f"{dir50:.1f} / {dir99:.1f} ms",
                f"{api50 / dir50:.2f} / {api99 / dir99:.2f}",
            )
        )
    plain, packed = gzip_effect["identity"], gzip_effect["gzip"]
    report = [
        f"# REST API benchmark ({args.label})",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python bench/bench_api.py` "
        f"(the API of {args.label}: uvicorn with {args.workers} worker(s), no access log; the bare "
        "app the same way; wrk and the client on the same machine).",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, "
        f"PostgreSQL {pg_version}; load average before the run {load_before}, after {load_after}.",
        f"Data: {total:,} market_snapshots rows ({args.coins} coins, a snapshot every 5 minutes), "
        f"schema revision {revision}.",
        "",
        "| what | this API | bare FastAPI route / direct psycopg fetch | ratio |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
        "Targets: list >= 0.5 and /health >= 0.7 of the bare route (req/s); raw history p50 "
        "<= 1.5x and p99 <= 2x the direct fetch; the hourly default no slower than the direct "
        "fetch.",
        "",
        "30-day raw history of one coin, 50 sequential requests each (whole request timed):",
        "",
        "| Accept-Encoding | bytes on the wire | p50 / p99 ms |",
        "|---|---|---|",
        f"| identity | {plain[0]:,} | {plain[1]:.1f} / {plain[2]:.1f} |",
        f"| gzip | {packed[0]:,} | {packed[1]:.1f} / {packed[2]:.1f} |",
        "",
    ]
    text_report = "\n".join(report)
    print(text_report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text_report)
    log(f"written to {args.output}")


if __name__ == "__main__":
    main()
