"""Correlation of returns: the one rule that the command line's heatmap, the API's
/market/correlation and the dashboard's page all use, so they agree on the same data.

The rule: each coin's prices go on a common grid of one interval (the last price in each bucket)
and the Pearson correlation of their step returns is taken. With interval "auto" the grid is the
coarsest of 1d, 4h, 1h, 30m, 5m that puts at least TARGET_OBSERVATIONS prices in the window (else
the finest). A coin needs MIN_PRICES prices on the grid, else it is left out; a pair of coins
needs MIN_PRICES - 1 common returns, else its correlation is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crypto_etl.analytics.series import returns, wide_prices

AUTO = "auto"
AUTO_INTERVALS = ("1d", "4h", "1h", "30m", "5m")  # coarse to fine
TARGET_OBSERVATIONS = 20
MIN_PRICES = 4


@dataclass(frozen=True)
class Correlation:
    """The correlation of returns of `coins` (in the order asked for) at `interval`."""

    interval: str
    coins: list[str]
    matrix: pd.DataFrame  # coins x coins; NaN where a pair shares too few returns
    observations: int  # grid points in the window

    @property
    def usable(self) -> bool:
        """At least two coins, and at least one pair with a correlation."""
        if len(self.coins) < 2:
            return False
        off_diagonal = self.matrix.to_numpy()[~np.eye(len(self.coins), dtype=bool)]
        return not np.isnan(off_diagonal).all()


def correlation_matrix(
    wide_prices: pd.DataFrame, min_periods: int = MIN_PRICES - 1
) -> pd.DataFrame:
    """Pearson correlation of the step returns of each column of a wide price frame (index ts, one
    column per coin). Pairs with fewer than `min_periods` common returns are NaN."""
    return returns(wide_prices).corr(min_periods=min_periods)


def returns_correlation(
    points_by_coin: dict[str, pd.DataFrame],
    coins: Sequence[str] | None = None,
    interval: str = AUTO,
) -> Correlation:
    """The correlation of returns of `coins` (default: every coin in `points_by_coin`) by the rule
    in this module's docstring; `interval` is "auto" or one of the grid intervals (1h, 1d, ...)."""
    wanted = list(points_by_coin) if coins is None else list(coins)
    points = {coin: points_by_coin[coin] for coin in wanted if coin in points_by_coin}
    candidates = AUTO_INTERVALS if interval == AUTO else (interval,)
    for step in candidates:
        wide = wide_prices(points, step)
        if not wide.empty:
            wide = wide.loc[:, wide.count() >= MIN_PRICES]
        if len(wide) >= TARGET_OBSERVATIONS and wide.shape[1] >= 2:
            break
    kept = [coin for coin in wanted if coin in wide.columns]
    matrix = correlation_matrix(wide[kept]) if kept else pd.DataFrame()
    return Correlation(step, kept, matrix, len(wide))
