"""/api/v1/cryptos: each coin's latest snapshot, one coin, its history and its candles.

Fixed paths (/cryptos/top10_market_cap, /cryptos/market_cap_vs_volume) are declared before
/cryptos/{coin_id}, which would otherwise take them for coin ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import Field

from crypto_etl.analytics import candles as candle_math
from crypto_etl.analytics import series
from crypto_etl.api.deps import CacheDep, CoinId, SessionDep, VsCurrency
from crypto_etl.api.errors import ERROR_RESPONSES
from crypto_etl.api.params import (
    API_V1,
    MAX_POINTS,
    PRINTABLE,
    End,
    Limit250,
    Offset,
    Start,
    time_range,
)
from crypto_etl.api.responses import cached_response, columns_response, frame_response
from crypto_etl.api.schemas import (
    CandleList,
    CryptoDetail,
    CryptoLatest,
    CryptoList,
    ErrorResponse,
    History,
    MarketCapVolume,
    MarketCapVolumeList,
    TopMarketCap,
    TopMarketCapList,
)
from crypto_etl.storage import queries
from crypto_etl.storage.rollup import MARGIN, epoch_us, from_epoch_ms
from crypto_etl.storage.schema import Coin

router = APIRouter(prefix=API_V1, tags=["cryptos"], responses=ERROR_RESPONSES)


def coin_or_404(session: SessionDep, coin_id: str) -> Coin:
    coin = queries.get_coin(session, coin_id)
    if coin is None:
        raise HTTPException(404, f"no coin {coin_id!r}; GET /api/v1/cryptos?q=... searches coins")
    return coin


@router.get("/cryptos", response_model=CryptoList, summary="Latest per coin")
def list_cryptos(
    session: SessionDep,
    cache: CacheDep,
    vs_currency: VsCurrency,
    limit: Limit250 = 50,
    offset: Offset = 0,
    order_by: Annotated[
        queries.OrderBy, Query(description="Sort key; ties by coin id")
    ] = "market_cap_rank",
    order: Annotated[
        Literal["asc", "desc"] | None,
        Query(description="Default: asc for market_cap_rank, coin_id, symbol, name; else desc"),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            pattern=PRINTABLE,
            description="Case-insensitive search in coin id, symbol and name",
            examples=["bit"],
        ),
    ] = None,
) -> Response:
    """Each coin's latest snapshot in one currency, filtered, sorted and paged; `count` is the
    number of coins matching before paging. Missing values sort last either way."""
    if order is None:
        order = "asc" if order_by in ("market_cap_rank", "coin_id", "symbol", "name") else "desc"

    def build() -> CryptoList:
        rows, count = queries.list_latest(
            session,
            vs_currency,
            q=q,
            order_by=order_by,
            descending=order == "desc",
            limit=limit,
            offset=offset,
        )
        return CryptoList(data=[CryptoLatest(**row) for row in rows], count=count)

    return cached_response(
        cache, session, ("cryptos", vs_currency, limit, offset, order_by, order, q), build
    )


@router.get(
    "/cryptos/top10_market_cap",
    response_model=TopMarketCapList,
    summary="The ten largest coins",
)
def top10_market_cap(session: SessionDep, cache: CacheDep, vs_currency: VsCurrency) -> Response:
    """The ten coins with the largest market cap in their latest snapshot."""

    def build() -> TopMarketCapList:
        rows, _ = queries.list_latest(
            session, vs_currency, order_by="market_cap", descending=True, limit=10
        )
        return TopMarketCapList(data=[TopMarketCap(**row) for row in rows], count=len(rows))

    return cached_response(cache, session, ("top10", vs_currency), build)


@router.get(
    "/cryptos/market_cap_vs_volume",
    response_model=MarketCapVolumeList,
    summary="Market cap against 24h volume",
)
def market_cap_vs_volume(
    session: SessionDep, cache: CacheDep, vs_currency: VsCurrency, limit: Limit250 = 50
) -> Response:
    """Market cap and 24h volume of the largest coins, with volume / market cap (turnover)."""

    def build() -> MarketCapVolumeList:
        rows, _ = queries.list_latest(
            session, vs_currency, order_by="market_cap", descending=True, limit=limit
        )
        data = [
            MarketCapVolume(
                **row,
                volume_to_market_cap=(
                    row["total_volume"] / row["market_cap"]
                    if row["market_cap"] and row["total_volume"] is not None
                    else None
                ),
            )
            for row in rows
        ]
        return MarketCapVolumeList(data=data, count=len(data))

    return cached_response(cache, session, ("mcap_volume", vs_currency, limit), build)


@router.get(
    "/cryptos/{coin_id}",
    response_model=CryptoDetail,
    summary="One coin",
    responses={404: {"model": ErrorResponse, "description": "Unknown coin or currency"}},
)
def get_crypto(
    session: SessionDep, cache: CacheDep, coin_id: CoinId, vs_currency: VsCurrency
) -> Response:
    """A coin's latest snapshot and its metadata."""

    def build() -> CryptoDetail:
        coin = coin_or_404(session, coin_id)
        latest = queries.latest_snapshot(session, coin_id, vs_currency)
        if latest is None:
            raise HTTPException(404, f"no snapshot of {coin_id!r} in {vs_currency!r}")
        return CryptoDetail(
            **latest,
            symbol=coin.symbol,
            name=coin.name,
            image=coin.image,
            first_seen_at=coin.first_seen_at,
            last_seen_at=coin.last_seen_at,
        )

    return cached_response(cache, session, ("coin", coin_id, vs_currency), build)


