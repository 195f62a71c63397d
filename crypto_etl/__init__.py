"""Crypto ETL: CoinGecko market data into a database with its full history, served by a read-only
REST API and shown on a dashboard that reads only that API.

Data flows one way, and each part is a subpackage:

    CoinGecko -> coingecko (source) -> shaping -> storage <- api <- dashboard
                 pipeline runs source, shaping and storage; reports and analytics read

- `coingecko`: the HTTP client and the parsing of CoinGecko's answers.
- `shaping`: raw market rows to the typed snapshot table and its CSV form; the data quality rules.
- `storage`: the schema and its migrations, the engine, the one bulk writer, the runs journal, the
  read queries and the gap queries.
- `pipeline`: the snapshot run, the history backfill and its planning, the scheduler; every run is
  journaled here.
- `analytics`: pure pandas functions (returns, resampling, correlation, candles, market share,
  freshness) shared by the API, the reports and the dashboard.
- `reports`: the PNG charts of the command line: their inputs and their matplotlib renderers.
- `api`: the FastAPI app, its routes by resource, schemas, dependencies, errors, cache, metrics.
- `dashboard`: the Streamlit app, its API client, UI helpers and pages.

`settings`, `errors`, `formatting`, `run_status` and `clock` are shared by all. The allowed
directions between the parts are import-linter contracts in pyproject.toml, checked by `make test`.
"""
