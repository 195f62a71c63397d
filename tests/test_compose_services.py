"""Each compose service's command, run natively through the image's entry script.

There is no Docker engine here, so each test starts `sh docker/entrypoint.sh <role>` with the
environment docker-compose.yml gives that service (and the image's ENV), pointed at a fresh database
on the local PostgreSQL instead of the `db` service, on free ports, and with CoinGecko faked by a
small local HTTP server. Tests that need etl.py, api.py or dashboard.py are skipped, with the
reason, until those files exist.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from compose_file import ROOT, compose, env_example, sample_env, service_environment
from conftest import ADMIN_URL, DATA
from helpers import head_revision
from sqlalchemy import create_engine, insert, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.storage.schema import Coin, MarketSnapshot

ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
VENV_BIN = str(Path(sys.executable).parent)
API_KEY = "test-api-key"

needs_etl = pytest.mark.skipif(
    not (ROOT / "etl.py").exists(), reason="etl.py (the pipeline CLI) is not in this branch yet"
)
needs_api = pytest.mark.skipif(
    not (ROOT / "api.py").exists(), reason="api.py (the REST API) is not in this branch yet"
)
needs_dashboard = pytest.mark.skipif(
    not (ROOT / "dashboard.py").exists(), reason="dashboard.py is not in this branch yet"
)


# --- the entry script, with stub commands ---------------------------------------------------------


@pytest.fixture
def stubs(tmp_path):
    """A PATH whose python, uvicorn and streamlit only log their arguments; returns (env, log)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for name in ("python", "uvicorn", "streamlit"):
        stub = bin_dir / name
        stub.write_text(
            '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n'
            '[ "$2" = init_db ] && exit "${INIT_DB_EXIT:-0}"\nexit 0\n'
        )
        stub.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(log)}
    return env, log


@pytest.mark.parametrize(
    ("args", "calls"),
    [
        (["migrate"], ["python etl.py init_db"]),
        (["app"], ["python etl.py init_db", "python etl.py schedule --interval_seconds=300"]),
        ([], ["python etl.py init_db", "python etl.py schedule --interval_seconds=300"]),
        (["api"], ["python -m crypto_etl.api.serve --host 0.0.0.0 --port 8000"]),
        (
            ["api", "--port", "9000"],
            ["python -m crypto_etl.api.serve --host 0.0.0.0 --port 8000 --port 9000"],
        ),
        (
            ["dashboard"],
            [
                "streamlit run dashboard.py --server.port 8501 --server.address 0.0.0.0"
                " --server.headless true"
            ],
        ),
        (
            ["python", "etl.py", "extract", "--save_path=raw.json"],
            [f"python {ROOT}/etl.py extract --save_path=raw.json"],
        ),
        (["python", "-c", "print(1)"], ["python -c print(1)"]),
    ],
)
def test_each_role_runs_its_command(stubs, args, calls, tmp_path):
    env, log = stubs
    env["DATA_DIR"] = str(tmp_path / "data")
    subprocess.run(["sh", str(ENTRYPOINT), *args], env=env, check=True, timeout=10)
    assert log.read_text().splitlines() == calls


def test_app_takes_its_interval_from_the_environment(stubs):
    env, log = stubs
    env["ETL_INTERVAL_SECONDS"] = "120"
    subprocess.run(["sh", str(ENTRYPOINT), "app"], env=env, check=True, timeout=10)
    assert log.read_text().splitlines()[-1] == "python etl.py schedule --interval_seconds=120"


def test_app_does_not_schedule_when_the_migration_fails(stubs):
    env, log = stubs
    env["INIT_DB_EXIT"] = "3"
    done = subprocess.run(["sh", str(ENTRYPOINT), "app"], env=env, timeout=10)
    assert done.returncode == 3
    assert log.read_text().splitlines() == ["python etl.py init_db"]


def test_commands_run_from_the_application_folder(tmp_path):
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "pwd"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == str(ROOT)


# --- helpers for the native runs ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def image_environment() -> dict[str, str]:
    """The ENV of the Dockerfile's runtime stage, without PATH (the venv is elsewhere here)."""
    text_ = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    runtime = text_.split("\nFROM ")[-1]
    env = {}
    for line in runtime.splitlines():
        if line.startswith("ENV "):
            for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', line):
                env[key] = value.strip('"')
    env.pop("PATH", None)
    return env


