"""`airflow dags test` runs the whole DAG once, offline, against the fake CoinGecko and a fresh
PostgreSQL database, and leaves the same tables as `etl.py run` then `etl.py backfill` leave in
another fresh database against the same fake.

Airflow runs as a user would set it up: a home in a temporary folder, a SQLite metadata database
(`airflow db migrate`, then `airflow dags reserialize`, which Airflow 3 needs to list the DAG), the
database as the connection `crypto_etl_db` (an AIRFLOW_CONN_* variable) while DATABASE_URL points
nowhere, so that the connection is what the tasks use. Both runs see one pinned "now"
(tests/airflow_dag/pinned_clock.py), the fake's, so they ask for the same history windows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import ROOT, _admin_engine
from helpers import etl_env, fake_with_history, query
from history_data import NOW
from sqlalchemy import text

pytestmark = [pytest.mark.airflow, pytest.mark.usefixtures("airflow_home")]

PINNED = str(Path(__file__).resolve().parent / "pinned_clock.py")
COINS = {"bitcoin": 1.0, "ethereum": 0.04, "ripple": 0.00002}  # the top 3 of the markets
SETTINGS = {"TOP_N": "3", "OHLC_TOP_N": "2", "COINGECKO_MAX_RETRIES": "0"}
# Each table in full, without the etl_runs ids (which differ between the two databases).
TABLES = {
    "coins": "SELECT id, symbol, name, image, first_seen_at, last_seen_at FROM coins ORDER BY id",
    "market_snapshots": "SELECT * FROM market_snapshots ORDER BY coin_id, last_updated",
    "price_history": (
        "SELECT coin_id, vs_currency, ts, price, market_cap, total_volume, granularity "
        "FROM price_history ORDER BY coin_id, ts"
    ),
    "ohlc": (
        'SELECT coin_id, vs_currency, "interval", ts, open, high, low, close FROM ohlc '
        'ORDER BY coin_id, "interval", ts'
    ),
    "history_fetches": (
        "SELECT coin_id, vs_currency, table_name, granularity, range_start, range_end, "
        "fetched_at, newest_point FROM history_fetches "
        "ORDER BY coin_id, table_name, granularity"
    ),
    "rejected_rows": "SELECT coin_id, rule, reason, raw FROM rejected_rows ORDER BY coin_id, rule",
}


@pytest.fixture
def databases(pg_server_url):
    """Two fresh, empty PostgreSQL databases (the server checked by `pg_server_url`)."""
    admin = _admin_engine()
    names = [f"crypto_etl_test_airflow_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield [admin.url.set(database=n).render_as_string(hide_password=False) for n in names]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def fake():
    with fake_with_history(COINS) as server:
        yield server


def pinned(program: str, *args: str, cwd: Path, env: dict[str, str], timeout: float):
    """`etl.py` or `airflow` with the product's clock at NOW; a non-zero exit fails the test."""
    done = subprocess.run(
        [sys.executable, PINNED, NOW.isoformat(), program, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{program} {' '.join(args)} exited {done.returncode}:\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done


def runs(url: str) -> list[tuple]:
    return query(
        url,
        "SELECT command, status, rows_extracted, rows_loaded, rows_rejected, rows_skipped, "
        "orchestrator_run_id FROM etl_runs ORDER BY id",
    )


def test_airflow_dags_test_leaves_the_tables_etl_run_and_backfill_leave(
    databases, fake, tmp_path, airflow_home
):
    cli_db, dag_db = databases
    cli_dir, dag_dir = tmp_path / "cli", tmp_path / "dag"
    cli_dir.mkdir()
    dag_dir.mkdir()
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

    cli_env = etl_env(cli_db, fake.url, cli_dir / "data", **SETTINGS, PYTHONPATH=python_path)
    pinned("etl", "run", cwd=cli_dir, env=cli_env, timeout=120)
    pinned("etl", "backfill", cwd=cli_dir, env=cli_env, timeout=120)

    home = tmp_path / "airflow-home"
    dag_env = etl_env(
        "postgresql://nobody@127.0.0.1:1/not_this_one",  # the connection below is the one used
        fake.url,
        dag_dir / "data",
        **SETTINGS,
        PYTHONPATH=python_path,
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW_CONN_CRYPTO_ETL_DB=dag_db,
    )
    pinned("airflow", "db", "migrate", cwd=dag_dir, env=dag_env, timeout=300)
    pinned("airflow", "dags", "reserialize", cwd=dag_dir, env=dag_env, timeout=300)
    # A task that fails would wait out Airflow's retry delay: the timeout ends such a run.
    done = pinned("airflow", "dags", "test", "crypto_etl", cwd=dag_dir, env=dag_env, timeout=420)

    log = done.stdout + done.stderr
    assert "Task failed" not in log, log[-4000:]
    for table, sql in TABLES.items():
        expected = query(cli_db, sql)
        assert query(dag_db, sql) == expected, table
        if table != "rejected_rows":
            assert expected, f"{table} is empty: the comparison would prove nothing"

    # The journal: the same work, the backfill split into one run per coin, each named after its
    # Airflow task run; the command line's runs name none.
    cli_runs, dag_runs = runs(cli_db), runs(dag_db)
    assert [run[:6] for run in cli_runs if run[0] != "backfill"] == [
        run[:6] for run in dag_runs if run[0] != "backfill"
    ]
    assert {run[6] for run in cli_runs} == {None}
    cli_backfill = [run for run in cli_runs if run[0] == "backfill"]
    dag_backfill = [run for run in dag_runs if run[0] == "backfill"]
    assert len(cli_backfill) == 1 and len(dag_backfill) == len(COINS)
    for column in range(2, 6):
        assert sum(run[column] for run in dag_backfill) == cli_backfill[0][column]
    assert {run[1] for run in dag_runs} == {"success"}
    names = [run[6] for run in dag_runs]
    assert all(name and name.startswith("crypto_etl/manual__") for name in names), names
    tasks = sorted(name.split("/", 2)[2] for name in names)
    assert tasks == sorted(["snapshot", "refresh_ohlc"] + [f"backfill_coin[{i}]" for i in range(3)])
    # The DAG's CoinGecko calls took their turns from the budget shared through the database.
    assert query(dag_db, "SELECT name FROM rate_limits") == [("coingecko:keyless",)]
    assert query(cli_db, "SELECT name FROM rate_limits") == []
    # The alert evaluation ran last and judged the runs.
    assert query(dag_db, "SELECT count(*) FROM alert_evaluations")[0][0] >= 1
