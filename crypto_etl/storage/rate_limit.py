"""A call budget shared through the database, so that every process using one database (tasks on
several workers and machines) stays within one calls-per-minute limit together.

Each call claims the next free slot of its budget with one conditional upsert in a transaction of
its own: the slot is the later of "now" and the budget's `next_slot_unix_seconds`, and the budget
moves on by one interval (60 / calls_per_minute). The caller then sleeps until its slot, outside
any transaction, so no lock is held while waiting. Because the next slot never starts before
"now", a budget left idle does not bank a burst.

"Now" is the database's clock by default (one clock for every machine); tests inject a clock and a
sleep so that they run in no real time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.clock import utcnow
from crypto_etl.errors import DatabaseError, first_line
from crypto_etl.storage.engine import describe
from crypto_etl.storage.schema import UTCDateTime

log = logging.getLogger(__name__)

# The database's clock in seconds since the Unix epoch, one value for the whole statement:
# PostgreSQL's statement_timestamp() and SQLite's 'now' (fixed within one step) both are.
_DATABASE_CLOCK = {
    "postgresql": "EXTRACT(EPOCH FROM statement_timestamp())::double precision",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}
_GREATEST = {"postgresql": "GREATEST", "sqlite": "MAX"}

_CLAIM = """
INSERT INTO rate_limits (name, next_slot_unix_seconds, updated_at)
VALUES (:name, {now} + :interval, :updated_at)
ON CONFLICT (name) DO UPDATE SET
    next_slot_unix_seconds = {greatest}(rate_limits.next_slot_unix_seconds, {now}) + :interval,
    updated_at = :updated_at
RETURNING next_slot_unix_seconds - :interval AS slot, {now} AS now
"""


@dataclass(frozen=True)
class Slot:
    """A claimed slot: when the call may start and the clock's time when it was claimed, both in
    seconds since the Unix epoch."""

    start_unix_seconds: float
    claimed_unix_seconds: float

    @property
    def wait_seconds(self) -> float:
        return max(0.0, self.start_unix_seconds - self.claimed_unix_seconds)


class SharedRateLimit:
    """The budget `name` of `calls_per_minute` calls, shared by every process using `engine`'s
    database. Call it (or `wait()`) before each call."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        calls_per_minute: float,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not calls_per_minute > 0 or calls_per_minute == float("inf"):
            raise ValueError(f"calls_per_minute must be a positive number, got {calls_per_minute}")
        dialect = engine.dialect.name
        if dialect not in _GREATEST:
            raise ValueError(f"a shared rate limit needs PostgreSQL or SQLite, not {dialect}")
        self.engine = engine
        self.name = name
        self.interval_seconds = 60.0 / calls_per_minute
        self._clock = clock
        self._sleep = sleep
        now = ":now" if clock is not None else _DATABASE_CLOCK[dialect]
        sql = _CLAIM.format(now=now, greatest=_GREATEST[dialect])
        self._claim = text(sql).bindparams(bindparam("updated_at", type_=UTCDateTime()))

    def claim(self) -> Slot:
        """Take the budget's next slot (one statement, its own short transaction)."""
        params: dict[str, object] = {
            "name": self.name,
            "interval": self.interval_seconds,
            "updated_at": utcnow(),
        }
        if self._clock is not None:
            params["now"] = self._clock()
        try:
            with self.engine.begin() as conn:
                slot, now = conn.execute(self._claim, params).one()
        except SQLAlchemyError as exc:
            raise DatabaseError(
                f"cannot claim a call slot of {self.name} in {describe(self.engine)}: "
                f"{first_line(exc)}"
            ) from exc
        return Slot(float(slot), float(now))

    def wait(self) -> Slot:
        """Claim the next slot, then sleep (holding no lock) until it starts."""
        slot = self.claim()
        if slot.wait_seconds > 0:
            log.debug("%s: waiting %.3f s for the next call slot", self.name, slot.wait_seconds)
            self._sleep(slot.wait_seconds)
        return slot

    def __call__(self) -> None:
        self.wait()