class Stack:
    """The local stand-in for compose's `db` service: one database, one read-only role."""

    def __init__(self, admin_url: str, database: str, role: str):
        self.admin = make_url(admin_url)
        self.database = database
        self.role = role

    def owner_url(self) -> str:
        return self.admin.set(database=self.database).render_as_string(hide_password=False)

    def env(self, service: str, **overrides: str) -> dict[str, str]:
        """What `service`'s container sees, with compose's `db` replaced by the local server."""
        local = {
            "POSTGRES_HOST": self.admin.host or "127.0.0.1",
            "POSTGRES_PORT": str(self.admin.port or 5432),
            "POSTGRES_DB": self.database,
        }
        if service != "api":  # the owner; the api keeps the read-only role compose gives it
            local["POSTGRES_USER"] = self.admin.username or "postgres"
        return native_env(service, self.role, **local, **overrides)


def native_env(service: str, role: str = "crypto_api", **overrides: str) -> dict[str, str]:
    """The image's ENV and `service`'s compose environment, for a process on this machine."""
    env = {name: "" for name in env_example()}  # a developer's .env must not leak in
    env.update(image_environment())
    env.update(service_environment(service, sample_env(API_DB_USER=role)))
    env.update(PATH=f"{VENV_BIN}:/usr/bin:/bin", HOME=os.environ.get("HOME", "/tmp"))
    env.update(overrides)
    return env