@router.get(
    "/cryptos/{coin_id}/history",
    response_model=History,
    summary="Price history with returns and moving averages",
    responses={404: {"model": ErrorResponse, "description": "Unknown coin"}},
)
def get_history(
    session: SessionDep,
    cache: CacheDep,
    coin_id: CoinId,
    vs_currency: VsCurrency,
    start: Start = None,
    end: End = None,
    interval: Annotated[
        Literal["auto", "raw", "5m", "1h", "1d"],
        Query(
            description="raw: every point; 5m, 1h, 1d: the last point of each bucket; auto: "
            "raw up to 1 day, 1h up to 90 days, 1d beyond (CoinGecko's granularity)"
        ),
    ] = "auto",
    ma: Annotated[
        list[Annotated[int, Field(ge=2, le=1000)]] | None,
        Query(
            max_length=5,
            description="Moving-average windows in points (repeat: ma=7&ma=30); default 7 and 30",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_POINTS, description="Points per page")] = MAX_POINTS,
    offset: Offset = 0,
) -> Response:
    """Points of one coin in [start, end] (at most 366 days) from the market snapshots and the
    backfilled price_history, oldest first, resampled to `interval`, with simple and log returns
    and moving averages computed over the whole range before paging."""
    start, end = time_range(start, end)
    cache.version(session)  # the data this answer is made of, for the edge's ETag
    if interval == "auto":
        interval = series.auto_interval(end - start)
    windows = sorted(set(ma)) if ma else [7, 30]
    ms, values = history_points(session, coin_id, vs_currency, start, end, interval)
    if len(ms) == 0:  # no point in the range: an unknown coin is a 404, a known one is empty
        coin_or_404(session, coin_id)
    names, ms, columns = series.history_feature_arrays(ms, values, interval, windows)
    envelope = History(
        coin_id=coin_id,
        vs_currency=vs_currency,
        interval=interval,
        start=start,
        end=end,
        data=[],
        count=len(ms),
    )
    page = slice(offset, offset + limit)
    return columns_response(envelope, names, ms[page], [column[page] for column in columns])


def history_points(
    session: SessionDep,
    coin_id: str,
    vs_currency: str,
    start: datetime,
    end: datetime,
    interval: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The merged points of [start, end] as series.merge_point_matrix gives them or, for hourly
    and daily answers once the rollup is complete, the hourly points: the rollup's full hours and
    the raw rows of the partial hours at both ends, which resample to the same answer."""
    hours = None
    if interval in series.ROLLUP_INTERVALS:
        hours = series.full_hours(epoch_us(start), epoch_us(end))
    if hours is not None and queries.rollup_complete(session):
        first_ms, stop_ms = hours
        first, stop = from_epoch_ms(first_ms), from_epoch_ms(stop_ms)
        edges = np.concatenate(
            [
                queries.history_matrix(session, coin_id, vs_currency, start, first + MARGIN),
                queries.history_matrix(session, coin_id, vs_currency, stop - MARGIN, end),
            ]
        )
        rollup = queries.hourly_matrix(session, coin_id, vs_currency, first, stop)
        found = series.hourly_points(edges, rollup, first_ms, stop_ms)
        if found is not None:
            return found
    matrix = queries.history_matrix(session, coin_id, vs_currency, start, end)
    return series.merge_point_matrix(matrix)


@router.get(
    "/cryptos/{coin_id}/ohlc",
    response_model=CandleList,
    summary="Candles",
    responses={404: {"model": ErrorResponse, "description": "Unknown coin"}},
)
def get_ohlc(
    session: SessionDep,
    cache: CacheDep,
    coin_id: CoinId,
    vs_currency: VsCurrency,
    start: Start = None,
    end: End = None,
    interval: Annotated[
        Literal["30m", "1h", "4h", "1d", "4d"], Query(description="Candle length")
    ] = "4h",
    source: Annotated[
        Literal["auto", "ohlc", "history", "snapshot_24h"],
        Query(
            description="auto: CoinGecko's candles when stored for this interval and range, else "
            "built from the price history; snapshot_24h: one 24h candle per snapshot"
        ),
    ] = "auto",
    limit: Annotated[int, Query(ge=1, le=MAX_POINTS, description="Candles per page")] = MAX_POINTS,
    offset: Offset = 0,
) -> Response:
    """Candles of one coin whose close time lies in [start, end], oldest first."""
    start, end = time_range(start, end)
    cache.version(session)  # the data this answer is made of, for the edge's ETag
    coin_or_404(session, coin_id)
    candles = series.empty_candles()
    used = source
    if source in ("auto", "ohlc"):
        candles = queries.ohlc_candles(session, coin_id, vs_currency, interval, start, end)
        used = "ohlc"
    if source == "history" or (source == "auto" and candles.empty):
        points = queries.history_points(session, [coin_id], vs_currency, start, end).get(coin_id)
        if points is not None:
            candles = candle_math.candles_from_points(points, interval)
        used = "history"
    if source == "snapshot_24h":
        rows = queries.snapshot_24h_rows(session, coin_id, vs_currency, start, end)
        candles = candle_math.candles_from_snapshots(rows)
    envelope = CandleList(
        coin_id=coin_id,
        vs_currency=vs_currency,
        interval="24h" if used == "snapshot_24h" else interval,
        source=used,
        data=[],
        count=len(candles),
    )
    return frame_response(envelope, candles.iloc[offset : offset + limit])
