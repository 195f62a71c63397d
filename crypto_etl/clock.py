"""The current time, always timezone-aware UTC. Code that depends on "now" takes it as a parameter
where tests need a fixed moment; tests that run whole commands pin it from outside the product
(tests/etl_child.py)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
