"""How fresh the stored data is: the rule behind /api/v1/freshness, /metrics and the dashboard's
pipeline health page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# A scheduled table counts as fresh while its newest row is at most this many cadences old, so one
# late or failed run is tolerated.
FRESH_WITHIN_CADENCES = 2


@dataclass(frozen=True)
class TableAge:
    """The age of a table's newest row and whether that is fresh."""

    age_seconds: float | None  # None: the table is empty
    max_age_seconds: int | None  # None: the schedule does not refresh this table
    fresh: bool | None  # None: not scheduled, so no freshness to judge


def table_age(
    newest: datetime | None, now: datetime, cadence_seconds: int, scheduled: bool
) -> TableAge:
    """The age at `now` of a table whose newest row is `newest`. Tables the scheduled pipeline
    refreshes every `cadence_seconds` are fresh within FRESH_WITHIN_CADENCES cadences; backfilled
    tables (price_history, ohlc) have no cadence."""
    age = None if newest is None else (now - newest).total_seconds()
    max_age = FRESH_WITHIN_CADENCES * cadence_seconds if scheduled else None
    fresh = None if max_age is None else age is not None and age <= max_age
    return TableAge(age, max_age, fresh)
