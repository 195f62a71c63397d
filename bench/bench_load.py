"""Load benchmark: `python etl.py load` (whole process) against pandas `to_sql` and a bare COPY.

All three load the same snapshot rows into PostgreSQL in the same run:
  1. `python etl.py load --csv_path=FILE` as a new process (imports, validation, quarantine check,
     COPY staging, INSERT ... ON CONFLICT, coins upsert, run journal), into an empty history;
  2. the same command again on the same file (re-load: must add nothing);
  3. `pandas.DataFrame.to_sql(..., if_exists="append")` with its default method and the same driver
     (psycopg 3), into the same, emptied table; the CSV is read beforehand and not timed;
  4. a bare `COPY ... FROM STDIN` of the same rows, pre-shaped to the table's columns (not timed),
     into a table of the same shape (`LIKE market_snapshots INCLUDING ALL`).

    python bench/bench_load.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg
from sqlalchemy import create_engine, text

from crypto_etl.storage.engine import init_db, make_engine

ROOT = Path(__file__).resolve().parent.parent

ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DB_NAME = "crypto_etl_bench_load"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with psycopg.connect(ADMIN_URL) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"pandas {pd.__version__}, psycopg {psycopg.__version__}, PostgreSQL {server}"
    )


def fresh_database() -> str:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    url = make_url_for(DB_NAME)
    engine = make_engine(url)
    init_db(engine)
    engine.dispose()
    return url


def make_url_for(name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def count(url: str, table: str = "market_snapshots") -> int:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def truncate(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE market_snapshots, coins, rejected_rows, etl_runs RESTART IDENTITY")


def timed_cli_load(url: str, csv_path: Path) -> float:
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "PAGER": "cat"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "etl.py"), "load", f"--csv_path={csv_path}"],
        env=env,
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def table_frame(csv_path: Path) -> pd.DataFrame:
    """The CSV shaped like market_snapshots' columns, for to_sql and the bare COPY."""
    frame = pd.read_csv(csv_path)
    frame = frame.drop(columns=["symbol", "name", "image"]).rename(columns={"id": "coin_id"})
    for col in ("last_updated", "snapshot_at", "ath_date", "atl_date"):
        frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
    return frame


def timed_to_sql(url: str, frame: pd.DataFrame) -> float:
    engine = create_engine(url)
    start = time.perf_counter()
    frame.to_sql("market_snapshots", engine, if_exists="append", index=False)
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def timed_bare_copy(url: str, frame: pd.DataFrame, workdir: Path) -> float:
    shaped = workdir / "bare_copy.csv"
    frame.to_csv(shaped, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    columns = ", ".join(frame.columns)
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bare_snapshots")
        conn.execute("CREATE TABLE bare_snapshots (LIKE market_snapshots INCLUDING ALL)")
        conn.commit()
        start = time.perf_counter()
        with conn.cursor() as cur:
            sql = f"COPY bare_snapshots ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)"
            with cur.copy(sql) as copy, shaped.open("rb") as fh:
                while block := fh.read(1 << 20):
                    copy.write(block)
        conn.commit()
        elapsed = time.perf_counter() - start
    shaped.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description="Load benchmark on PostgreSQL")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--csv", type=Path, default=None, help="reuse this snapshot CSV")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load.md")
    parser.add_argument("--skip-to-sql", action="store_true", help="to_sql takes minutes")
    args = parser.parse_args()

    workdir = ROOT / "bench" / "out"
    workdir.mkdir(parents=True, exist_ok=True)
    csv_path = args.csv or workdir / f"snapshots_{args.rows}.csv"
    if not csv_path.exists():
        from make_snapshots_csv import make_frame

        from crypto_etl.shaping.snapshot_table import write_csv

        print(f"generating {args.rows} rows into {csv_path} ...", flush=True)
        write_csv(make_frame(args.rows), csv_path)
    rows = sum(1 for _ in csv_path.open("rb")) - 1

    url = fresh_database()
    results: list[tuple[str, float, int]] = []

    elapsed = timed_cli_load(url, csv_path)
    stored = count(url)
    assert stored == rows, f"etl.py load stored {stored} of {rows} rows"
    results.append(("etl.py load (new process, empty history)", elapsed, rows))
    print(f"etl.py load: {elapsed:.1f} s", flush=True)

    elapsed = timed_cli_load(url, csv_path)
    assert count(url) == rows, "re-loading the same file added rows"
    results.append(("etl.py load again (same file, adds nothing)", elapsed, rows))
    print(f"etl.py re-load: {elapsed:.1f} s", flush=True)

    frame = table_frame(csv_path)
    if not args.skip_to_sql:
        truncate(url)
        elapsed = timed_to_sql(url, frame)
        assert count(url) == rows
        results.append(("pandas to_sql (default method, psycopg 3)", elapsed, rows))
        print(f"to_sql: {elapsed:.1f} s", flush=True)

    elapsed = timed_bare_copy(url, frame, workdir)
    assert count(url, "bare_snapshots") == rows
    results.append(("bare COPY into a table of the same shape", elapsed, rows))
    print(f"bare COPY: {elapsed:.1f} s", flush=True)

    rate = {name: n / seconds for name, seconds, n in results}
    ours = rate[results[0][0]]
    lines = [
        f"# Load benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine()}.",
        f"Rows: {rows:,} snapshot rows ({csv_path.stat().st_size / 1e6:.0f} MB CSV).",
        "",
        "| method | seconds | rows/s | etl.py load's rate relative to it |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds, n in results:
        lines.append(f"| {name} | {seconds:.1f} | {n / seconds:,.0f} | {ours / rate[name]:.2f}x |")
    report = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print()
    print(report)


if __name__ == "__main__":
    main()
