"""Rendered JSON bodies kept per process and keyed on the data version (queries.data_version):
when a pipeline run starts, changes status or loads rows, or newer snapshots arrive, the whole cache
is dropped, so a cached answer is never older than the data it was computed from."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy.orm import Session

import queries


class ResponseCache:
    """A small LRU of response bodies, cleared whenever the data version changes.

    `check_seconds` > 0 reuses a version read less than that long ago instead of asking the
    database on every request (answers may then lag a new run by that long)."""

    def __init__(self, max_entries: int = 512, check_seconds: float = 0.0) -> None:
        self.max_entries = max_entries
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._bodies: OrderedDict[Hashable, bytes] = OrderedDict()
        self._version: tuple[Any, ...] | None = None
        self._checked_at = float("-inf")

    def version(self, session: Session) -> tuple[Any, ...]:
        now = time.monotonic()
        if self._version is not None and now - self._checked_at < self.check_seconds:
            return self._version
        version = queries.data_version(session)
        with self._lock:
            if version != self._version:
                self._bodies.clear()
                self._version = version
            self._checked_at = now
        return version

    def get_or_render(
        self, session: Session, key: Hashable, render: Callable[[], bytes]
    ) -> tuple[bytes, bool]:
        """The body cached under `key` for the current data, or a fresh one from `render`;
        the flag says whether it came from the cache."""
        version = self.version(session)
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
                return body, True
        body = render()
        with self._lock:
            if self._version == version:
                self._bodies[key] = body
                while len(self._bodies) > self.max_entries:
                    self._bodies.popitem(last=False)
        return body, False
