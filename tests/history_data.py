"""History a fake CoinGecko can serve, built from the real responses in tests/data.

The real files hold one day of ~5-minute chart points and one to 30 days of candles. For longer
spans their values are repeated on a time grid that mirrors CoinGecko's: chart points every five
minutes on the clock (the fake thins them to hourly or daily by span, as CoinGecko does), candles
closing every 30 minutes, 4 hours and 4 days. Each coin gets the values scaled by its own factor.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
NOW = datetime(2025, 10, 28, 8, 10, tzinfo=UTC)  # just after the OHLC file's last candle
MINUTE_MS = 60_000
INTERVAL_MS = {"30m": 30 * MINUTE_MS, "4h": 240 * MINUTE_MS, "4d": 4 * 1440 * MINUTE_MS}
# Which file series each interval repeats: 30-minute candles from days=1, 4-hour from the longest.
SOURCE = {"30m": ("1d",), "4h": ("30d", "7d")}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _grid(start: datetime, end: datetime, step_ms: int) -> range:
    first = -(-_ms(start) // step_ms) * step_ms  # round up onto the grid
    return range(first, _ms(end) + 1, step_ms)


def chart_series(start: datetime, end: datetime, scale: float = 1.0) -> dict[str, list]:
    """Five-minute chart points from `start` to `end`, values from market_chart_days1.json."""
    real = json.loads((DATA / "market_chart_days1.json").read_text())
    out: dict[str, list] = {}
    for key in ("prices", "market_caps", "total_volumes"):
        values = [v for _, v in real[key]]
        out[key] = [
            [ms, values[i % len(values)] * scale]
            for i, ms in enumerate(_grid(start, end, 5 * MINUTE_MS))
        ]
    return out


def candle_series(
    start: datetime, end: datetime, coin: str = "bitcoin", scale: float = 1.0
) -> dict[str, list]:
    """Candles by interval closing from `start` to `end`, values from ohlc_btc_eth_days1_7_30.json
    (`coin` is bitcoin or ethereum there); 4-day candles combine 24 four-hour ones."""
    real = json.loads((DATA / "ohlc_btc_eth_days1_7_30.json").read_text())[coin]

    def values(interval: str) -> list[list[float]]:
        key = next(k for k in SOURCE[interval] if k in real)
        return [[v * scale for v in candle[1:]] for candle in real[key]]

    four_hour = values("4h")
    four_day = []
    for i in range(0, len(four_hour) - 23, 24):
        group = four_hour[i : i + 24]
        opens, highs, lows, closes = zip(*group, strict=True)
        four_day.append([opens[0], max(highs), min(lows), closes[-1]])
    if not four_day:  # fewer than 24 four-hour candles in the file: one candle of them all
        opens, highs, lows, closes = zip(*four_hour, strict=True)
        four_day = [[opens[0], max(highs), min(lows), closes[-1]]]
    sources = {"30m": values("30m"), "4h": four_hour, "4d": four_day}
    return {
        interval: [
            [ms, *sources[interval][i % len(sources[interval])]]
            for i, ms in enumerate(_grid(start, end, step))
        ]
        for interval, step in INTERVAL_MS.items()
    }


def serve_history(fake, coins: dict[str, float], days: int = 100, now: datetime = NOW) -> None:
    """Let the fake serve `days` of history up to `now` for each coin (id -> value scale)."""
    start = now - timedelta(days=days)
    fake.now = now
    for number, (coin, scale) in enumerate(coins.items()):
        source = "bitcoin" if number % 2 == 0 else "ethereum"
        fake.charts[coin] = chart_series(start, now, scale)
        fake.ohlc[coin] = candle_series(start, now, source, scale)
