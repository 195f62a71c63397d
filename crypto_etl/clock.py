"""The current time, always timezone-aware UTC.

`history_now` may be pinned with CRYPTO_ETL_NOW (ISO 8601 with a timezone) so that tests of the
history backfill, the candle refresh and the gap report see a fixed moment.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from crypto_etl.errors import ConfigError

NOW_ENV = "CRYPTO_ETL_NOW"


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def history_now() -> datetime:
    """The current UTC time, or the time pinned by CRYPTO_ETL_NOW (tests)."""
    pinned = os.environ.get(NOW_ENV, "").strip()
    if not pinned:
        return utcnow()
    try:
        moment = datetime.fromisoformat(pinned.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{NOW_ENV} must be an ISO 8601 time, got {pinned!r}") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{NOW_ENV} needs a timezone, e.g. 2025-10-28T08:10:00Z")
    return moment.astimezone(UTC)
