"""The market at one moment: each coin's newest row, dominance (market share), the biggest movers
and the market's totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

OTHERS = "others"


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


@dataclass(frozen=True)
class MarketTotals:
    """The market over each coin's newest snapshot."""

    coins: int
    total_market_cap: float
    total_volume: float
    as_of: datetime | None  # the newest last_updated among the coins
    dominance: pd.DataFrame  # market_share: coin_id, market_cap, share


def market_totals(latest: pd.DataFrame, top_n: int) -> MarketTotals:
    """Totals of one row per coin (columns coin_id, market_cap, total_volume, last_updated; a
    missing cap or volume counts as 0) and the dominance of the `top_n` largest."""
    caps = pd.to_numeric(latest["market_cap"], errors="coerce").astype("float64")
    volumes = pd.to_numeric(latest["total_volume"], errors="coerce").astype("float64")
    newest = latest["last_updated"].max() if len(latest) else None
    return MarketTotals(
        coins=len(latest),
        total_market_cap=float(np.nansum(caps.to_numpy())),
        total_volume=float(np.nansum(volumes.to_numpy())),
        as_of=None if newest is None or pd.isna(newest) else pd.Timestamp(newest).to_pydatetime(),
        dominance=market_share(pd.Series(caps.to_numpy(), index=latest["coin_id"]), top_n),
    )
