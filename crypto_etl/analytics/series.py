"""Price series: merging, resampling to a grid, returns and moving averages.

Conventions: a points frame has the columns ts, price, market_cap, total_volume (one row per
observation, any order); a candles frame has ts, open, high, low, close, where ts is the candle's
close time (as CoinGecko's /ohlc gives it). Timestamps are tz-aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import numpy as np
import pandas as pd

POINT_COLUMNS = ("ts", "price", "market_cap", "total_volume")
CANDLE_COLUMNS = ("ts", "open", "high", "low", "close")
# Resampling rules by the interval names the API and the CLI accept.
INTERVAL_RULES = {"5m": "5min", "30m": "30min", "1h": "1h", "4h": "4h", "1d": "1D", "4d": "4D"}


def interval_rule(interval: str) -> str:
    """The pandas offset alias for an interval name such as 5m, 1h or 1d."""
    try:
        return INTERVAL_RULES[interval]
    except KeyError:
        raise ValueError(
            f"unknown interval {interval!r}; expected one of {', '.join(INTERVAL_RULES)}"
        ) from None


def auto_interval(span: timedelta) -> str:
    """The interval a chart of `span` wants, as CoinGecko picks it for /market_chart: every point
    up to a day, hourly up to 90 days, daily beyond. Keeps answers to a few thousand points."""
    if span <= timedelta(days=1):
        return "raw"
    if span <= timedelta(days=90):
        return "1h"
    return "1d"


def empty_points() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.Series([], dtype="datetime64[us, UTC]"),
            **{name: pd.Series([], dtype="float64") for name in POINT_COLUMNS[1:]},
        }
    )


def empty_candles() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.Series([], dtype="datetime64[us, UTC]"),
            **{name: pd.Series([], dtype="float64") for name in CANDLE_COLUMNS[1:]},
        }
    )


def combine_points(*frames: pd.DataFrame) -> pd.DataFrame:
    """One ascending points series from several sources; on equal timestamps the earlier frame
    wins (pass market snapshots first, backfilled price_history second)."""
    parts = [f.loc[:, list(POINT_COLUMNS)] for f in frames if not f.empty]
    if not parts:
        return empty_points()
    points = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].copy()
    points["ts"] = pd.to_datetime(points["ts"], utc=True)
    points = points.dropna(subset=["price"])
    if len(parts) > 1:  # one source has one point per timestamp already
        points = points.drop_duplicates(subset="ts", keep="first")
    if not points["ts"].is_monotonic_increasing:
        points = points.sort_values("ts", kind="stable")
    return points.reset_index(drop=True)


def resample_points(points: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Points on a regular grid: the last observation in each bucket, labelled by the bucket's start
    (market cap and volume are CoinGecko's rolling 24h figures, so the last value is the right one).
    `interval` "raw" returns the points unchanged; empty buckets are left out."""
    if interval == "raw" or points.empty:
        return points.reset_index(drop=True)
    grid = (
        points.set_index("ts")
        .sort_index()
        .resample(interval_rule(interval), label="left", closed="left")
        .last()
    )
    return grid.dropna(subset=["price"]).reset_index()


def returns(prices: pd.Series | pd.DataFrame, log: bool = False) -> pd.Series | pd.DataFrame:
    """Step-to-step returns as fractions (0.01 is +1 %); the first is NaN and gaps stay gaps."""
    if log:
        return np.log(prices / prices.shift(1))
    return prices.pct_change(fill_method=None)


def moving_averages(prices: pd.Series, windows: Iterable[int]) -> pd.DataFrame:
    """Simple moving averages over `window` points each, one column `ma_<window>`; NaN until a
    window is full."""
    return pd.DataFrame(
        {f"ma_{w}": prices.rolling(window=w, min_periods=w).mean() for w in windows},
        index=prices.index,
    )


def history_features(
    points: pd.DataFrame, interval: str, ma_windows: Iterable[int]
) -> pd.DataFrame:
    """The history a chart needs: points resampled to `interval`, with simple and log returns and
    moving averages of the price."""
    frame = resample_points(points, interval)
    price = frame["price"]
    frame = frame.assign(simple_return=returns(price), log_return=returns(price, log=True))
    return pd.concat([frame, moving_averages(price, ma_windows)], axis=1)


def wide_prices(points_by_coin: dict[str, pd.DataFrame], interval: str) -> pd.DataFrame:
    """One price column per coin on a common grid (index ts), from each coin's points."""
    columns = {
        coin: resample_points(points, interval).set_index("ts")["price"]
        for coin, points in points_by_coin.items()
    }
    if not columns:
        return pd.DataFrame()
    return pd.DataFrame(columns).sort_index()
