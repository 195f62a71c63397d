# Setup, run and test. `make demo` and `make test` are the README's two quickstart commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo demo-offline run test lint format clean

# The pinned requirements first, then the package itself, editable and without its own (looser)
# dependency ranges, so that what runs is exactly what requirements*.txt pin.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --editable .
	touch $@

setup: $(VENV)/.installed

demo: setup  ## set up, then run the pipeline once on the embedded SQLite database
	$(PY) etl.py run

demo-offline: setup  ## no internet: the same, against a local fake CoinGecko serving recorded data
	$(PY) tests/fake_coingecko.py --port 8765 & pid=$$!; $(PY) tests/fake_coingecko.py --port 8765 --wait; \
	COINGECKO_BASE_URL=http://127.0.0.1:8765/api/v3 COINGECKO_CALLS_PER_MINUTE=600 $(PY) etl.py run; \
	rc=$$?; kill $$pid; exit $$rc

run: setup
	$(PY) etl.py run

test: lint  ## set up, then run the linters and the whole test suite
	$(PY) -m pytest -q

lint: setup  ## ruff (lint and format) and the import-linter contracts between the parts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: setup  ## fix what ruff can fix and format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf data charts .pytest_cache .ruff_cache *.egg-info
