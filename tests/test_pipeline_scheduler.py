"""crypto_etl.pipeline.scheduler: the fixed-cadence loop and the signal-driven stop flag.

Time is fake: `FakeClock` only moves when a job "runs" or the loop waits, and `FakeStop.wait`
records each requested wait and moves the clock instead of blocking. Nothing sleeps for real.
"""

from __future__ import annotations

import logging
import os
import signal

import pytest

from crypto_etl.pipeline.scheduler import StopFlag, run_every

START = 1000.0


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeStop:
    """Quacks like StopFlag: wait() records the request and advances the fake clock.

    `stop_on_wait=n` sets the flag during the n-th wait, as a signal arriving while idle would.
    """

    def __init__(self, clock: FakeClock, stop_on_wait: int | None = None) -> None:
        self.clock = clock
        self.waits: list[float] = []
        self.stop_on_wait = stop_on_wait
        self._set = False

    def set(self, signal_name: str = "stop") -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        if self._set:
            return True
        if self.stop_on_wait == len(self.waits):
            self._set = True
            return True
        self.clock.advance(max(0.0, seconds))
        return False


class FakeJob:
    """A job that takes `durations[i]` fake seconds on run i and fails on the runs in `failing`.

    `on_run` is called with the run number (from 1) at the start of each run.
    """

    def __init__(self, clock, durations=(0.0,), failing=(), on_run=None) -> None:
        self.clock = clock
        self.durations = list(durations)
        self.failing = set(failing)
        self.on_run = on_run
        self.starts: list[float] = []

    def __call__(self) -> None:
        run = len(self.starts) + 1
        self.starts.append(self.clock())
        if self.on_run:
            self.on_run(run)
        self.clock.advance(self.durations[min(run, len(self.durations)) - 1])
        if run in self.failing:
            raise RuntimeError(f"boom in run {run}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def offsets(starts: list[float]) -> list[float]:
    return [s - START for s in starts]


# run_every


def test_runs_are_spaced_from_start_to_start(clock):
    job = FakeJob(clock, durations=[5, 12, 1, 0])
    stop = FakeStop(clock)

    result = run_every(job, 60, stop, max_runs=4, clock=clock)

    assert result == (4, 0)
    assert offsets(job.starts) == [0, 60, 120, 180]
    assert stop.waits == [55, 48, 59]


def test_an_instant_job_waits_the_whole_interval(clock):
    job = FakeJob(clock, durations=[0])
    stop = FakeStop(clock)

    run_every(job, 300, stop, max_runs=3, clock=clock)

    assert stop.waits == [300, 300]
    assert offsets(job.starts) == [0, 300, 600]


def test_max_runs_is_honoured_with_no_wait_after_the_last_run(clock):
    job = FakeJob(clock, durations=[1])
    stop = FakeStop(clock)

    assert run_every(job, 10, stop, max_runs=1, clock=clock) == (1, 0)
    assert len(job.starts) == 1
    assert stop.waits == []


def test_failed_run_is_logged_and_the_schedule_goes_on(clock, caplog):
    caplog.set_level(logging.INFO, logger="scheduler")
    job = FakeJob(clock, durations=[2], failing={2})
    stop = FakeStop(clock)

    result = run_every(job, 30, stop, max_runs=4, clock=clock)

    assert result == (4, 1)
    assert offsets(job.starts) == [0, 30, 60, 90]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "tick 2 failed" in errors[0].getMessage()
    assert "boom in run 2" in errors[0].getMessage()


def test_a_failed_run_is_logged_on_one_line(clock, caplog):
    """Driver errors span lines (psycopg adds hints, SQLAlchemy a link): only the first is kept."""
    caplog.set_level(logging.INFO, logger="scheduler")

    def job() -> None:
        raise RuntimeError("connection failed: server closed\n\tIs the server running?\n(link)")

    assert run_every(job, 10, FakeStop(clock), max_runs=2, clock=clock) == (2, 2)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"tick {n} failed: connection failed: server closed; retrying at the next tick"
        for n in (1, 2)
    ]


def test_a_failure_without_a_message_is_named_by_its_type(clock, caplog):
    caplog.set_level(logging.INFO, logger="scheduler")

    def job() -> None:
        raise TimeoutError()

    run_every(job, 10, FakeStop(clock), max_runs=1, clock=clock)
    assert "tick 1 failed: TimeoutError;" in caplog.records[-1].getMessage()


def test_every_run_failing_still_keeps_the_cadence(clock, caplog):
    caplog.set_level(logging.INFO, logger="scheduler")
    job = FakeJob(clock, durations=[3], failing={1, 2, 3})
    stop = FakeStop(clock)

    assert run_every(job, 10, stop, max_runs=3, clock=clock) == (3, 3)
    assert offsets(job.starts) == [0, 10, 20]
    assert [r.levelno for r in caplog.records].count(logging.ERROR) == 3


def test_stop_set_before_the_first_run_runs_nothing(clock):
    job = FakeJob(clock)
    stop = FakeStop(clock)
    stop.set()

    assert run_every(job, 10, stop, clock=clock) == (0, 0)
    assert job.starts == []


