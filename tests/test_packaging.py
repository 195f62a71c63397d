"""The package as it is installed and developed: the ETL core runs without the API, dashboard and
chart libraries; pyproject's dependencies are the ones requirements*.txt pin; the contributor
tooling (pre-commit, the GitHub Actions workflow) is valid and runs what `.ci/run` runs."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from fake_coingecko import FakeCoinGecko
from helpers import etl_env, market_rows, scalar
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# What only the optional parts import: the API, the dashboard and the chart commands.
OPTIONAL = ("fastapi", "starlette", "uvicorn", "prometheus_client", "orjson", "polars", "streamlit")
OPTIONAL += ("plotly", "matplotlib")
# Runs etl.py as `python etl.py ...` does, with every optional library missing.
WITHOUT_EXTRAS = f"""
import importlib.abc, runpy, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {OPTIONAL!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Missing())
sys.argv = ["etl.py", *sys.argv[1:]]
runpy.run_path({str(ROOT / "etl.py")!r}, run_name="__main__")
"""


def etl_without_extras(tmp_path: Path, env: dict[str, str], *args: str):
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_etl_core_runs_without_the_api_dashboard_and_chart_libraries(tmp_path, sqlite_url):
    with FakeCoinGecko(market_rows()) as fake:
        env = etl_env(sqlite_url, fake.url, tmp_path / "data", OHLC_TOP_N="0")
        done = etl_without_extras(tmp_path, env, "run")
        assert done.returncode == 0, done.stderr
        assert "run 1 success: 50 extracted, 50 loaded" in done.stdout
        assert scalar(sqlite_url, "SELECT count(*) FROM market_snapshots") == 50
        charts = etl_without_extras(tmp_path, env, "visualize", "--csv_path=none.csv")
    assert charts.returncode == 1
    assert charts.stderr.strip().splitlines()[-1] == (
        "error: the chart commands need matplotlib: pip install 'crypto-etl[charts]'"
    )


def pins(*files: str) -> dict[str, str]:
    """Package name -> pinned version, from `files` (default: requirements.txt,
    requirements-dev.txt and requirements-airflow.txt)."""
    found = {}
    for name in files or ("requirements.txt", "requirements-dev.txt", "requirements-airflow.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                requirement = Requirement(line)
                found[canonical(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return found


def test_the_airflow_requirements_pin_the_core_as_requirements_txt_and_airflow_3_3_2():
    airflow, main = pins("requirements-airflow.txt"), pins("requirements.txt")
    core = [canonical(Requirement(d).name) for d in PYPROJECT["project"]["dependencies"]]
    assert {name: airflow.get(name) for name in core} == {name: main[name] for name in core}
    assert airflow["apache-airflow"] == "3.3.2"
    assert all("==" in line for line in _requirement_lines("requirements-airflow.txt"))
    # Never our API's FastAPI beside Airflow (its task API fails with it), nor the dashboard.
    assert airflow["fastapi"] != main["fastapi"]
    assert not {"streamlit", "plotly", "matplotlib", "prometheus-client"} & set(airflow)
    assert PYPROJECT["project"]["optional-dependencies"]["airflow"] == ["apache-airflow>=3.3.2"]


def _requirement_lines(name: str) -> list[str]:
    lines = [line.split("#")[0].strip() for line in (ROOT / name).read_text().splitlines()]
    return [line for line in lines if line]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_dependency_of_pyproject_is_pinned_at_a_version_it_allows():
    project = PYPROJECT["project"]
    declared = [Requirement(d) for d in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += [Requirement(d) for d in extra if not d.startswith("crypto-etl")]
    pinned = pins()
    for requirement in declared:
        version = pinned.get(canonical(requirement.name))
        assert version, (
            f"{requirement.name} is in pyproject.toml but pinned in no requirements file"
        )
        assert requirement.specifier.contains(version), (str(requirement), version)


def test_the_core_declares_no_api_dashboard_or_chart_library():
    core = {canonical(Requirement(d).name) for d in PYPROJECT["project"]["dependencies"]}
    assert core.isdisjoint({canonical(name) for name in OPTIONAL} | {"prometheus-client"})
    assert "pyarrow" in core  # read_snapshot_csv's engine
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"api", "dashboard", "charts", "dev", "airflow"} <= set(extras)


def test_the_build_backend_is_pinned():
    assert all("==" in r for r in PYPROJECT["build-system"]["requires"])


def test_the_pre_commit_configuration_is_valid_and_runs_the_linters():
    config = ROOT / ".pre-commit-config.yaml"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pre-commit"), "validate-config", str(config)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    hooks = {
        hook["id"]: hook
        for repo in yaml.safe_load(config.read_text())["repos"]
        for hook in repo["hooks"]
    }
    assert {"ruff-check", "ruff-format", "import-linter"} <= set(hooks)
    assert "lint-imports" in hooks["import-linter"]["entry"]


WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def test_the_github_workflow_is_valid_against_githubs_schema():
    checker = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_fails_on_a_broken_workflow(tmp_path):
    broken = tmp_path / "ci.yml"
    workflow = yaml.safe_load(WORKFLOW.read_text())
    workflow["jobs"]["test"]["runs-on"] = {"wrong": True}
    broken.write_text(yaml.safe_dump(workflow))
    checker = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0


def test_the_workflow_runs_what_ci_runs_with_a_postgresql_service():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["test"]
    postgres = job["services"]["postgres"]
    assert postgres["image"].startswith("postgres:15")
    assert "5432:5432" in postgres["ports"]
    assert "pg_isready" in postgres["options"]
    commands = "\n".join(step.get("run", "") for step in job["steps"])
    assert "bash .ci/run" in commands
    assert job["env"]["CI"] == "true"
    assert job["env"]["TEST_POSTGRES_ADMIN_URL"].startswith("postgresql://postgres")


def test_the_makefile_lints_imports_in_the_test_target():
    makefile = (ROOT / "Makefile").read_text()
    target = makefile[makefile.index("\ntest:") : makefile.index("\nclean:")]
    assert "lint-imports" in target and "ruff check" in target and "pytest" in target
