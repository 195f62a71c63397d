"""Query parameters the routes share, and the checks across parameters (a time range)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Query

from crypto_etl.api.errors import InvalidParameter

API_V1 = "/api/v1"  # the prefix of the data routes
EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)  # the first bitcoin block: no market data before
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_RANGE_DAYS = 366
MAX_POINTS = 10_000
# Query-string text: printable only (a NUL byte would reach the database driver).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

Limit250 = Annotated[int, Query(ge=1, le=250, description="Rows per page")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip")]
Start = Annotated[
    datetime | None,
    Query(description="Range start, ISO 8601 (UTC when no offset is given); default end - 30 days"),
]
End = Annotated[datetime | None, Query(description="Range end, ISO 8601; default now")]


def utc(value: datetime, field: str) -> datetime:
    """A time parameter in UTC (naive means UTC), within EARLIEST and LATEST."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not EARLIEST <= value <= LATEST:
        raise InvalidParameter(field, f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return value


def time_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[start, end] in UTC: end defaults to now, start to 30 days before end; at most
    MAX_RANGE_DAYS long."""
    end = utc(end, "end") if end else datetime.now(UTC)
    start = utc(start, "start") if start else max(end - timedelta(days=30), EARLIEST)
    if start > end:
        raise InvalidParameter("start", "must not be after end")
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise InvalidParameter("start", f"the range may span at most {MAX_RANGE_DAYS} days")
    return start, end
