"""Anomaly rules over one coin's series of market values: pure functions, no database.

- price_move: the log return of a new point, per square root of an hour elapsed (so that a move
  over a long gap is judged like the many small moves it stands for), compared with the coin's own
  recent returns by a robust z-score: 0.6745 · (r − median) / MAD, where MAD is the median absolute
  deviation of the stored returns. The median and MAD are used because the history they describe
  may hold the very outliers this rule hunts (a mean and standard deviation would be dragged by
  them; the median and MAD ignore up to half the points), and because they assume no
  distribution: crypto returns are far from normal, and nothing has to be fitted. 0.6745 scales
  the MAD to a standard deviation for normal data, so the threshold reads like a z-score.
- volume_jump: the same robust z-score on the log of the 24 h volume against its recent values.
- market_cap: the reported market cap against price × circulating supply, beyond a relative
  tolerance (a zero market cap with a known supply is 100 % off).

A coin with fewer than `min_history` stored values is not judged (it would flag its own first
moves), and the MAD is floored (PRICE_MAD_FLOOR, VOLUME_MAD_FLOOR) so that a stablecoin, whose
returns are nearly all zero, is not flagged for an ordinary 0.3 % wobble. A flagged point is left
out of the baseline and is not the reference for the next return, so one bad value gives one flag,
not two (the jump away and the jump back); after LEVEL_SHIFT_POINTS flagged points in a row the
new level is accepted as real (a redenomination, a lasting crash).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

MAD_TO_SIGMA = 0.6745
PRICE_MAD_FLOOR = 0.002  # log return per √hour: about 0.06 % over five minutes
VOLUME_MAD_FLOOR = 0.1  # log volume: about 10 %
LEVEL_SHIFT_POINTS = 3
MIN_GAP_HOURS = 1 / 60  # returns over less than a minute count as a minute's
RULES = ("price_move", "volume_jump", "market_cap")


@dataclass(slots=True)
class Point:
    """One observation of a coin: a snapshot (with supply) or a history point (without). Not
    frozen: a check after a large load makes a million, and a frozen one costs five times as
    much to make; the rules never change one."""

    ts: datetime
    price: float | None
    market_cap: float | None = None
    volume: float | None = None
    supply: float | None = None


@dataclass(frozen=True)
class RuleParams:
    price_move_z: float = 12.0
    volume_jump_z: float = 12.0
    market_cap_tolerance: float = 0.05
    min_history: int = 24
    window: int = 288


@dataclass(frozen=True)
class Flag:
    rule: str
    observed_at: datetime
    value: float
    expected: float
    score: float


@dataclass(frozen=True)
class Verdict:
    """The flags raised on a coin's new points, and which rules judged at least one of them."""

    flags: list[Flag]
    judged: frozenset[str]


def robust_z(value: float, baseline: Sequence[float], floor: float) -> tuple[float, float]:
    """(robust z-score of `value` against `baseline`, the baseline's median)."""
    values = np.asarray(baseline, dtype=float)
    median = float(np.median(values))
    mad = max(float(np.median(np.abs(values - median))), floor, 1e-12)
    return MAD_TO_SIGMA * (value - median) / mad, median


