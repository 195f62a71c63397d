"""The API's routes, one module per resource: `cryptos`, `market` and `pipeline` under /api/v1 (the
data, behind the API key when one is set), `operations` at the root (health, readiness, metrics).

Each resource's router carries the /api/v1 prefix itself, so that its routes' own paths are the
full templates the metrics count requests by."""
