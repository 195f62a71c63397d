"""docker-compose.yml and .env.example, checked statically (tests/test_compose_engine.py runs the
stack on a real engine with docker-compose 1.29 and checks the file with Compose v2).

The file must be valid against the Compose Specification JSON schema, use no key that
docker-compose 1.29 refuses, and follow our own rules: the services, their ports, healthchecks and
start order, settings only from .env, every variable documented, no secret with a default, no
warning for an unset optional variable, and the API logged in as the read-only role.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
from compose_file import (
    ENV_EXAMPLE,
    ROOT,
    MissingVariable,
    compose,
    compose_references,
    env_example,
    is_secret,
    raw_compose,
    references,
    sample_env,
    service_environment,
)
from sqlalchemy import make_url

from crypto_etl.settings import load_settings

SPEC = ROOT / "docker" / "compose-spec.json"
PYTHON_SERVICES = ("migrate", "app", "api", "dashboard")
# How code reads a variable: env.get("X"), os.environ["X"], os.getenv("X"), _int(env, "X", ...).
CODE_READS = re.compile(
    r"(?:\benv|environ|getenv)\b\s*(?:\.get\(|\[|\(|,)\s*[\"']([A-Z][A-Z0-9_]*)[\"']"
)
CONFIG_VARIABLES = {
    "DATABASE_URL",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "COINGECKO_BASE_URL",
    "COINGECKO_API_KEY",
    "COINGECKO_API_PLAN",
    "VS_CURRENCY",
    "TOP_N",
    "OHLC_TOP_N",
    "HTTP_TIMEOUT_SECONDS",
    "COINGECKO_CALLS_PER_MINUTE",
    "COINGECKO_MAX_RETRIES",
    "LOG_LEVEL",
    "LOG_FILE",
    "DATA_DIR",
    "STALE_AFTER_SECONDS",
    "FUTURE_TOLERANCE_SECONDS",
}


def variables_read_by(path: Path) -> set[str]:
    return set(CODE_READS.findall(path.read_text()))


def variables_read_by_the_code() -> dict[str, set[str]]:
    """Every variable the product reads, by file: Python modules, migrations, the entry script."""
    files = sorted(ROOT.glob("*.py")) + sorted((ROOT / "crypto_etl").rglob("*.py"))
    found = {str(p.relative_to(ROOT)): variables_read_by(p) for p in files}
    entry = ROOT / "docker" / "entrypoint.sh"
    # Environment variables of the shell script: the upper-case ones ($role is a local).
    shell = {name for name, _, _ in references(entry.read_text()) if name.isupper()}
    found[str(entry.relative_to(ROOT))] = shell
    return {path: names for path, names in found.items() if names}


def depends_on(service: str) -> dict[str, str]:
    deps = compose()["services"][service].get("depends_on") or {}
    assert isinstance(deps, dict), f"{service}: depends_on needs the long form with conditions"
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def published(service: str, env: dict[str, str] | None = None) -> list[str]:
    return [str(p) for p in compose(env)["services"][service].get("ports", [])]


# --- the Compose Specification -------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification():
    schema = json.loads(SPEC.read_text())
    validator = jsonschema.Draft7Validator(schema)
    for label, document in (("as written", raw_compose()), ("interpolated", compose())):
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)
        ]
        assert not errors, f"docker-compose.yml {label}:\n" + "\n".join(errors)


def test_the_schema_copy_records_its_provenance():
    note = (ROOT / "docker" / "README.md").read_text()
    assert "compose-spec.json" in note and "compose-spec/compose-spec" in note
    assert json.loads(SPEC.read_text())["title"] == "Compose Specification"


# --- services, ports, healthchecks, start order --------------------------------------------------


def test_the_services():
    assert set(compose()["services"]) == {"db", "migrate", "app", "api", "dashboard"}


def test_one_image_for_every_python_service_each_with_its_role():
    services = compose()["services"]
    builds = {(repr(services[s].get("build")), services[s].get("image")) for s in PYTHON_SERVICES}
    assert len(builds) == 1 and next(iter(builds))[0] != "None"
    assert {s: services[s]["command"] for s in PYTHON_SERVICES} == {
        "migrate": ["migrate"],
        "app": ["app"],
        "api": ["api"],
        "dashboard": ["dashboard"],
    }


def test_db_is_postgres_15_on_a_named_volume():
    document = compose()
    db = document["services"]["db"]
    assert db["image"] == "postgres:15"
    volume = db["volumes"][0].split(":")[0]
    assert volume in (document.get("volumes") or {}), "the database lives in a named volume"
    test = " ".join(db["healthcheck"]["test"])
    assert "pg_isready" in test and "-h 127.0.0.1" in test
    assert "-U" in test and "-d" in test


def test_ports_have_defaults_and_can_be_changed():
    assert published("db") == ["127.0.0.1:5432:5432"]  # PostgreSQL only on the host's loopback
    assert published("api") == ["8000:8000"]
    assert published("dashboard") == ["8501:8501"]
    assert published("migrate") == published("app") == []
    moved = sample_env(POSTGRES_PORT="5433", API_PORT="9000", DASHBOARD_PORT="9501")
    assert published("db", moved) == ["127.0.0.1:5433:5432"]
    assert published("api", moved) == ["9000:8000"]
    assert published("dashboard", moved) == ["9501:8501"]
    # Unset, the defaults still apply.
    bare = {"POSTGRES_PASSWORD": "p", "API_DB_PASSWORD": "q"}
    assert published("api", bare) == ["8000:8000"] and published("dashboard", bare) == ["8501:8501"]


@pytest.mark.parametrize(
    ("service", "url"),
    [
        ("api", "http://127.0.0.1:8000/health"),
        ("dashboard", "http://127.0.0.1:8501/_stcore/health"),
    ],
)
def test_http_healthchecks_use_python_not_curl(service, url):
    test = compose()["services"][service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "urllib.request.urlopen" in test[3] and url in test[3]


def test_start_order():
    assert depends_on("migrate") == {"db": "service_healthy"}
    assert depends_on("app") == {
        "db": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    assert depends_on("api") == {
        "db": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    assert depends_on("dashboard") == {"api": "service_healthy"}
    services = compose()["services"]
    for name in services:
        for target, condition in depends_on(name).items():
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}'s health"


def test_app_schedules_restarts_on_failure_and_writes_to_data():
    app = compose()["services"]["app"]
    assert app["restart"] == "on-failure"
    assert "./data:/app/data" in app["volumes"]
    assert service_environment("app")["DATA_DIR"] == "/app/data"
    assert "ETL_INTERVAL_SECONDS" in app["environment"]
    assert compose()["services"]["migrate"]["restart"] == "no"


def test_only_app_starts_as_root_and_only_to_drop_it():
    """`app` writes into the bind mount ./data as the user who owns it (docker/drop-root.sh);
    every other service runs as the image's plain user from the start."""
    services = compose()["services"]
    assert services["app"]["user"] == "root"
    for name, service in services.items():
        if name != "app":
            assert "user" not in service, name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '"/app/docker/drop-root.sh", "/bin/sh", "/app/docker/entrypoint.sh"' in dockerfile
    assert "\nUSER app\n" in dockerfile
    environment = service_environment("app", sample_env(APP_UID="4321", APP_GID="4322"))
    assert (environment["APP_UID"], environment["APP_GID"]) == ("4321", "4322")
    unset = service_environment("app")
    assert (unset["APP_UID"], unset["APP_GID"]) == ("", "")