@pytest.fixture(scope="module")
def new_stack(pg_server_url):
    """A factory of fresh, empty databases sharing one role name; all dropped at the end."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    role = f"crypto_api_compose_{uuid.uuid4().hex[:8]}"
    made = []

    def create() -> Stack:
        name = f"crypto_etl_compose_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return Stack(ADMIN_URL, name, role)

    yield create
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
    admin.dispose()


def run(stack_env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env=stack_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def migrate(stack: Stack) -> None:
    """The migrate service; through etl.py when it exists, else straight through db.init_db."""
    if (ROOT / "etl.py").exists():
        run(stack.env("migrate"), "migrate")
    else:
        code = (
            "from config import load_settings; from db import init_db, make_engine; "
            "init_db(make_engine(load_settings().database_url))"
        )
        run(stack.env("migrate"), "python", "-c", code)


@pytest.fixture(scope="module")
def migrated(new_stack) -> Stack:
    stack = new_stack()
    migrate(stack)
    return stack


class Service:
    """A long-running service started through the entry script; always stopped by the test."""

    def __init__(self, env: dict[str, str], args: list[str], log_path: Path):
        self.log_path = log_path
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            ["sh", str(ENTRYPOINT), *args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()[-3000:]

    def get(self, url: str, timeout: float, headers: dict[str, str] | None = None) -> bytes:
        """The body of the first 200 answer from `url`, polling until `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"exited {self.proc.returncode} before {url} answered:\n{self.output()}"
                )
            try:
                request = urllib.request.Request(url, headers=headers or {})
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.read()
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        pytest.fail(f"{url} did not answer 200 within {timeout}s ({last}):\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()


def healthcheck(service: str, port: int) -> subprocess.CompletedProcess:
    """Run the compose healthcheck of `service` natively, against `port` instead of its own."""
    test = compose()["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    command = [re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", part) for part in test[1:]]
    command[0] = sys.executable if command[0] == "python" else command[0]
    return subprocess.run(command, capture_output=True, text=True, timeout=10)


class FakeCoinGecko(ThreadingHTTPServer):
    """/coins/markets answers the recorded top-50 response; anything else is a 404."""

    def __init__(self):
        self.requests: list[str] = []
        self.markets = (DATA / "coins_markets_usd_top50.json").read_bytes()
        super().__init__(("127.0.0.1", 0), _FakeHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v3"


class _FakeHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.path)
        found = self.path.split("?")[0] == "/api/v3/coins/markets"
        body = self.server.markets if found else b'{"error": "not found"}'
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def coingecko():
    server = FakeCoinGecko()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def pipeline_settings(coingecko: FakeCoinGecko, data_dir: Path) -> dict[str, str]:
    """The app's settings for a fast run on the fake CoinGecko and its 2025 recorded data."""
    return {
        "COINGECKO_BASE_URL": coingecko.url,
        "COINGECKO_CALLS_PER_MINUTE": "6000",
        "COINGECKO_MAX_RETRIES": "0",
        "HTTP_TIMEOUT_SECONDS": "5",
        "OHLC_TOP_N": "0",
        "STALE_AFTER_SECONDS": str(10 * 365 * 86400),
        "DATA_DIR": str(data_dir),
    }


def count_rows(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    except SQLAlchemyError:
        return -1  # not migrated yet
    finally:
        engine.dispose()


# --- migrate --------------------------------------------------------------------------------------


@pytest.mark.postgres
@needs_etl
def test_migrate_creates_the_schema_and_the_api_role(new_stack):
    stack = new_stack()
    run(stack.env("migrate"), "migrate")
    engine = create_engine(stack.owner_url())
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            == head_revision()
        )
        assert count_rows(stack.owner_url(), "market_snapshots") == 0
        may = text("SELECT has_table_privilege(:r, 'market_snapshots', :p)")
        assert conn.execute(may, {"r": stack.role, "p": "SELECT"}).scalar_one() is True
        for privilege in ("INSERT", "UPDATE", "DELETE"):
            assert conn.execute(may, {"r": stack.role, "p": privilege}).scalar_one() is False
    engine.dispose()
    run(stack.env("migrate"), "migrate")  # a second start of the service changes nothing


# --- app ------------------------------------------------------------------------------------------


@pytest.mark.postgres
@needs_etl
def test_one_app_cycle_loads_the_snapshot(new_stack, coingecko, tmp_path):
    stack = new_stack()  # empty: the app service migrates before its first run
    env = stack.env("app", **pipeline_settings(coingecko, tmp_path / "data"))
    app = Service(env, ["app"], tmp_path / "app.log")
    try:
        deadline = time.monotonic() + 180
        while count_rows(stack.owner_url(), "market_snapshots") < 50:
            if app.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no snapshot loaded (exit {app.proc.returncode}):\n{app.output()}")
            time.sleep(1)
        assert app.proc.poll() is None, "the app keeps running between cycles"
    finally:
        app.stop()
    assert any(path.startswith("/api/v3/coins/markets") for path in coingecko.requests)
    assert count_rows(stack.owner_url(), "etl_runs") >= 1


@pytest.mark.postgres
@needs_etl
def test_single_steps_run_through_the_app_image(migrated, coingecko, tmp_path):
    """`docker-compose run app python etl.py <step>`: the entry script runs the command as given."""
    data = tmp_path / "data"  # compose mounts ./data there
    data.mkdir()
    env = migrated.env("app", **pipeline_settings(coingecko, data))
    shown = run(env, "python", "etl.py", "--help")
    assert "schedule" in shown.stdout + shown.stderr  # fire prints its help through PAGER=cat
    run(env, "python", "etl.py", "extract", "--save_path=raw.json")
    assert len(json.loads((data / "raw.json").read_text())) == 50  # lands in the mounted ./data


# --- api ------------------------------------------------------------------------------------------


@pytest.mark.postgres
@needs_api
def test_api_answers_as_the_read_only_role(migrated, tmp_path):
    owner = create_engine(migrated.owner_url())
    now = datetime.now(UTC)
    with owner.begin() as conn:
        conn.execute(text("TRUNCATE coins, market_snapshots"))
        conn.execute(
            insert(Coin).values(
                id="bitcoin", symbol="btc", name="Bitcoin", first_seen_at=now, last_seen_at=now
            )
        )
        conn.execute(
            insert(MarketSnapshot).values(
                coin_id="bitcoin",
                vs_currency="usd",
                last_updated=now,
                snapshot_at=now,
                current_price=111688.0,
                market_cap_rank=1,
            )
        )
    owner.dispose()

    port = free_port()
    env = migrated.env("api", API_KEY=API_KEY)
    assert env["POSTGRES_USER"] == migrated.role
    api = Service(env, ["api", "--host", "127.0.0.1", "--port", str(port)], tmp_path / "api.log")
    try:
        api.get(f"http://127.0.0.1:{port}/health", timeout=60)
        api.get(f"http://127.0.0.1:{port}/ready", timeout=10)
        headers = {"X-API-Key": API_KEY, "Authorization": f"Bearer {API_KEY}"}
        body = api.get(f"http://127.0.0.1:{port}/api/v1/cryptos", timeout=10, headers=headers)
        assert b"bitcoin" in body
        check = healthcheck("api", port)
        assert check.returncode == 0, check.stderr
    finally:
        api.stop()


# --- dashboard ------------------------------------------------------------------------------------


@needs_dashboard
def test_dashboard_answers_its_health_endpoint(tmp_path):
    port = free_port()
    env = native_env("dashboard", API_BASE_URL=f"http://127.0.0.1:{free_port()}")
    args = ["dashboard", "--server.address", "127.0.0.1", "--server.port", str(port)]
    dashboard = Service(env, args, tmp_path / "dashboard.log")
    try:
        assert dashboard.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=90) == b"ok"
        check = healthcheck("dashboard", port)
        assert check.returncode == 0, check.stderr
    finally:
        dashboard.stop()
