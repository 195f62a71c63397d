"""The API cache's background version check survives any exception: it logs one line, keeps the
last version and tries again at the next interval, so answers are refreshed once the data changes.
The check's wait is stepped by the test, so nothing sleeps on a timer."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from crypto_etl.api import cache as cache_module
from crypto_etl.api.cache import ResponseCache
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.schema import EtlRun


class Stepper:
    """A wait for the refresher that returns only when the test allows one more check, and
    tells the test when the refresher is back waiting (its check done)."""

    def __init__(self) -> None:
        self._go = threading.Semaphore(0)
        self._waiting = threading.Condition()
        self.waits = 0

    def wait(self, _seconds: float) -> bool:
        with self._waiting:
            self.waits += 1
            self._waiting.notify_all()
        self._go.acquire()
        return False

    def step(self) -> None:
        """Let one check run and return once it is done."""
        with self._waiting:
            before = self.waits
            self._go.release()
            assert self._waiting.wait_for(lambda: self.waits > before, timeout=30)


def add_run(engine, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(EtlRun).values(
                command="run",
                status=status,
                started_at=datetime.now(UTC),
                rows_extracted=0,
                rows_loaded=0,
                rows_rejected=0,
                rows_skipped=0,
            )
        )


def test_the_refresher_survives_any_exception_and_fresh_data_is_served(
    sqlite_url, monkeypatch, caplog
):
    engine = make_engine(sqlite_url)
    add_run(engine, "success")
    real = cache_module.queries.data_version
    calls = {"n": 0}

    def flaky(session):
        calls["n"] += 1
        if calls["n"] == 2:  # the first background check meets a bug, not a database error
            raise KeyError("an unexpected bug")
        return real(session)

    monkeypatch.setattr(cache_module.queries, "data_version", flaky)
    stepper = Stepper()
    cache = ResponseCache(check_seconds=1.0, wait=stepper.wait)
    with Session(engine) as session:
        assert cache.get_or_render(session, "list", lambda: b"old") == (b"old", False)
    cache.start(engine)
    try:
        with caplog.at_level(logging.WARNING, logger="crypto_etl.api.cache"):
            stepper.step()  # the failing check: logged, the thread goes on
        failures = [r.getMessage() for r in caplog.records]
        assert failures == [
            "cache: checking the data version failed: KeyError: 'an unexpected bug'; retrying in 1s"
        ]
        with Session(engine) as session:  # still the last version read: served from the cache
            assert cache.get_or_render(session, "list", lambda: b"new") == (b"old", True)

        add_run(engine, "success")  # new data
        stepper.step()  # the next check works again
        with Session(engine) as session:
            assert cache.get_or_render(session, "list", lambda: b"new") == (b"new", False)
        assert calls["n"] == 3 and cache._refresher.is_alive()
    finally:
        cache._stop.set()
        stepper._go.release()
        cache.stop()
        engine.dispose()