def test_stop_set_during_a_job_ends_the_loop_after_that_job(clock):
    stop = FakeStop(clock)
    job = FakeJob(clock, durations=[4], on_run=lambda run: run == 2 and stop.set())

    result = run_every(job, 10, stop, clock=clock)

    assert result == (2, 0)
    assert offsets(job.starts) == [0, 10]
    assert clock() - START == 14  # the second run finished; nothing ran or waited after it


def test_stop_set_during_a_failing_job_ends_the_loop(clock):
    stop = FakeStop(clock)
    job = FakeJob(clock, failing={1}, on_run=lambda run: stop.set())

    assert run_every(job, 10, stop, clock=clock) == (1, 1)
    assert len(job.starts) == 1


def test_stop_during_the_wait_ends_the_loop_without_another_run(clock):
    job = FakeJob(clock, durations=[1])
    stop = FakeStop(clock, stop_on_wait=2)

    assert run_every(job, 10, stop, clock=clock) == (2, 0)
    assert stop.waits == [9, 9]


def test_with_the_real_stop_flag_a_stop_during_a_job_returns_at_once(clock):
    # The flag is set during the first run, and StopFlag.wait on a set flag returns at once, so
    # the loop never blocks on the real event.
    stop = StopFlag()
    job = FakeJob(clock, on_run=lambda run: stop.set("SIGTERM"))

    assert run_every(job, 3600, stop, max_runs=5, clock=clock) == (1, 0)
    assert stop.signal_name == "SIGTERM"


def test_overrun_skips_the_missed_ticks(clock, caplog):
    caplog.set_level(logging.INFO, logger="scheduler")
    job = FakeJob(clock, durations=[25, 1, 1])
    stop = FakeStop(clock)

    run_every(job, 10, stop, max_runs=3, clock=clock)

    # Ticks at 10 and 20 passed during the first run; the next run waits for the tick at 30.
    assert offsets(job.starts) == [0, 30, 40]
    assert stop.waits == [5, 9]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["run took longer than the interval; skipping 2 tick(s)"]


def test_run_lasting_exactly_one_interval_starts_the_next_at_once(clock, caplog):
    caplog.set_level(logging.INFO, logger="scheduler")
    job = FakeJob(clock, durations=[10, 1])
    stop = FakeStop(clock)

    run_every(job, 10, stop, max_runs=2, clock=clock)

    assert offsets(job.starts) == [0, 10]
    assert stop.waits == [0]
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_overrun_keeps_the_original_tick_grid(clock):
    job = FakeJob(clock, durations=[1, 37, 1, 1])
    stop = FakeStop(clock)

    run_every(job, 10, stop, max_runs=4, clock=clock)

    assert offsets(job.starts) == [0, 10, 50, 60]


def test_run_ending_just_before_a_later_tick_starts_at_that_tick(clock):
    job = FakeJob(clock, durations=[19.5, 1])
    stop = FakeStop(clock)

    run_every(job, 10, stop, max_runs=2, clock=clock)

    assert offsets(job.starts) == [0, 20]
    assert stop.waits == [0.5]


def test_run_ending_exactly_on_a_later_tick_starts_at_that_tick(clock):
    job = FakeJob(clock, durations=[20, 1])
    stop = FakeStop(clock)

    run_every(job, 10, stop, max_runs=2, clock=clock)

    assert offsets(job.starts) == [0, 20]


# StopFlag


def test_stop_flag_starts_clear_and_wait_times_out_without_blocking():
    stop = StopFlag()

    assert not stop.is_set()
    assert stop.signal_name is None
    assert stop.wait(0) is False
    assert stop.wait(-5) is False  # a negative wait is treated as zero


def test_stop_flag_set_records_the_reason_and_wait_returns_true_at_once():
    stop = StopFlag()

    stop.set("SIGINT")

    assert stop.is_set()
    assert stop.signal_name == "SIGINT"
    assert stop.wait(3600) is True


@pytest.fixture
def restore_signal_handlers():
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_install_turns_sigterm_and_sigint_into_a_stop(restore_signal_handlers, caplog, signum):
    caplog.set_level(logging.INFO, logger="scheduler")
    stop = StopFlag()
    stop.install()

    os.kill(os.getpid(), signum)

    # The handler runs on the main thread as soon as the signal is delivered; wait() returns
    # as soon as the flag is set, so this does not sleep unless the handler is broken.
    assert stop.wait(5) is True
    assert stop.signal_name == signal.Signals(signum).name
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{signal.Signals(signum).name} received: stopping after the current step"]


def test_a_second_signal_is_not_logged_again(restore_signal_handlers, caplog):
    caplog.set_level(logging.INFO, logger="scheduler")
    stop = StopFlag()
    stop.install()

    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.wait(5)
    os.kill(os.getpid(), signal.SIGINT)  # os.kill runs the handlers of a signal sent to itself

    assert stop.signal_name == "SIGINT"
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1


def test_install_replaces_both_handlers(restore_signal_handlers):
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    StopFlag().install()

    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        assert callable(handler)
        assert handler is not before[signum]
