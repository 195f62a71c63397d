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


# Bucket lengths in milliseconds of the history intervals: each divides a day, so buckets start at
# whole multiples from the epoch, as pandas' resample (origin: the first day's midnight) puts them.
INTERVAL_MS = {"5m": 300_000, "30m": 1_800_000, "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}


def merge_point_matrix(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """combine_points on arrays: rows (source, epoch seconds, price, market cap, volume) with
    source 0 for market snapshots and 1 for backfilled points, ordered by time, become epoch
    milliseconds (int64) and a float matrix (price, market cap, volume): points without a price
    dropped and, when both sources have points, one point per millisecond, the snapshot's."""
    sources = matrix[:, 0]
    both = bool((sources == 0).any() and (sources != 0).any())
    ms = np.round(matrix[:, 1] * 1000).astype("int64")
    values = matrix[:, 2:5]
    priced = ~np.isnan(values[:, 0])
    ms, values, sources = ms[priced], values[priced], sources[priced]
    if both:
        order = np.lexsort((sources, ms))  # by time, snapshots first, else as read
        ms, values = ms[order], values[order]
        first = np.ones(len(ms), dtype=bool)
        first[1:] = ms[1:] != ms[:-1]
        ms, values = ms[first], values[first]
    return ms, np.ascontiguousarray(values)


def resample_arrays(
    ms: np.ndarray, values: np.ndarray, interval: str
) -> tuple[np.ndarray, np.ndarray]:
    """resample_points on arrays (ascending times): per bucket, the last value of each column
    that has one, the bucket labelled by its start; buckets without a point left out."""
    if interval == "raw" or len(ms) == 0:
        return ms, values
    try:
        step = INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(
            f"unknown interval {interval!r}; expected one of {', '.join(INTERVAL_MS)}"
        ) from None
    buckets = ms // step
    last = np.ones(len(buckets), dtype=bool)
    last[:-1] = buckets[1:] != buckets[:-1]
    labels = buckets[last]
    out = np.full((len(labels), values.shape[1]), np.nan)
    for column in range(values.shape[1]):
        known = np.flatnonzero(~np.isnan(values[:, column]))
        if len(known) == 0:
            continue
        known_buckets = buckets[known]
        ends = np.ones(len(known), dtype=bool)
        ends[:-1] = known_buckets[1:] != known_buckets[:-1]
        rows = np.searchsorted(labels, known_buckets[ends])
        out[rows, column] = values[known[ends], column]
    return labels * step, out


def history_feature_arrays(
    ms: np.ndarray, values: np.ndarray, interval: str, ma_windows: Iterable[int]
) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """history_features on arrays: the column names (after ts), the times in epoch milliseconds
    and one float array per column, the same numbers history_features gives."""
    ms, values = resample_arrays(ms, values, interval)
    price = values[:, 0]
    previous = np.empty_like(price)
    previous[:1] = np.nan
    previous[1:] = price[:-1]
    ratio = price / previous
    with np.errstate(divide="ignore", invalid="ignore"):
        log_return = np.log(ratio)
    names = [*POINT_COLUMNS[1:], "simple_return", "log_return"]
    columns = [values[:, i] for i in range(values.shape[1])] + [ratio - 1, log_return]
    prices = pd.Series(price, copy=False)
    for window in ma_windows:
        names.append(f"ma_{window}")
        columns.append(prices.rolling(window=window, min_periods=window).mean().to_numpy())
    return names, ms, columns


def wide_prices(points_by_coin: dict[str, pd.DataFrame], interval: str) -> pd.DataFrame:
    """One price column per coin on a common grid (index ts), from each coin's points."""
    columns = {
        coin: resample_points(points, interval).set_index("ts")["price"]
        for coin, points in points_by_coin.items()
    }
    if not columns:
        return pd.DataFrame()
    return pd.DataFrame(columns).sort_index()


# The hourly rollup (crypto_etl.storage.rollup) holds, per coin, currency and hour, what
# resample_arrays keeps for that hour from the merged points; 1h and 1d answers are made from it.
HOUR_MS = INTERVAL_MS["1h"]
ROLLUP_INTERVALS = ("1h", "1d")


def same_source_ties(matrix: np.ndarray) -> np.ndarray:
    """The epoch milliseconds at which one source has two priced points (timestamps closer than
    a millisecond). Only there does merge_point_matrix's answer for an hour depend on what else
    the range holds, so hours with such a tie are never answered from the rollup."""
    priced = ~np.isnan(matrix[:, 2])
    sources = matrix[priced, 0]
    ms = np.round(matrix[priced, 1] * 1000).astype("int64")
    order = np.lexsort((ms, sources))
    sources, ms = sources[order], ms[order]
    tied = (sources[1:] == sources[:-1]) & (ms[1:] == ms[:-1])
    return np.unique(ms[1:][tied])


def hourly_rollup(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rollup's rows from points as storage.queries.history_matrix gives them (both sources,
    ordered by time): hour starts in epoch milliseconds, the (price, market cap, volume) that
    resample_arrays keeps for each hour from merge_point_matrix's series, and whether the hour
    holds a same-source tie (see same_source_ties)."""
    ms, values = merge_point_matrix(matrix)
    hours, kept = resample_arrays(ms, values, "1h")
    tied_hours = same_source_ties(matrix) // HOUR_MS * HOUR_MS
    return hours, kept, np.isin(hours, tied_hours)


def full_hours(start_us: int, end_us: int) -> tuple[int, int] | None:
    """The hours [first, stop) (epoch milliseconds of hour starts) whose every point lies in
    [start, end] (epoch microseconds), with a millisecond to spare for the rounding of times to
    milliseconds; None when there is none."""
    hour_us = HOUR_MS * 1000
    first = -(-(start_us + 1000) // hour_us)
    stop = end_us // hour_us
    if stop <= first:
        return None
    return first * HOUR_MS, stop * HOUR_MS


def hourly_points(
    edges: np.ndarray, rollup: np.ndarray, first_ms: int, stop_ms: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The hourly series of a range: the rollup's rows (epoch seconds, price, market cap, volume,
    tie flag) for the full hours [first_ms, stop_ms) and, for the partial hours at both ends, the
    raw points `edges` (as history_matrix gives them, a millisecond past the full hours
    included) merged and resampled. resample_arrays gives the same answer on it for 1h and 1d as
    on all the merged points of the range. None when a same-source tie makes the rollup unusable
    (the caller takes the raw points)."""
    if (rollup[:, 4] != 0).any() or len(same_source_ties(edges)):
        return None
    ms, values = merge_point_matrix(edges)
    outside = (ms < first_ms) | (ms >= stop_ms)
    edge_hours, edge_values = resample_arrays(ms[outside], values[outside], "1h")
    rolled_ms = np.round(rollup[:, 0] * 1000).astype("int64")
    all_ms = np.concatenate([edge_hours, rolled_ms])
    all_values = np.concatenate([edge_values, rollup[:, 1:4]])
    order = np.argsort(all_ms, kind="stable")
    return all_ms[order], np.ascontiguousarray(all_values[order])
