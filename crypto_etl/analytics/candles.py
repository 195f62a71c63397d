"""Candles: built from price points on a grid of any interval, or one 24h candle per market
snapshot, and the interval that makes a readable candle chart."""

from __future__ import annotations

import pandas as pd

from crypto_etl.analytics.series import CANDLE_COLUMNS, INTERVAL_RULES, empty_candles, interval_rule


def candles_from_points(points: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Candles built from price points: each covers (ts - interval, ts], ts being its close time,
    so they line up with CoinGecko's candles. Buckets with no point are left out."""
    if points.empty:
        return empty_candles()
    prices = points.set_index("ts").sort_index()["price"]
    candles = prices.resample(interval_rule(interval), label="right", closed="right").ohlc()
    return candles.dropna(subset=["open"]).reset_index()


def candles_from_snapshots(snapshots: pd.DataFrame) -> pd.DataFrame:
    """One 24h candle per market snapshot from CoinGecko's rolling 24h figures: open is
    current_price - price_change_24h, high is high_24h, low is low_24h, close is current_price, and
    ts is the snapshot's last_updated. Snapshots lacking any of these are left out."""
    if snapshots.empty:
        return empty_candles()
    candles = pd.DataFrame(
        {
            "ts": pd.to_datetime(snapshots["last_updated"], utc=True),
            "open": snapshots["current_price"] - snapshots["price_change_24h"],
            "high": snapshots["high_24h"],
            "low": snapshots["low_24h"],
            "close": snapshots["current_price"],
        }
    )
    candles = candles.dropna().astype({name: "float64" for name in CANDLE_COLUMNS[1:]})
    return candles.sort_values("ts", kind="stable").reset_index(drop=True)


def candle_interval(timestamps: pd.Series, max_candles: int, min_points: int = 4) -> str:
    """The finest interval whose candles are at most `max_candles` and are made of at least
    `min_points` price points each (the median candle), else the coarsest: a candle of one point
    has no body or wick to show."""
    ones = pd.Series(1, index=pd.DatetimeIndex(timestamps))
    for name, rule in INTERVAL_RULES.items():
        counts = ones.resample(rule, label="right", closed="right").count()
        counts = counts[counts > 0]
        if len(counts) <= max_candles and counts.median() >= min_points:
            return name
    return list(INTERVAL_RULES)[-1]
