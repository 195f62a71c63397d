"""Synthesised snapshot histories around the real CoinGecko answers in tests/data, for counting
what the anomaly rules flag on real data.

Each coin of a recorded /coins/markets answer gets a day of 5-minute snapshots ending with its
recorded row: the price path repeats the real 5-minute returns of market_chart_days1.json, scaled
so that the day's range matches the coin's own recorded high_24h/low_24h range (a stablecoin moves
little, a small cap a lot); the volume path repeats the real volume curve, ending at the coin's
recorded volume; the market cap is price × circulating supply until the recorded row, which comes
as CoinGecko served it.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

from crypto_etl.alerts.anomalies import Point

DATA = Path(__file__).resolve().parent / "data"
STEP = timedelta(minutes=5)


def _chart() -> tuple[list[float], list[float]]:
    chart = json.loads((DATA / "market_chart_days1.json").read_text())
    prices = [value for _, value in chart["prices"]]
    volumes = [value for _, value in chart["total_volumes"]]
    return prices, volumes


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def synthesised_history(row: dict) -> list[Point]:
    """A day of 5-minute points ending with `row` (one recorded /coins/markets row)."""
    prices, volumes = _chart()
    returns = [math.log(b / a) for a, b in pairwise(prices)]
    chart_range = (max(prices) - min(prices)) / prices[-1]
    price = row["current_price"]
    high, low = row.get("high_24h"), row.get("low_24h")
    coin_range = (high - low) / price if high and low and price else chart_range
    scale = coin_range / chart_range
    supply = row.get("circulating_supply") or None
    end = _when(row["last_updated"])
    n = len(prices)
    path = [price]
    for move in reversed(returns):
        path.append(path[-1] / math.exp(move * scale))
    path.reverse()
    volume = row.get("total_volume")
    points = []
    for i in range(n - 1):
        vol = volumes[i] / volumes[-1] * volume if volume else None
        cap = path[i] * supply if supply else row.get("market_cap")
        points.append(Point(end - (n - 1 - i) * STEP, path[i], cap, vol, supply))
    points.append(Point(end, price, row.get("market_cap"), volume, supply))
    return points


def recorded_rows(name: str) -> list[dict]:
    return [row for row in json.loads((DATA / name).read_text()) if row.get("current_price")]
