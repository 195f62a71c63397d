"""Rendered JSON bodies kept per process and keyed on the data version
(crypto_etl.storage.queries.data_version): when a pipeline run starts, changes status or loads
rows, or newer snapshots arrive, the whole cache is dropped, so a cached answer is never older than
the data it was computed from (give or take the check interval)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from crypto_etl.errors import first_line
from crypto_etl.storage import queries

log = logging.getLogger(__name__)


class ResponseCache:
    """A small LRU of response bodies, cleared whenever the data version changes.

    With `check_seconds` = 0 every request reads the version first. With `check_seconds` > 0 a
    background thread reads it that often and requests use the last one read: a cache hit then
    touches no database at all, and answers lag a new run by about that long."""

    def __init__(
        self,
        max_entries: int = 512,
        check_seconds: float = 0.0,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._checking = threading.Lock()
        self._rendering: dict[Hashable, threading.Lock] = {}
        self._bodies: OrderedDict[Hashable, bytes] = OrderedDict()
        self._version: tuple[Any, ...] | None = None
        self._stop = threading.Event()
        # How the background check waits between two reads: True means stop (tests step it).
        self._wait = wait or self._stop.wait
        self._refresher: threading.Thread | None = None

    def start(self, engine: Engine) -> None:
        """Start the background version check (only when check_seconds > 0)."""
        if self.check_seconds > 0:
            self._refresher = threading.Thread(
                target=self._refresh_forever, args=(engine,), name="cache-version", daemon=True
            )
            self._refresher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)

    def _refresh_forever(self, engine: Engine) -> None:
        """Read the data version every check_seconds until stopped. No failure ends the loop: it
        is logged on one line, the last version is kept (requests report a database outage
        themselves) and the next interval tries again."""
        while not self._wait(self.check_seconds) and not self._stop.is_set():
            try:
                with Session(engine) as session:
                    self._read_version(session)
            except SQLAlchemyError as exc:
                log.warning("cache: cannot read the data version: %s", first_line(exc))
            except Exception as exc:  # anything else too: a dead refresher would serve stale data
                log.error(
                    "cache: checking the data version failed: %s: %s; retrying in %gs",
                    type(exc).__name__,
                    first_line(exc),
                    self.check_seconds,
                )

    def _read_version(self, session: Session) -> tuple[Any, ...]:
        version = queries.data_version(session)
        with self._lock:
            if version != self._version:
                self._bodies.clear()
                self._version = version
        return version

    @property
    def known_version(self) -> tuple[Any, ...] | None:
        """The data version last read (None before the first read); no database access."""
        return self._version

    def version(self, session: Session) -> tuple[Any, ...]:
        if self.check_seconds > 0 and self._version is not None:
            return self._version
        with self._checking:  # the first read, or every read when check_seconds is 0
            if self.check_seconds > 0 and self._version is not None:
                return self._version
            return self._read_version(session)

    def _cached(self, key: Hashable) -> bytes | None:
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
            return body

    def get_or_render(
        self, session: Session, key: Hashable, render: Callable[[], bytes]
    ) -> tuple[bytes, bool]:
        """The body cached under `key` for the current data, or a fresh one from `render`
        (one thread renders a key at a time; the others wait for it); the flag says whether it
        came from the cache."""
        version = self.version(session)
        body = self._cached(key)
        if body is not None:
            return body, True
        with self._lock:
            rendering = self._rendering.setdefault(key, threading.Lock())
        with rendering:
            body = self._cached(key)
            if body is not None:
                return body, True
            try:
                body = render()
            finally:
                with self._lock:
                    self._rendering.pop(key, None)
            with self._lock:
                if self._version == version:
                    self._bodies[key] = body
                    while len(self._bodies) > self.max_entries:
                        self._bodies.popitem(last=False)
        return body, False
