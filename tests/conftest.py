"""Shared fixtures: fresh databases on SQLite and on the real PostgreSQL server.

PostgreSQL tests use a database of their own, created for the session and dropped afterwards. Where
no server answers they are skipped with the reason, except under CI (CI=true), where that fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

# The API tests' seeded database and its fixtures (seeded_url, client).
pytest_plugins = ["api_seed"]

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TABLES = (
    "rejected_rows",
    "etl_runs",
    "market_snapshots",
    "coins",
    "price_history",
    "ohlc",
    "history_fetches",
    "alert_outbox",
    "alerts",
    "anomaly_flags",
    "alert_evaluations",
    "rate_limits",
    "history_hourly",
    "rollup_state",
)


def _admin_engine():
    return create_engine(
        ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )


@pytest.fixture(scope="session")
def pg_server_url():
    """URL of a new, migrated PostgreSQL database for this test session."""
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # any failure to reach the server means: no PostgreSQL here
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and did not answer at {ADMIN_URL}: {exc}")
        pytest.skip(f"no PostgreSQL server answers at {ADMIN_URL}")
    name = f"crypto_etl_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    from crypto_etl.storage.engine import init_db, make_engine

    engine = make_engine(url)
    init_db(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def empty_tables(url: str) -> None:
    """Every table of TABLES that exists at `url` (PostgreSQL) emptied, its sequences restarted."""
    engine = create_engine(url)
    with engine.begin() as conn:
        existing = [t for t in TABLES if engine.dialect.has_table(conn, t)]
        if existing:
            conn.execute(text(f"TRUNCATE {', '.join(existing)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def pg_url(pg_server_url):
    """The session's PostgreSQL database, emptied before the test."""
    empty_tables(pg_server_url)
    return pg_server_url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite database file, made once per session; sqlite_url copies it."""
    from crypto_etl.storage.engine import init_db, make_engine

    path = tmp_path_factory.mktemp("sqlite-template") / "crypto.db"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path):
    """A new, migrated SQLite database file (a copy of the session's migrated one)."""
    target = tmp_path / "crypto.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request):
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def etl_children():
    """The harness running `etl.py` commands in forked children it can pin the clock of and kill
    at a chosen point (tests/etl_child.py); one per session."""
    from etl_child import ChildRunner

    runner = ChildRunner()
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def airflow_home():
    """Apache Airflow configured for the tests (marker `airflow`): a home of its own in a temporary
    folder, our DAG folder, no example DAGs; set before anything imports Airflow, which reads its
    configuration once. Skipped with the reason where Airflow is not installed (it has its own
    virtualenv, .venv-airflow: `make test-airflow`), except under CI (CI=true), where that fails."""
    home = Path(tempfile.mkdtemp(prefix="crypto-etl-airflow-"))
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "deploy" / "airflow" / "dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    try:
        import airflow  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the Airflow tests in .venv-airflow (make test-airflow): {exc}")
        pytest.skip("Apache Airflow is not installed here: `make test-airflow` runs these tests")
    return home
