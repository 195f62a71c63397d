"""The call budget shared through the database (crypto_etl.storage.rate_limit), on SQLite and on
PostgreSQL: slot spacing, no banked burst, the database's clock, and four concurrent workers
sharing a 30-calls-a-minute budget, in virtual time."""

from __future__ import annotations

import threading
import time

import pytest
from fakes import VirtualTime
from sqlalchemy import select

from crypto_etl.coingecko.pacing import IntervalPacer
from crypto_etl.errors import DatabaseError
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.rate_limit import SharedRateLimit
from crypto_etl.storage.schema import RateLimit

START = 1_800_000_000.0  # a virtual "now", seconds since the Unix epoch


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_first_call_waits_not_and_slots_are_one_interval_apart(engine):
    virtual = VirtualTime(START)
    limit = SharedRateLimit(engine, "coingecko:demo", 30, virtual.clock, virtual.sleep)
    assert limit.interval_seconds == 2.0

    starts = [limit.wait().start_unix_seconds for _ in range(4)]

    assert starts == pytest.approx([START, START + 2, START + 4, START + 6], abs=1e-6)
    assert virtual.sleeps == pytest.approx([2.0, 2.0, 2.0], abs=1e-6)  # the first one: none
    assert virtual.now == pytest.approx(START + 6, abs=1e-6)


def test_waiting_callers_line_up_one_interval_apart(engine):
    """Callers whose clock stands still (all asking at once) get consecutive slots."""
    virtual = VirtualTime(START)
    limit = SharedRateLimit(engine, "coingecko:pro", 120, virtual.clock, lambda seconds: None)

    slots = [limit.claim() for _ in range(5)]

    assert [s.start_unix_seconds - START for s in slots] == pytest.approx(
        [0.0, 0.5, 1.0, 1.5, 2.0], abs=1e-6
    )
    assert [s.wait_seconds for s in slots] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0], abs=1e-6)


def test_an_idle_budget_banks_no_burst(engine):
    virtual = VirtualTime(START)
    limit = SharedRateLimit(engine, "coingecko:demo", 30, virtual.clock, virtual.sleep)
    limit.wait()
    virtual.now += 3600  # an hour with no call

    starts = [limit.wait().start_unix_seconds for _ in range(3)]

    resumed = START + 3600
    assert starts == pytest.approx([resumed, resumed + 2, resumed + 4], abs=1e-6)
    assert virtual.sleeps == pytest.approx([2.0, 2.0], abs=1e-6)


def test_budgets_are_apart_and_kept_in_their_row(engine):
    virtual = VirtualTime(START)
    demo = SharedRateLimit(engine, "coingecko:demo", 30, virtual.clock, virtual.sleep)
    pro = SharedRateLimit(engine, "coingecko:pro", 60, virtual.clock, virtual.sleep)
    demo.claim()
    demo.claim()
    assert pro.claim().wait_seconds == 0.0

    with engine.connect() as conn:
        rows = dict(conn.execute(select(RateLimit.name, RateLimit.next_slot_unix_seconds)).all())
    assert rows == pytest.approx({"coingecko:demo": START + 4, "coingecko:pro": START + 1})


def test_the_database_clock_by_default(engine):
    """Without an injected clock, "now" is the database's (the same machine here)."""
    sleeps: list[float] = []
    limit = SharedRateLimit(engine, "coingecko:demo", 6, sleep=sleeps.append)
    before = time.time()
    first, second = limit.wait(), limit.wait()
    after = time.time()

    assert before - 1 <= first.start_unix_seconds <= after + 1
    assert second.start_unix_seconds - first.start_unix_seconds == pytest.approx(10.0, abs=1e-6)
    assert len(sleeps) == 1 and 9.0 < sleeps[0] <= 10.0


def test_an_unreachable_database_is_one_line():
    engine = make_engine("postgresql://postgres@127.0.0.1:1/nothing")
    limit = SharedRateLimit(engine, "coingecko:demo", 30)
    with pytest.raises(DatabaseError) as caught:
        limit.wait()
    assert "cannot claim a call slot of coingecko:demo" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("calls_per_minute", [0, -1, float("nan"), float("inf")])
def test_a_budget_must_be_positive(calls_per_minute):
    engine = make_engine("sqlite://")
    with pytest.raises(ValueError, match="calls_per_minute must be a positive number"):
        SharedRateLimit(engine, "coingecko:demo", calls_per_minute)


# -- the proof: four tasks sharing 30 calls a minute --------------------------------------
WORKERS = 4
CALLS_EACH = 40
BUDGET = 30  # calls per minute
WORK_SECONDS = 0.7  # what a task does between two calls, in virtual time


def _most_in_a_minute(times: list[float]) -> int:
    """The most calls in any half-open 60-second window [t, t + 60)."""
    times = sorted(times)
    most, first = 0, 0
    for last, moment in enumerate(times):
        while times[first] <= moment - 60:
            first += 1
        most = max(most, last - first + 1)
    return most


def _fewest_in_a_full_minute(times: list[float]) -> int:
    """The fewest calls in a 60-second window starting at a call and ending before the last."""
    times = sorted(times)
    counts = [
        sum(1 for t in times if start <= t < start + 60)
        for start in times
        if start + 60 <= times[-1]
    ]
    return min(counts)


def _run_workers(url: str, pacer_of) -> list[float]:
    """WORKERS threads, each with its own engine and virtual clock (as Airflow tasks on several
    workers would be), each making CALLS_EACH calls; the start times granted to all of them."""
    granted: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(WORKERS)
    failures: list[BaseException] = []

    def worker() -> None:
        engine = make_engine(url)
        try:
            virtual = VirtualTime(START)
            pace = pacer_of(engine, virtual)
            ready.wait()
            for _ in range(CALLS_EACH):
                pace()
                with lock:
                    granted.append(virtual.now)  # the call starts when the pacer returns
                virtual.now += WORK_SECONDS
        except BaseException as exc:  # reported by the test, not lost in a thread
            failures.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert len(granted) == WORKERS * CALLS_EACH
    return granted


def test_four_tasks_sharing_30_calls_a_minute_stay_within_it(db_url):
    def shared(engine, virtual):
        limit = SharedRateLimit(engine, "coingecko:demo", BUDGET, virtual.clock, virtual.sleep)
        return limit.wait

    granted = _run_workers(db_url, shared)

    assert _most_in_a_minute(granted) <= BUDGET
    gaps = [b - a for a, b in zip(sorted(granted), sorted(granted)[1:], strict=False)]
    assert min(gaps) >= 2.0 - 1e-6
    # and the budget is used, not wasted: every full minute holds (nearly) 30 calls
    assert _fewest_in_a_full_minute(granted) >= BUDGET - 1
    span = max(granted) - min(granted)
    assert span == pytest.approx((WORKERS * CALLS_EACH - 1) * 2.0, abs=1e-3)


def test_pacing_per_process_alone_would_break_the_budget(sqlite_url):
    """The control: the same four tasks each pacing themselves at 30 a minute make 120."""

    def alone(engine, virtual):
        return IntervalPacer(60 / BUDGET, virtual.clock, virtual.sleep)

    granted = _run_workers(sqlite_url, alone)

    assert _most_in_a_minute(granted) == WORKERS * BUDGET
