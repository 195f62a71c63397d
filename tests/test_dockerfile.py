"""The Dockerfile and .dockerignore, checked statically; tests/test_compose_engine.py builds the
image on a real engine."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess

import pytest
from compose_file import ROOT

DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
DROP_ROOT = ROOT / "docker" / "drop-root.sh"
BASE = "python:3.12-slim"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def global_args() -> dict[str, str]:
    """The ARGs before the first FROM (usable in FROM lines), with their defaults."""
    found = {}
    for keyword, args in instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = args.partition("=")
            found[name] = default
    return found


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, args))
    return found


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def test_multi_stage_build_on_the_slim_base():
    # The base is a build argument so that the tests can pass a stand-in (docker/standin/);
    # without it, every stage builds on the official slim image.
    assert global_args() == {"PYTHON_IMAGE": BASE}
    all_stages = stages()
    assert len(all_stages) >= 2
    for stage in all_stages:
        assert stage[0][1].split()[0] == "${PYTHON_IMAGE}"
    builder_name = all_stages[0][0][1].split()[-1]
    builder = " ".join(args for _, args in all_stages[0])
    assert "requirements.txt" in builder
    runtime = all_stages[-1]
    assert any(k == "COPY" and f"--from={builder_name}" in a for k, a in runtime)
    assert not any(k == "RUN" and "pip install" in a for k, a in runtime), "install in the builder"


def test_runtime_runs_as_a_plain_user_before_its_entrypoint():
    runtime = stages()[-1]
    keywords = [k for k, _ in runtime]
    users = [i for i, k in enumerate(keywords) if k == "USER"]
    assert users, "the runtime stage needs a USER"
    last_user = runtime[users[-1]][1].split(":")[0]
    assert last_user not in ("root", "0")
    starts = [i for i, k in enumerate(keywords) if k in ("ENTRYPOINT", "CMD")]
    assert starts and users[-1] < min(starts)


def test_runtime_environment():
    env = " ".join(a for k, a in stages()[-1] if k == "ENV")
    assert "PAGER=cat" in env  # fire pages its help; there is no terminal in a container
    assert "PYTHONUNBUFFERED=1" in env


def test_the_entry_script_is_the_entrypoint_behind_the_privilege_drop():
    entrypoint = [a for k, a in stages()[-1] if k == "ENTRYPOINT"]
    assert entrypoint
    assert json.loads(entrypoint[-1]) == [
        "/bin/sh",
        "/app/docker/drop-root.sh",
        "/bin/sh",
        "/app/docker/entrypoint.sh",
    ]
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert DROP_ROOT.read_text().startswith("#!/bin/sh\n")


def test_the_runtime_has_setpriv_for_the_privilege_drop():
    runtime = " ".join(a for k, a in stages()[-1] if k == "RUN")
    assert "command -v setpriv" in runtime  # the build fails on a base without util-linux


def test_no_env_file_is_copied():
    for keyword, args in instructions():
        if keyword in ("COPY", "ADD"):
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            assert not any(source.startswith(".env") for source in sources), args


def test_dockerignore_keeps_secrets_data_and_leftovers_out():
    patterns = set(dockerignore())
    for needed in (".env", "data", ".venv", ".git", ".pytest_cache", ".ruff_cache"):
        assert needed in patterns, needed
    assert "tests" in patterns or "tests/output" in patterns
    assert any("__pycache__" in p for p in patterns)


def test_dockerignore_keeps_what_the_image_needs():
    needed = ["etl.py", "api.py", "dashboard.py", "config.py", "models.py", "pyproject.toml"]
    needed += ["crypto_etl", "crypto_etl/storage/migrations/env.py", "README.md"]
    needed += ["requirements.txt", "alembic.ini", "docker", "docker/entrypoint.sh"]
    needed += ["docker/drop-root.sh"]
    for name in needed:
        for pattern in dockerignore():
            assert pattern.startswith("!") or not fnmatch.fnmatch(name, pattern), (name, pattern)


@pytest.mark.parametrize("script", [ENTRYPOINT, DROP_ROOT], ids=lambda p: p.name)
@pytest.mark.parametrize("shell", ["sh", "dash"])
def test_the_entry_scripts_are_posix_sh(shell, script):
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell} on this machine")
    subprocess.run([shell, "-n", str(script)], check=True)
