"""What routes receive through dependencies: the request's database session, the settings, the
response cache, the API key check, the quote currency and the coin id."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from crypto_etl.api.cache import ResponseCache
from crypto_etl.settings import CURRENCY_PATTERN, Settings, currency_code

API_KEY_HEADER = "X-API-Key"


def make_read_only(engine: Engine) -> Engine:
    """An engine on `engine`'s pool whose connections refuse writes: the API only reads, and the
    database enforces it (PostgreSQL: default_transaction_read_only; SQLite: query_only).

    On PostgreSQL statements run in autocommit mode: a read needs no transaction of its own, and
    BEGIN and ROLLBACK would cost two more round trips on every request."""

    def _on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute("SET default_transaction_read_only = on")
            dbapi_connection.commit()
        elif engine.dialect.name == "sqlite":
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    event.listen(engine, "connect", _on_connect)
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request on the app's engine; it is rolled back and closed afterwards.

    `async`, so that FastAPI runs it inline rather than in the thread pool twice (entering and
    leaving): making a Session touches no database (the route's thread connects on its first
    query), and closing one hands its connection back to the pool, where the reset is a no-op
    for the API's autocommit (PostgreSQL) or file-local (SQLite) connections."""
    session = Session(request.app.state.engine)
    try:
        yield session
    finally:
        session.close()


# Dependencies that do no I/O are `async def`: FastAPI then calls them inline instead of handing
# each to the thread pool, which costs more than they do.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_cache(request: Request) -> ResponseCache:
    return request.app.state.cache


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CacheDep = Annotated[ResponseCache, Depends(get_cache)]

_api_key = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Needed on /api/v1 routes when the server sets API_KEY",
)


async def require_api_key(
    settings: SettingsDep, key: Annotated[str | None, Security(_api_key)] = None
) -> None:
    """401 unless API_KEY is unset or the X-API-Key header matches it (constant-time compare)."""
    if settings.api_key is None:
        return
    if key is None or not hmac.compare_digest(key.encode(), settings.api_key.encode()):
        raise HTTPException(
            401,
            f"missing or wrong {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )


async def _vs_currency(
    settings: SettingsDep,
    vs_currency: Annotated[
        str | None,
        Query(
            description="Quote currency such as usd or eur (default: the server's VS_CURRENCY)",
            pattern=CURRENCY_PATTERN,
            examples=["usd"],
        ),
    ] = None,
) -> str:
    """The quote currency asked for, in lower case (the query pattern has checked it against the
    one currency rule), else the server's VS_CURRENCY."""
    code = None if vs_currency is None else currency_code(vs_currency)
    return code or settings.vs_currency


VsCurrency = Annotated[str, Depends(_vs_currency)]
CoinId = Annotated[
    str,
    # CoinGecko ids: lowercase words joined by hyphens, sometimes with dots or digits.
    Path(
        description="CoinGecko coin id",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$",
        examples=["bitcoin"],
    ),
]
