"""The /api/v1 routes: market data read from the pipeline's tables.

Fixed paths (/cryptos/top10_market_cap, /cryptos/market_cap_vs_volume) are declared before
/cryptos/{coin_id}, which would otherwise take them for coin ids.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Annotated, Literal

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from crypto_etl.analytics import series as analytics
from crypto_etl.api.deps import (
    PRINTABLE,
    CacheDep,
    CoinId,
    SessionDep,
    SettingsDep,
    VsCurrency,
)
from crypto_etl.api.errors import ERROR_RESPONSES, InvalidParameter
from crypto_etl.api.schemas import (
    CandleList,
    Correlation,
    CryptoDetail,
    CryptoLatest,
    CryptoList,
    ErrorResponse,
    Freshness,
    History,
    MarketCapVolume,
    MarketCapVolumeList,
    MarketShare,
    MarketSummary,
    RejectedRowList,
    RejectedRowOut,
    Run,
    RunList,
    TableFreshness,
    TopMarketCap,
    TopMarketCapList,
)
from crypto_etl.storage import queries
from crypto_etl.storage.schema import Coin

EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)  # the first bitcoin block: no market data before
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_RANGE_DAYS = 366
MAX_POINTS = 10_000

# The API key dependency is added by api.create_app when API_KEY is set, so that the OpenAPI
# description asks for the key exactly when the server does.
router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)

Limit250 = Annotated[int, Query(ge=1, le=250, description="Rows per page")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip")]
Start = Annotated[
    datetime | None,
    Query(description="Range start, ISO 8601 (UTC when no offset is given); default end - 30 days"),
]
End = Annotated[datetime | None, Query(description="Range end, ISO 8601; default now")]


def _json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


def _cached(
    cache: CacheDep, session: SessionDep, key: Hashable, build: Callable[[], BaseModel]
) -> Response:
    """The body of `build()`, reused until the data changes (see api_cache)."""
    body, hit = cache.get_or_render(session, key, lambda: build().model_dump_json().encode())
    headers = {"X-Cache": "hit" if hit else "miss"}
    return Response(body, media_type="application/json", headers=headers)


def _utc(value: datetime, field: str) -> datetime:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not EARLIEST <= value <= LATEST:
        raise InvalidParameter(field, f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return value


def _range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[start, end] in UTC: end defaults to now, start to 30 days before end."""
    end = _utc(end, "end") if end else datetime.now(UTC)
    start = _utc(start, "start") if start else max(end - timedelta(days=30), EARLIEST)
    if start > end:
        raise InvalidParameter("start", "must not be after end")
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise InvalidParameter("start", f"the range may span at most {MAX_RANGE_DAYS} days")
    return start, end


def _coin_or_404(session: SessionDep, coin_id: str) -> Coin:
    coin = queries.get_coin(session, coin_id)
    if coin is None:
        raise HTTPException(404, f"no coin {coin_id!r}; GET /api/v1/cryptos?q=... searches coins")
    return coin


