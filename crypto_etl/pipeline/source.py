"""The one place the pipeline makes its CoinGecko client, paced per process or, with
COINGECKO_SHARED_RATE_LIMIT on, by a calls-per-minute budget shared through the database by every
process using it (crypto_etl.storage.rate_limit): Airflow tasks on several workers and machines
then stay within the plan's limit together.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.coingecko.client import CoinGeckoClient
from crypto_etl.coingecko.pacing import IntervalPacer
from crypto_etl.errors import DatabaseError, first_line
from crypto_etl.settings import Settings
from crypto_etl.storage.engine import Database
from crypto_etl.storage.rate_limit import SharedRateLimit

log = logging.getLogger(__name__)


def budget_name(settings: Settings) -> str:
    """The shared budget's name: one per CoinGecko plan, keyless use apart (never the key)."""
    plan = settings.coingecko_api_plan if settings.coingecko_api_key else "keyless"
    return f"coingecko:{plan}"


class SharedPacer:
    """Paces calls by the budget shared through the database, opened on the first call. When the
    database cannot be reached the run goes on paced per process, with a warning (a snapshot run
    still fetches during a database outage, see crypto_etl.pipeline.snapshot)."""

    def __init__(
        self,
        settings: Settings,
        database: Database | Engine,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock  # None: the database's clock
        self._sleep = sleep
        self._limit: SharedRateLimit | None = None
        self._fallback: IntervalPacer | None = None

    def __call__(self) -> None:
        if self._fallback is None:
            try:
                if self._limit is None:
                    engine = (
                        self._database.engine
                        if isinstance(self._database, Database)
                        else self._database
                    )
                    name = budget_name(self._settings)
                    self._limit = SharedRateLimit(
                        engine, name, self._settings.calls_per_minute, self._clock, self._sleep
                    )
                self._limit.wait()
                return
            except (DatabaseError, SQLAlchemyError) as exc:
                log.warning(
                    "the shared CoinGecko rate limit is out of reach (%s); pacing this process "
                    "alone at %g calls a minute",
                    first_line(exc),
                    self._settings.calls_per_minute,
                )
                interval = 60.0 / self._settings.calls_per_minute
                self._fallback = IntervalPacer(interval, time.monotonic, self._sleep)
        self._fallback()


def make_client(settings: Settings, database: Database | Engine | None) -> CoinGeckoClient:
    """The CoinGecko client of a pipeline step: with `settings.shared_rate_limit` and a database,
    every attempt (retries too) takes a slot of the shared budget; otherwise the client paces
    this process alone."""
    if settings.shared_rate_limit and database is not None:
        return CoinGeckoClient(settings, pacer=SharedPacer(settings, database))
    return CoinGeckoClient(settings)
