"""Chart data from market rows: pure pandas functions shared by the API, the CLI charts and the
dashboard. They take and return DataFrames with tz-aware UTC timestamps and never touch a database.

Conventions: a points frame has the columns ts, price, market_cap, total_volume (one row per
observation, any order); a candles frame has ts, open, high, low, close, where ts is the candle's
close time (as CoinGecko's /ohlc gives it).
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
OTHERS = "others"


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


def market_share(market_caps: pd.Series, top_n: int) -> pd.DataFrame:
    """Dominance: the `top_n` largest market caps and one `others` row with the rest, each with its
    share of the total (fractions summing to 1). `market_caps` is indexed by coin id; missing caps
    are left out. Columns: coin_id, market_cap, share."""
    caps = market_caps.dropna()
    caps = caps[caps > 0].sort_values(ascending=False, kind="stable")
    total = float(caps.sum())
    top = caps.iloc[:top_n]
    frame = pd.DataFrame({"coin_id": top.index.astype(str), "market_cap": top.to_numpy(float)})
    rest = caps.iloc[top_n:]
    if not rest.empty:
        others = pd.DataFrame({"coin_id": [OTHERS], "market_cap": [float(rest.sum())]})
        frame = pd.concat([frame, others], ignore_index=True)
    frame["share"] = frame["market_cap"] / total if total > 0 else np.nan
    return frame


def correlation_matrix(wide_prices: pd.DataFrame, min_periods: int = 3) -> pd.DataFrame:
    """Pearson correlation of the step returns of each column of a wide price frame (index ts, one
    column per coin). Pairs with fewer than `min_periods` common returns are NaN."""
    return returns(wide_prices).corr(min_periods=min_periods)


def wide_prices(points_by_coin: dict[str, pd.DataFrame], interval: str) -> pd.DataFrame:
    """One price column per coin on a common grid (index ts), from each coin's points."""
    columns = {
        coin: resample_points(points, interval).set_index("ts")["price"]
        for coin, points in points_by_coin.items()
    }
    if not columns:
        return pd.DataFrame()
    return pd.DataFrame(columns).sort_index()


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


def latest_per_coin(snapshots: pd.DataFrame, coin_column: str = "id") -> pd.DataFrame:
    """The newest row of each coin (by last_updated, then snapshot_at), largest market cap first:
    what a per-coin chart shows when a table holds many snapshots of the same coins."""
    if snapshots.empty:
        return snapshots.reset_index(drop=True)
    order = [c for c in ("last_updated", "snapshot_at") if c in snapshots]
    newest = snapshots.sort_values(order, kind="stable").groupby(coin_column, sort=False).tail(1)
    return newest.sort_values(
        ["market_cap", coin_column], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)


def top_movers(
    frame: pd.DataFrame, n: int, column: str = "price_change_percentage_24h"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `n` rows with the largest `column` (gainers, largest first) and the `n` with the
    smallest (losers, smallest first); a row is never in both, and rows without a value are left
    out."""
    known = frame.dropna(subset=[column])
    gainers = known.nlargest(n, column, keep="first")
    losers = known.drop(index=gainers.index).nsmallest(n, column, keep="first")
    return gainers.reset_index(drop=True), losers.reset_index(drop=True)


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


def returns_correlation(
    points_by_coin: dict[str, pd.DataFrame],
    intervals: Iterable[str] = ("1d", "4h", "1h", "30m", "5m"),
    target_observations: int = 20,
    min_observations: int = 4,
) -> tuple[str, pd.DataFrame, int] | None:
    """The correlation of returns over the coarsest interval (from `intervals`, coarse to fine)
    that puts at least `target_observations` prices on the grid, else the finest; coins with fewer
    than `min_observations` prices are left out. Returns (interval, matrix, grid points), or None
    when fewer than two coins have enough prices or no pair shares enough returns."""
    chosen = None
    for interval in intervals:
        wide = wide_prices(points_by_coin, interval)
        if wide.empty:
            return None
        wide = wide.loc[:, wide.count() >= min_observations]
        chosen = (interval, wide)
        if len(wide) >= target_observations and wide.shape[1] >= 2:
            break
    interval, wide = chosen
    if wide.shape[1] < 2:
        return None
    matrix = correlation_matrix(wide, min_periods=min_observations - 1)
    off_diagonal = matrix.to_numpy()[~np.eye(len(matrix), dtype=bool)]
    if np.isnan(off_diagonal).all():
        return None
    return interval, matrix, len(wide)
