"""Fakes shared by the tests of what waits: a virtual clock that only moves when slept on."""

from __future__ import annotations


class VirtualTime:
    """A clock (`clock()`, seconds) and a `sleep` that records each wait and moves the clock on by
    it; nothing else moves it unless the test sets `now`."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
