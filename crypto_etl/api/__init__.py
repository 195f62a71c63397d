"""The read-only REST API (FastAPI): the app factory, routes by resource, response schemas,
dependencies, the one error shape, the response cache and Prometheus metrics."""