class Baseline:
    """The last `size` accepted values of a rule, in arrival order and sorted, so that each new
    point's robust z-score comes from order statistics: the median from the middle, the MAD as
    the middle of the deviations, which are two sorted runs (below and above the median) whose
    k-th smallest is found by bisection. The same numbers as robust_z on the same values, to the
    last bit, in a few microseconds where sorting the window took tens; `outlier` skips the MAD
    for the values the floor alone shows to be within the limit."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._arrived: deque[float] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._sorted)

    def append(self, value: float) -> None:
        if len(self._arrived) == self._size:
            del self._sorted[bisect_left(self._sorted, self._arrived.popleft())]
        self._arrived.append(value)
        insort(self._sorted, value)

    def median(self) -> float:
        ordered = self._sorted
        half = len(ordered) // 2
        return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2

    def z(self, value: float, floor: float) -> tuple[float, float]:
        """robust_z(value, <the values kept>, floor)."""
        median = self.median()
        half = len(self._sorted) // 2
        if len(self._sorted) % 2:
            mad = self._deviation(median, half)
        else:
            mad = (self._deviation(median, half - 1) + self._deviation(median, half)) / 2
        mad = max(mad, floor, 1e-12)
        return MAD_TO_SIGMA * (value - median) / mad, median

    def outlier(self, value: float, floor: float, limit: float) -> tuple[float, float] | None:
        """z(value, floor) when its |z| exceeds `limit`, else None. The MAD is worked out only
        when the floor cannot settle it: the MAD used is never below the floor, so a value whose
        z-score against the floor itself is within the limit is within it (most values are)."""
        median = self.median()
        if abs(MAD_TO_SIGMA * (value - median) / max(floor, 1e-12)) <= limit:
            return None
        z, median = self.z(value, floor)
        return (z, median) if abs(z) > limit else None

    def _deviation(self, median: float, k: int) -> float:
        """The k-th smallest (from 0) of |value - median| over the values kept."""
        ordered = self._sorted
        # Two runs of deviations, each from the nearest value: below the median (m) the i-th is
        # abs(ordered[split - 1 - i] - m), at or above it the j-th is abs(ordered[split + j] - m).
        split = bisect_left(ordered, median)
        # Of the k + 1 smallest, take i from below and k + 1 - i from above: the largest i whose
        # last pick below is not larger than the first one left above.
        lo, hi = max(0, k + 1 - (len(ordered) - split)), min(k + 1, split)
        while lo < hi:
            i = (lo + hi + 1) // 2
            if abs(ordered[split - i] - median) <= abs(ordered[split + k + 1 - i] - median):
                lo = i
            else:
                hi = i - 1
        below = abs(ordered[split - lo] - median) if lo else -math.inf
        above = abs(ordered[split + k - lo] - median) if k + 1 - lo else -math.inf
        return max(below, above)


def _hours(later: datetime, earlier: datetime) -> float:
    return max((later - earlier).total_seconds() / 3600, MIN_GAP_HOURS)


def scan(
    points: Sequence[Point],
    new_from: int,
    params: RuleParams,
    flagged_before: dict[str, set[datetime]] | None = None,
) -> Verdict:
    """Judge points[new_from:] against the points before them (and each other, in time order).
    `points` are sorted by time; `flagged_before` holds, per rule, the times of stored points
    flagged earlier, which stay out of the baselines."""
    flagged_before = flagged_before or {}
    flags: list[Flag] = []
    judged: set[str] = set()
    flags += _price_moves(points, new_from, params, flagged_before.get("price_move", set()), judged)
    flags += _volume_jumps(
        points, new_from, params, flagged_before.get("volume_jump", set()), judged
    )
    flags += _market_caps(points[new_from:], params, judged)
    flags.sort(key=lambda flag: (flag.observed_at, flag.rule))
    return Verdict(flags, frozenset(judged))


def _price_moves(
    points: Sequence[Point],
    new_from: int,
    params: RuleParams,
    flagged_before: set[datetime],
    judged: set[str],
) -> list[Flag]:
    flags: list[Flag] = []
    returns = Baseline(params.window)
    reference: Point | None = None
    rejected_in_a_row = 0
    for index, point in enumerate(points):
        if point.price is None or not point.price > 0 or not math.isfinite(point.price):
            continue
        if reference is None:
            reference = point
            continue
        hours = _hours(point.ts, reference.ts)
        move = math.log(point.price / reference.price) / math.sqrt(hours)
        rejected = False
        if index >= new_from:
            if len(returns) >= params.min_history:
                judged.add("price_move")
                outlier = returns.outlier(move, PRICE_MAD_FLOOR, params.price_move_z)
                if outlier is not None:
                    z, median = outlier
                    expected = reference.price * math.exp(median * math.sqrt(hours))
                    flags.append(Flag("price_move", point.ts, point.price, expected, z))
                    rejected = True
        else:
            rejected = point.ts in flagged_before
        if rejected:
            rejected_in_a_row += 1
            if rejected_in_a_row >= LEVEL_SHIFT_POINTS:
                reference, rejected_in_a_row = point, 0
            continue
        rejected_in_a_row = 0
        returns.append(move)
        reference = point
    return flags


def _volume_jumps(
    points: Sequence[Point],
    new_from: int,
    params: RuleParams,
    flagged_before: set[datetime],
    judged: set[str],
) -> list[Flag]:
    flags: list[Flag] = []
    levels = Baseline(params.window)
    rejected_in_a_row = 0
    for index, point in enumerate(points):
        if point.volume is None or not point.volume > 0 or not math.isfinite(point.volume):
            continue
        level = math.log(point.volume)
        rejected = False
        if index >= new_from:
            if len(levels) >= params.min_history:
                judged.add("volume_jump")
                outlier = levels.outlier(level, VOLUME_MAD_FLOOR, params.volume_jump_z)
                if outlier is not None:
                    z, median = outlier
                    flags.append(Flag("volume_jump", point.ts, point.volume, math.exp(median), z))
                    rejected = True
        else:
            rejected = point.ts in flagged_before
        if rejected:
            rejected_in_a_row += 1
            if rejected_in_a_row < LEVEL_SHIFT_POINTS:
                continue
        rejected_in_a_row = 0
        levels.append(level)
    return flags


def _market_caps(points: Sequence[Point], params: RuleParams, judged: set[str]) -> list[Flag]:
    flags: list[Flag] = []
    for point in points:
        price, supply, cap = point.price, point.supply, point.market_cap
        if price is None or supply is None or cap is None or not (price > 0 and supply > 0):
            continue
        judged.add("market_cap")
        implied = price * supply
        deviation = abs(cap - implied) / implied
        if deviation > params.market_cap_tolerance:
            flags.append(Flag("market_cap", point.ts, cap, implied, deviation))
    return flags
