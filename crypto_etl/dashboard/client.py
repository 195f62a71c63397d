"""The dashboard's only data source: the REST API, read over HTTP and cached.

Settings: API_BASE_URL (default http://localhost:8000) and API_KEY (sent as X-API-Key when set),
from the environment or a .env file. Responses are cached for CACHE_TTL_SECONDS, about the
pipeline's cadence: newer data cannot appear sooner. Failures become ApiProblem with a message for
the page; nothing here draws anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import streamlit as st

DEFAULT_BASE_URL = "http://localhost:8000"
API_KEY_HEADER = "X-API-Key"
# The pipeline runs every ETL_INTERVAL_SECONDS (300 by default): data is never newer than that.
CACHE_TTL_SECONDS = 300
REQUEST_TIMEOUT_SECONDS = 10


class ApiProblem(Exception):
    """The API could not give the data; the message says why and what to do."""

    def __init__(self, message: str, down: bool = False) -> None:
        super().__init__(message)
        self.down = down  # True: unreachable or without its database, rather than a refusal


@dataclass(frozen=True)
class ApiSettings:
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None


def load_api_settings(env: Mapping[str, str] | None = None) -> ApiSettings:
    """API_BASE_URL and API_KEY from `env` (default: the environment, after reading .env)."""
    if env is None:
        from dotenv import load_dotenv

        load_dotenv(Path.cwd() / ".env", override=False)
        env = os.environ
    base = env.get("API_BASE_URL", "").strip().rstrip("/") or DEFAULT_BASE_URL
    return ApiSettings(base_url=base, api_key=env.get("API_KEY", "").strip() or None)


@st.cache_resource(show_spinner=False)
def _http() -> requests.Session:
    """One connection pool for every page and session."""
    return requests.Session()


def _error_message(response: requests.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason


def get_json(path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """GET `path` from the API (uncached); ApiProblem on any failure."""
    settings = load_api_settings()
    url = f"{settings.base_url}{path}"
    headers = {API_KEY_HEADER: settings.api_key} if settings.api_key else {}
    try:
        response = _http().get(url, params=params, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS)
    except requests.Timeout:
        raise ApiProblem(
            f"The API at {settings.base_url} did not answer within {REQUEST_TIMEOUT_SECONDS} s.",
            down=True,
        ) from None
    except requests.RequestException:
        raise ApiProblem(
            f"Cannot reach the API at {settings.base_url}. Start it with "
            "`uvicorn api:app --port 8000`, or set API_BASE_URL to where it runs.",
            down=True,
        ) from None
    if response.status_code == 401:
        raise ApiProblem(
            f"The API at {settings.base_url} refused the request: set API_KEY to the API's key."
        )
    if response.status_code == 503:
        raise ApiProblem(
            f"The API at {settings.base_url} cannot reach its database: {_error_message(response)}",
            down=True,
        )
    if not response.ok:
        raise ApiProblem(
            f"The API answered {response.status_code} to {path}: {_error_message(response)}"
        )
    try:
        return response.json()
    except ValueError:
        raise ApiProblem(f"The API at {settings.base_url} sent a body that is not JSON.") from None


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner="Loading from the API…")
def _cached(base_url: str, path: str, params: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    del base_url  # part of the cache key only: another API means other data
    return get_json(path, dict(params))


def fetch(path: str, **params: Any) -> dict[str, Any]:
    """GET `path` through the cache; None-valued parameters are left out."""
    clean = tuple(sorted((k, v) for k, v in params.items() if v is not None))
    return _cached(load_api_settings().base_url, path, clean)


def clear_cache() -> None:
    """Forget every cached response: the next page load asks the API again."""
    _cached.clear()


# -- the endpoints the pages use ----------------------------------------------------------------


def market_summary(top_n: int = 10) -> dict[str, Any]:
    return fetch("/api/v1/market/summary", top_n=top_n)


def cryptos(limit: int = 250) -> dict[str, Any]:
    return fetch("/api/v1/cryptos", limit=limit, order_by="market_cap_rank")


def coin(coin_id: str) -> dict[str, Any]:
    return fetch(f"/api/v1/cryptos/{coin_id}")


def history(coin_id: str, start: str, end: str, interval: str) -> dict[str, Any]:
    return fetch(
        f"/api/v1/cryptos/{coin_id}/history",
        start=start,
        end=end,
        interval=interval,
        ma=(7, 30),
    )


def ohlc(coin_id: str, start: str, end: str, interval: str) -> dict[str, Any]:
    return fetch(f"/api/v1/cryptos/{coin_id}/ohlc", start=start, end=end, interval=interval)


def correlation(top_n: int, days: int, interval: str) -> dict[str, Any]:
    return fetch("/api/v1/market/correlation", top_n=top_n, days=days, interval=interval)


def runs(limit: int = 50) -> dict[str, Any]:
    return fetch("/api/v1/runs", limit=limit)


def rejected_rows(limit: int = 50) -> dict[str, Any]:
    return fetch("/api/v1/rejected_rows", limit=limit)


def freshness() -> dict[str, Any]:
    return fetch("/api/v1/freshness")


def alerts(state: str | None = "open", limit: int = 50) -> dict[str, Any]:
    return fetch("/api/v1/alerts", state=state, limit=limit)


def anomalies(coin_id: str, since: str, until: str, limit: int = 200) -> dict[str, Any]:
    return fetch("/api/v1/anomalies", coin=coin_id, since=since, until=until, limit=limit)
