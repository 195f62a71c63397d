"""The REST API's app factory: read-only market data over HTTP, typed and documented (Swagger UI at
/docs, ReDoc at /redoc).

Served by the entry point at the repository root: `uvicorn api:app --host 0.0.0.0 --port 8000`,
or with API_WORKERS processes (default: the CPUs) by `python -m crypto_etl.api.serve`. Settings
come from the environment (crypto_etl.settings.load_settings): DATABASE_URL, API_KEY,
CORS_ORIGINS, ETL_INTERVAL_SECONDS, VS_CURRENCY, API_CACHE_CHECK_SECONDS.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from crypto_etl.api.cache import ResponseCache
from crypto_etl.api.deps import API_KEY_HEADER, make_read_only, require_api_key
from crypto_etl.api.edge import Edge
from crypto_etl.api.errors import install_error_handlers
from crypto_etl.api.routes import alerts, cryptos, market, operations, pipeline
from crypto_etl.api.schemas import ErrorResponse
from crypto_etl.errors import ConfigError
from crypto_etl.settings import Settings, load_settings
from crypto_etl.storage.engine import describe, make_engine

log = logging.getLogger("api")

DESCRIPTION = """
Market data collected from CoinGecko by the Crypto ETL pipeline: the latest snapshot per coin,
full price history with returns and moving averages, candles, market dominance, correlations,
and the pipeline's own runs and freshness.

Errors always have the body `{"error": {"status", "code", "message", "details"}}`. When the
server sets `API_KEY`, every `/api/v1` route needs the header `X-API-Key`.
"""


@asynccontextmanager
async def lifespan(app: CryptoApi) -> AsyncIterator[None]:
    """One engine for the app's life: read-only, disposed at shutdown."""
    settings: Settings = app.state.settings
    engine = make_read_only(make_engine(settings.database_url))
    app.state.engine = engine
    app.state.cache = ResponseCache(check_seconds=settings.api_cache_check_seconds)
    app.state.cache.start(engine)
    app.edge.cache = app.state.cache
    log.info("serving %s", describe(engine))
    if gc.get_freeze_count() == 0:
        # Everything loaded so far (pandas, SQLAlchemy, the app) lives as long as the process:
        # out of the collector's view, the full collections a large history answer sets off scan
        # only the request's own objects (they made the slowest 1 % of those answers twice slower).
        gc.collect()
        gc.freeze()
    try:
        yield
    finally:
        app.edge.cache = None
        app.edge.clear()
        app.state.cache.stop()
        engine.dispose()


class CryptoApi(FastAPI):
    """FastAPI behind the edge (crypto_etl.api.edge): every request passes the edge first, which
    answers the GETs it has kept and hands the rest to FastAPI."""

    edge: Edge

    async def __call__(self, scope, receive, send) -> None:
        await self.edge(scope, receive, send)

    async def routed(self, scope, receive, send) -> None:
        """FastAPI itself: middleware, routing, validation, the routes."""
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> CryptoApi:
    """The API for `settings` (default: read from the environment)."""
    settings = settings or load_settings()
    app = CryptoApi(
        title="Crypto ETL API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.edge = Edge(
        app.routed,
        api_key=settings.api_key,
        cors=bool(settings.cors_origins),
        check_seconds=settings.api_cache_check_seconds,
    )
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "OPTIONS"],
            allow_headers=[API_KEY_HEADER],
        )
    app.include_router(operations.router)
    # The API key dependency is added only when API_KEY is set, so that the OpenAPI description
    # asks for the key exactly when the server does.
    for resource in (cryptos, market, pipeline, alerts):
        if settings.api_key:
            app.include_router(
                resource.router,
                dependencies=[Depends(require_api_key)],
                responses={
                    401: {"model": ErrorResponse, "description": "X-API-Key missing or wrong"}
                },
            )
        else:
            app.include_router(resource.router)
    return app


def app_from_environment() -> CryptoApi:
    """The app on the settings of the environment; a bad setting stops the server with one line."""
    try:
        return create_app()
    except ConfigError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
