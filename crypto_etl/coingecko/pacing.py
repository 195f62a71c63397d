"""Pacing of CoinGecko calls: a pacer is any callable that returns when the next call may start.

The client paces itself per process with `IntervalPacer` unless it is given another pacer; the
pipeline gives it one that shares the budget through the database (crypto_etl.pipeline.source),
which this package cannot import.
"""

from __future__ import annotations

from collections.abc import Callable

Pacer = Callable[[], None]


class IntervalPacer:
    """At most one call start per `interval_seconds` in this process."""

    def __init__(
        self,
        interval_seconds: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._sleep = sleep
        self._last_start: float | None = None

    def __call__(self) -> None:
        """Wait until the interval since the previous call's start has passed."""
        now = self._clock()
        if self._last_start is not None:
            due = self._last_start + self.interval_seconds
            if now < due:
                self._sleep(due - now)
                now = max(self._clock(), due)
        self._last_start = now
