"""Small builders shared by the tests: market rows from the real fixtures, shifted in time."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
TOP50_FETCHED_AT = datetime(2025, 9, 9, 15, 5, tzinfo=UTC)
ROWS250_FETCHED_AT = datetime(2023, 7, 28, 20, 10, tzinfo=UTC)


def market_rows(name: str = "coins_markets_usd_top50.json") -> list[dict]:
    return json.loads((DATA / name).read_text())


def shifted(rows: list[dict], minutes: int, price_factor: float = 1.0) -> list[dict]:
    """A later snapshot of the same coins: last_updated moved on, prices scaled."""
    out = copy.deepcopy(rows)
    for row in out:
        when = datetime.fromisoformat(row["last_updated"].replace("Z", "+00:00"))
        row["last_updated"] = (when + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        if isinstance(row.get("current_price"), int | float):
            row["current_price"] = row["current_price"] * price_factor
    return out