def _none(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _json_with_frame(envelope: BaseModel, frame: pd.DataFrame) -> Response:
    """`envelope` as JSON with its `data` list made from `frame` column by column: several times
    faster than a model per row when a history has thousands of points. The response models
    document this shape and the tests hold the answers to them. Times are written as ISO 8601 UTC
    with milliseconds, NaN as null."""
    times = frame.iloc[:, 0].dt.tz_convert(None).to_numpy("datetime64[ms]")
    columns = [np.datetime_as_string(times, unit="ms", timezone="UTC").tolist()]
    columns += [frame[name].to_numpy("float64").tolist() for name in frame.columns[1:]]
    rows = zip(*columns, strict=True)
    data = list(map(dict, map(zip, repeat(list(frame.columns)), rows)))
    head = envelope.model_dump(mode="json", exclude={"data"})
    return Response(orjson.dumps({**head, "data": data}), media_type="application/json")


# ---------------------------------------------------------------- cryptos


@router.get("/cryptos", response_model=CryptoList, tags=["cryptos"], summary="Latest per coin")
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

    return _cached(
        cache, session, ("cryptos", vs_currency, limit, offset, order_by, order, q), build
    )


@router.get(
    "/cryptos/top10_market_cap",
    response_model=TopMarketCapList,
    tags=["cryptos"],
    summary="The ten largest coins",
)
def top10_market_cap(session: SessionDep, cache: CacheDep, vs_currency: VsCurrency) -> Response:
    """The ten coins with the largest market cap in their latest snapshot."""

    def build() -> TopMarketCapList:
        rows, _ = queries.list_latest(
            session, vs_currency, order_by="market_cap", descending=True, limit=10
        )
        return TopMarketCapList(data=[TopMarketCap(**row) for row in rows], count=len(rows))

    return _cached(cache, session, ("top10", vs_currency), build)


@router.get(
    "/cryptos/market_cap_vs_volume",
    response_model=MarketCapVolumeList,
    tags=["cryptos"],
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

    return _cached(cache, session, ("mcap_volume", vs_currency, limit), build)


@router.get(
    "/cryptos/{coin_id}",
    response_model=CryptoDetail,
    tags=["cryptos"],
    summary="One coin",
    responses={404: {"model": ErrorResponse, "description": "Unknown coin or currency"}},
)
def get_crypto(
    session: SessionDep, cache: CacheDep, coin_id: CoinId, vs_currency: VsCurrency
) -> Response:
    """A coin's latest snapshot and its metadata."""

    def build() -> CryptoDetail:
        coin = _coin_or_404(session, coin_id)
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

    return _cached(cache, session, ("coin", coin_id, vs_currency), build)


@router.get(
    "/cryptos/{coin_id}/history",
    response_model=History,
    tags=["cryptos"],
    summary="Price history with returns and moving averages",
    responses={404: {"model": ErrorResponse, "description": "Unknown coin"}},
)
def get_history(
    session: SessionDep,
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
    start, end = _range(start, end)
    if interval == "auto":
        interval = analytics.auto_interval(end - start)
    windows = sorted(set(ma)) if ma else [7, 30]
    points = queries.history_points(session, [coin_id], vs_currency, start, end).get(coin_id)
    if points is None:  # no point in the range: an unknown coin is a 404, a known one is empty
        _coin_or_404(session, coin_id)
        points = analytics.empty_points()
    frame = analytics.history_features(points, interval, windows)
    envelope = History(
        coin_id=coin_id,
        vs_currency=vs_currency,
        interval=interval,
        start=start,
        end=end,
        data=[],
        count=len(frame),
    )
    return _json_with_frame(envelope, frame.iloc[offset : offset + limit])


@router.get(
    "/cryptos/{coin_id}/ohlc",
    response_model=CandleList,
    tags=["cryptos"],
    summary="Candles",
    responses={404: {"model": ErrorResponse, "description": "Unknown coin"}},
)
def get_ohlc(
    session: SessionDep,
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
    start, end = _range(start, end)
    _coin_or_404(session, coin_id)
    candles = analytics.empty_candles()
    used = source
    if source in ("auto", "ohlc"):
        candles = queries.ohlc_candles(session, coin_id, vs_currency, interval, start, end)
        used = "ohlc"
    if source == "history" or (source == "auto" and candles.empty):
        points = queries.history_points(session, [coin_id], vs_currency, start, end).get(coin_id)
        if points is not None:
            candles = analytics.candles_from_points(points, interval)
        used = "history"
    if source == "snapshot_24h":
        rows = queries.snapshot_24h_rows(session, coin_id, vs_currency, start, end)
        candles = analytics.candles_from_snapshots(rows)
    envelope = CandleList(
        coin_id=coin_id,
        vs_currency=vs_currency,
        interval="24h" if used == "snapshot_24h" else interval,
        source=used,
        data=[],
        count=len(candles),
    )
    return _json_with_frame(envelope, candles.iloc[offset : offset + limit])


# ---------------------------------------------------------------- market


@router.get(
    "/market/summary", response_model=MarketSummary, tags=["market"], summary="Market totals"
)
def market_summary(
    session: SessionDep,
    cache: CacheDep,
    vs_currency: VsCurrency,
    top_n: Annotated[int, Query(ge=1, le=50, description="Coins listed by name in dominance")] = 10,
) -> Response:
    """Total market cap and 24h volume over every coin's latest snapshot, the number of coins,
    and the market share (dominance) of the `top_n` largest, the rest summed as `others`."""

    def build() -> MarketSummary:
        rows, count = queries.list_latest(session, vs_currency)
        frame = pd.DataFrame(rows, columns=["coin_id", "symbol", "name", "market_cap"])
        frame["market_cap"] = frame["market_cap"].astype("float64")
        share = analytics.market_share(frame.set_index("coin_id")["market_cap"], top_n)
        names = {row["coin_id"]: row for row in rows}
        dominance = [
            MarketShare(
                coin_id=coin,
                symbol=names.get(coin, {}).get("symbol"),
                name=names.get(coin, {}).get("name"),
                market_cap=cap,
                share=fraction,
            )
            for coin, cap, fraction in share.itertuples(index=False)
        ]
        return MarketSummary(
            vs_currency=vs_currency,
            as_of=max((row["last_updated"] for row in rows), default=None),
            coins=count,
            total_market_cap=float(np.nansum([row["market_cap"] or 0.0 for row in rows])),
            total_volume=float(np.nansum([row["total_volume"] or 0.0 for row in rows])),
            top_n=top_n,
            dominance=dominance,
        )

    return _cached(cache, session, ("summary", vs_currency, top_n), build)


@router.get(
    "/market/correlation",
    response_model=Correlation,
    tags=["market"],
    summary="Correlation of returns",
)
def market_correlation(
    session: SessionDep,
    cache: CacheDep,
    vs_currency: VsCurrency,
    top_n: Annotated[int, Query(ge=2, le=25, description="The largest coins by market cap")] = 10,
    days: Annotated[int, Query(ge=1, le=MAX_RANGE_DAYS, description="Window length")] = 30,
    interval: Annotated[Literal["1h", "1d"], Query(description="Return period")] = "1d",
    end: Annotated[
        datetime | None,
        Query(description="Window end, ISO 8601; default the newest snapshot of these coins"),
    ] = None,
) -> Response:
    """Pearson correlation matrix of the `interval` returns of the `top_n` largest coins over the
    `days` before `end`. Coins without prices in the window are left out."""
    if end is not None:
        end = _utc(end, "end")

    def build() -> Correlation:
        rows, _ = queries.list_latest(
            session, vs_currency, order_by="market_cap", descending=True, limit=top_n
        )
        ids = [row["coin_id"] for row in rows]
        window_end = end or max((row["last_updated"] for row in rows), default=EARLIEST)
        window_start = max(window_end - timedelta(days=days), EARLIEST)
        points = queries.history_points(session, ids, vs_currency, window_start, window_end)
        wide = analytics.wide_prices(points, interval)
        coins = [coin for coin in ids if coin in wide.columns]
        matrix = analytics.correlation_matrix(wide[coins]) if coins else pd.DataFrame()
        return Correlation(
            vs_currency=vs_currency,
            interval=interval,
            start=window_start,
            end=window_end,
            coins=coins,
            matrix=[[_none(v) for v in matrix.loc[c, coins]] for c in coins],
            observations=len(wide),
        )

    return _cached(cache, session, ("correlation", vs_currency, top_n, days, interval, end), build)


# ---------------------------------------------------------------- operations


@router.get("/runs", response_model=RunList, tags=["pipeline"], summary="Recent pipeline runs")
def list_runs(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Runs per page")] = 20,
    offset: Offset = 0,
    status: Annotated[
        Literal["running", "success", "partial", "failed", "cancelled"] | None, Query()
    ] = None,
    command: Annotated[
        str | None, Query(max_length=50, pattern=PRINTABLE, examples=["run"])
    ] = None,
) -> Response:
    """Pipeline runs, newest first, with their outcome and row counts."""
    runs, count = queries.recent_runs(
        session, status=status, command=command, limit=limit, offset=offset
    )
    data = [
        Run(
            id=run.id,
            command=run.command,
            status=run.status,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_seconds=(
                (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
            ),
            vs_currency=run.vs_currency,
            rows_extracted=run.rows_extracted,
            rows_loaded=run.rows_loaded,
            rows_rejected=run.rows_rejected,
            rows_skipped=run.rows_skipped,
            source=run.source,
            error_message=run.error_message,
        )
        for run in runs
    ]
    return _json(RunList(data=data, count=count))


@router.get(
    "/rejected_rows",
    response_model=RejectedRowList,
    tags=["pipeline"],
    summary="Quarantined rows",
)
def list_rejected_rows(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Rows per page")] = 50,
    offset: Offset = 0,
    run_id: Annotated[int | None, Query(ge=1, le=2**62, description="Only this run's")] = None,
    rule: Annotated[
        str | None, Query(max_length=50, pattern=PRINTABLE, examples=["non_negative"])
    ] = None,
) -> Response:
    """Rows that broke a critical data quality rule, newest first, kept whole with the rule."""
    rows, count = queries.rejected_rows(
        session, run_id=run_id, rule=rule, limit=limit, offset=offset
    )
    data = []
    for row in rows:
        try:
            raw = json.loads(row.raw)
        except ValueError:
            raw = {"unparsed": row.raw}
        data.append(
            RejectedRowOut(
                id=row.id,
                run_id=row.run_id,
                coin_id=row.coin_id,
                vs_currency=row.vs_currency,
                rule=row.rule,
                reason=row.reason,
                rejected_at=row.rejected_at,
                raw=raw if isinstance(raw, dict) else {"value": raw},
            )
        )
    return _json(RejectedRowList(data=data, count=count))


@router.get(
    "/freshness", response_model=Freshness, tags=["pipeline"], summary="Age of the newest data"
)
def freshness(session: SessionDep, settings: SettingsDep) -> Response:
    """For each table the pipeline fills, its newest timestamp and age. Tables the scheduled
    pipeline refreshes count as fresh while at most two cadences (ETL_INTERVAL_SECONDS) old, so
    one late run is tolerated; backfilled tables (price_history, ohlc) have no cadence."""
    now = datetime.now(UTC)
    cadence = settings.expected_cadence_seconds
    data = []
    for table, column, newest, scheduled in queries.newest_per_table(session):
        age = (now - newest).total_seconds() if newest else None
        max_age = 2 * cadence if scheduled else None
        data.append(
            TableFreshness(
                table=table,
                column=column,
                newest=newest,
                age_seconds=age,
                max_age_seconds=max_age,
                fresh=None if max_age is None else age is not None and age <= max_age,
            )
        )
    return _json(
        Freshness(checked_at=now, expected_cadence_seconds=cadence, data=data, count=len(data))
    )