def test_a_clone_has_a_data_folder_owned_by_whoever_cloned():
    """git creates ./data on clone (data/.gitkeep), so the engine never creates it as root."""
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", "data/.gitkeep"], cwd=ROOT, capture_output=True
    )
    assert tracked.returncode == 0, "data/.gitkeep must be committed"
    ignored = subprocess.run(["git", "check-ignore", "-q", "data/.gitkeep"], cwd=ROOT)
    assert ignored.returncode == 1, "data/.gitkeep must not be ignored"
    written = subprocess.run(["git", "check-ignore", "-q", "data/raw/x.json"], cwd=ROOT)
    assert written.returncode == 0, "what the pipeline writes stays out of git"


def test_dashboard_reaches_the_api_by_service_name():
    assert service_environment("dashboard")["API_BASE_URL"] == "http://api:8000"


# --- settings, secrets and the read-only role ----------------------------------------------------


def test_every_compose_variable_is_documented_in_env_example():
    documented = set(env_example())
    used = {name for name, _, _ in compose_references()}
    assert used, "the compose file takes its settings from .env"
    assert not used - documented, f"undocumented in .env.example: {sorted(used - documented)}"


def test_no_secret_has_a_default_value():
    for name, op, arg in compose_references():
        if is_secret(name):
            # Required (:?), or optional with an empty default (:-): never a value in the file.
            assert op in (":?", "?") or (op == ":-" and arg == ""), f"${{{name}{op}{arg}}}"
    # Nor is any secret written into the file itself: secret settings come from a reference.
    for service, spec in raw_compose()["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            if is_secret(key):
                assert re.fullmatch(r"\$\{\w+(:?\?[^}]*|:-)?\}", str(value)), f"{service}.{key}"


def test_no_warning_for_an_unset_optional_variable():
    """A bare ${VAR} makes compose warn 'The VAR variable is not set' on every command."""
    bare = sorted({name for name, op, _ in compose_references() if op is None})
    assert not bare, f"give these a default or mark them required: {bare}"


def test_only_keys_docker_compose_1_29_knows():
    """Compose 1.29 (Debian's and Ubuntu's docker-compose) refuses a top-level `name:`, and any
    top-level key the Compose Specification added after it."""
    document = raw_compose()
    known = {"services", "volumes", "networks", "secrets", "configs"}
    extra = {key for key in document if key not in known and not key.startswith("x-")}
    assert not extra, f"docker-compose 1.29 refuses: {sorted(extra)}"


def test_base_images_can_be_replaced_and_default_to_the_official_ones():
    for env in (sample_env(), {"POSTGRES_PASSWORD": "p", "API_DB_PASSWORD": "q"}):
        services = compose(env)["services"]
        assert services["db"]["image"] == "postgres:15"
        for name in PYTHON_SERVICES:
            assert services[name]["build"]["args"] == {"PYTHON_IMAGE": "python:3.12-slim"}
    stand_ins = sample_env(PYTHON_IMAGE="example/python:x", POSTGRES_IMAGE="example/pg:y")
    services = compose(stand_ins)["services"]
    assert services["db"]["image"] == "example/pg:y"
    assert services["app"]["build"]["args"]["PYTHON_IMAGE"] == "example/python:x"


@pytest.mark.parametrize("missing", ["POSTGRES_PASSWORD", "API_DB_PASSWORD"])
def test_compose_refuses_to_start_without_the_passwords(missing):
    for value in (None, ""):
        env = sample_env()
        if value is None:
            del env[missing]
        else:
            env[missing] = value
        with pytest.raises(MissingVariable, match=missing):
            compose(env)


def test_the_api_logs_in_as_the_read_only_role():
    env = sample_env(POSTGRES_PASSWORD="own@er/pw:%", API_DB_PASSWORD="re@d:er/pw%")
    api = make_url(load_settings(service_environment("api", env), dotenv=False).database_url)
    app = make_url(load_settings(service_environment("app", env), dotenv=False).database_url)
    migrate = load_settings(service_environment("migrate", env), dotenv=False).database_url
    assert (api.username, api.password) == ("crypto_api", "re@d:er/pw%")
    assert (app.username, app.password) == ("crypto", "own@er/pw:%")
    assert migrate == app.render_as_string(hide_password=False)
    assert (
        (api.host, api.port, api.database)
        == (app.host, app.port, app.database)
        == (
            "db",
            5432,
            "crypto",
        )
    )
    # The migrating services know the role to create; the API never sees the owner's password.
    assert service_environment("migrate", env)["API_DB_USER"] == "crypto_api"
    assert "own@er/pw:%" not in service_environment("api", env).values()
    assert "own@er/pw:%" not in service_environment("dashboard", env).values()


def test_only_the_pipeline_holds_the_coingecko_key():
    env = sample_env(COINGECKO_API_KEY="cg-key")
    assert service_environment("app", env)["COINGECKO_API_KEY"] == "cg-key"
    for service in ("api", "dashboard"):
        assert "cg-key" not in service_environment(service, env).values()


def test_every_setting_of_config_py_reaches_the_pipeline():
    forwarded = set(service_environment("app"))
    # DATABASE_URL is the one left out: config.py builds the URL from POSTGRES_*.
    assert not (CONFIG_VARIABLES - {"DATABASE_URL"}) - forwarded


# --- .env.example ---------------------------------------------------------------------------------


def test_the_scan_finds_what_config_py_reads():
    assert variables_read_by(ROOT / "crypto_etl" / "settings.py") >= CONFIG_VARIABLES


def test_every_variable_the_code_reads_is_in_env_example():
    documented = set(env_example())
    missing = {
        f"{name} ({path})"
        for path, names in variables_read_by_the_code().items()
        for name in names - documented
    }
    assert not missing, f"read by the code, undocumented in .env.example: {sorted(missing)}"
    expected = CONFIG_VARIABLES | {
        "API_KEY",
        "CORS_ORIGINS",
        "API_BASE_URL",
        "ETL_INTERVAL_SECONDS",
        "API_DB_USER",
        "API_DB_PASSWORD",
        "API_PORT",
        "DASHBOARD_PORT",
        "APP_UID",
        "APP_GID",
        "PYTHON_IMAGE",
        "POSTGRES_IMAGE",
    }
    assert not expected - documented


def test_each_variable_in_env_example_has_a_comment_and_appears_once():
    names = []
    previous = ""
    for line in ENV_EXAMPLE.read_text().splitlines():
        if re.match(r"[A-Z_][A-Z0-9_]*=", line):
            name = line.split("=", 1)[0]
            assert previous.startswith("# "), f"{name} has no comment line above it"
            names.append(name)
        previous = line
    assert len(names) == len(set(names))


def test_env_example_holds_no_secret():
    for name, value in env_example().items():
        if is_secret(name):
            assert value == "", f"{name} must stay empty in .env.example"


def test_env_example_values_are_the_defaults():
    """Copying .env.example changes nothing but what the user fills in."""
    assert load_settings(env_example(), dotenv=False) == load_settings({}, dotenv=False)


def test_git_never_sees_dot_env():
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
