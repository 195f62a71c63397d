"""Run a job at a fixed cadence until stopped: a failed run is logged and retried at the next tick,
and SIGINT or SIGTERM stop the loop cleanly between steps. Also how a long command that is not
scheduled (a backfill) turns SIGTERM into a stop."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator

from crypto_etl.errors import Terminated, database_failure, first_line, run_id_of

log = logging.getLogger(__name__)


class StopFlag:
    """Set by SIGINT/SIGTERM; the job checks it between steps, the loop waits on it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def set(self, signal_name: str = "stop") -> None:
        self.signal_name = signal_name
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; True when stopped meanwhile."""
        return self._event.wait(max(0.0, seconds))

    def install(self) -> None:
        def handler(signum, _frame):
            name = signal.Signals(signum).name
            if not self.is_set():
                log.warning("%s received: stopping after the current step", name)
            self.set(name)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def run_every(
    job: Callable[[], object],
    interval_seconds: float,
    stop: StopFlag,
    max_runs: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[int, int]:
    """Call `job` every `interval_seconds` (from the start of one call to the next, skipping
    ticks a long run overran) until `stop` is set or `max_runs` calls were made. A failure is
    logged on one line naming the tick (the count of calls) and, when the job's recorded run
    ended with it, that run's etl_runs id. Returns (runs, failed runs)."""
    runs = failures = 0
    next_tick = clock()
    while not stop.is_set():
        runs += 1
        try:
            job()
        except Exception as exc:  # a failed run must not end the schedule
            failures += 1
            detail = database_failure(exc) or first_line(exc)
            run_id = run_id_of(exc)
            if run_id is None:
                log.error("tick %d failed: %s; retrying at the next tick", runs, detail)
            else:
                log.error(
                    "tick %d: run %d failed: %s; retrying at the next tick", runs, run_id, detail
                )
        if max_runs is not None and runs >= max_runs:
            break
        next_tick += interval_seconds
        now = clock()
        if next_tick < now:
            skipped = math.ceil((now - next_tick) / interval_seconds)
            log.warning("run took longer than the interval; skipping %d tick(s)", skipped)
            next_tick += skipped * interval_seconds
        if stop.wait(next_tick - now):
            break
    return runs, failures


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops a long command like Ctrl-C does (a KeyboardInterrupt, `Terminated`, in the
    main thread), so that its run is recorded as cancelled. Only the main thread can install it;
    elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
