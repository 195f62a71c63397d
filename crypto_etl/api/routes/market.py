"""/api/v1/market: the market's totals and dominance, and the correlation of returns."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, Query, Response

from crypto_etl.analytics.correlation import returns_correlation
from crypto_etl.analytics.market import market_totals
from crypto_etl.api.deps import CacheDep, SessionDep, VsCurrency
from crypto_etl.api.errors import ERROR_RESPONSES
from crypto_etl.api.params import API_V1, EARLIEST, MAX_RANGE_DAYS, utc
from crypto_etl.api.responses import cached_response
from crypto_etl.api.schemas import Correlation, MarketShare, MarketSummary
from crypto_etl.storage import queries

router = APIRouter(prefix=API_V1, tags=["market"], responses=ERROR_RESPONSES)


@router.get("/market/summary", response_model=MarketSummary, summary="Market totals")
def market_summary(
    session: SessionDep,
    cache: CacheDep,
    vs_currency: VsCurrency,
    top_n: Annotated[int, Query(ge=1, le=50, description="Coins listed by name in dominance")] = 10,
) -> Response:
    """Total market cap and 24h volume over every coin's latest snapshot, the number of coins,
    and the market share (dominance) of the `top_n` largest, the rest summed as `others`."""

    def build() -> MarketSummary:
        rows, _ = queries.list_latest(session, vs_currency)
        names = {row["coin_id"]: row for row in rows}
        columns = ["coin_id", "market_cap", "total_volume", "last_updated"]
        totals = market_totals(pd.DataFrame(rows, columns=columns), top_n)
        dominance = [
            MarketShare(
                coin_id=coin,
                symbol=names.get(coin, {}).get("symbol"),
                name=names.get(coin, {}).get("name"),
                market_cap=cap,
                share=fraction,
            )
            for coin, cap, fraction in totals.dominance.itertuples(index=False)
        ]
        return MarketSummary(
            vs_currency=vs_currency,
            as_of=totals.as_of,
            coins=totals.coins,
            total_market_cap=totals.total_market_cap,
            total_volume=totals.total_volume,
            top_n=top_n,
            dominance=dominance,
        )

    return cached_response(cache, session, ("summary", vs_currency, top_n), build)


@router.get("/market/correlation", response_model=Correlation, summary="Correlation of returns")
def market_correlation(
    session: SessionDep,
    cache: CacheDep,
    vs_currency: VsCurrency,
    top_n: Annotated[int, Query(ge=2, le=25, description="The largest coins by market cap")] = 10,
    days: Annotated[int, Query(ge=1, le=MAX_RANGE_DAYS, description="Window length")] = 30,
    interval: Annotated[
        Literal["auto", "5m", "30m", "1h", "4h", "1d"],
        Query(
            description="Return period; auto: the coarsest of 1d, 4h, 1h, 30m, 5m that gives at "
            "least 20 prices in the window (the command line's `correlation` does the same)"
        ),
    ] = "auto",
    end: Annotated[
        datetime | None,
        Query(description="Window end, ISO 8601; default the newest snapshot of these coins"),
    ] = None,
) -> Response:
    """Pearson correlation matrix of the returns of the `top_n` largest coins over the `days`
    before `end` (crypto_etl.analytics.correlation). A coin needs 4 prices on the grid, else it is
    left out; a pair needs 3 common returns, else its entry is null."""
    if end is not None:
        end = utc(end, "end")

    def build() -> Correlation:
        rows, _ = queries.list_latest(
            session, vs_currency, order_by="market_cap", descending=True, limit=top_n
        )
        ids = [row["coin_id"] for row in rows]
        window_end = end or max((row["last_updated"] for row in rows), default=EARLIEST)
        window_start = max(window_end - timedelta(days=days), EARLIEST)
        points = queries.history_points(session, ids, vs_currency, window_start, window_end)
        found = returns_correlation(points, ids, interval)
        return Correlation(
            vs_currency=vs_currency,
            interval=found.interval,
            start=window_start,
            end=window_end,
            coins=found.coins,
            matrix=[
                [None if math.isnan(v) else float(v) for v in found.matrix.loc[c, found.coins]]
                for c in found.coins
            ],
            observations=found.observations,
        )

    key = ("correlation", vs_currency, top_n, days, interval, end)
    return cached_response(cache, session, key, build)
