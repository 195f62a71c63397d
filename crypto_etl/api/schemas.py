"""Response models of the REST API: one per use, with examples for the OpenAPI description.

Money fields are in the `vs_currency` of the response; timestamps are UTC; shares and returns are
fractions (0.01 is 1 %).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from crypto_etl.run_status import RunStatus

BITCOIN = {
    "coin_id": "bitcoin",
    "symbol": "btc",
    "name": "Bitcoin",
    "image": "https://assets.coingecko.com/coins/images/1/large/bitcoin.png",
    "vs_currency": "usd",
    "current_price": 29309.0,
    "market_cap": 569778313238.0,
    "market_cap_rank": 1,
    "total_volume": 7555609615.0,
    "last_updated": "2023-07-28T20:03:29.093000Z",
}


class ErrorDetail(BaseModel):
    field: str | None = Field(None, description="The parameter at fault", examples=["limit"])
    location: str | None = Field(None, description="query, path or header", examples=["query"])
    message: str = Field(examples=["Input should be less than or equal to 250"])


class ErrorInfo(BaseModel):
    status: int = Field(examples=[422])
    code: str = Field(
        description="Stable machine-readable code: bad_request, unauthorized, not_found, "
        "method_not_allowed, validation_error, database_unavailable, internal_error",
        examples=["validation_error"],
    )
    message: str = Field(examples=["limit: Input should be less than or equal to 250"])
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """The one error body of the API, whatever the status."""

    error: ErrorInfo


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    database: str = Field(description="The database backend", examples=["postgresql"])
    revision: str | None = Field(description="The schema's migration revision", examples=["0002"])


class CryptoLatest(BaseModel):
    """A coin's latest market snapshot in one currency, with its name and symbol."""

    model_config = ConfigDict(json_schema_extra={"examples": [BITCOIN]})

    coin_id: str
    symbol: str
    name: str
    image: str | None = None
    vs_currency: str
    current_price: float
    market_cap: float | None = None
    market_cap_rank: int | None = None
    fully_diluted_valuation: float | None = None
    total_volume: float | None = None
    high_24h: float | None = None
    low_24h: float | None = None
    price_change_24h: float | None = None
    price_change_percentage_24h: float | None = None
    market_cap_change_24h: float | None = None
    market_cap_change_percentage_24h: float | None = None
    circulating_supply: float | None = None
    total_supply: float | None = None
    max_supply: float | None = None
    ath: float | None = None
    ath_change_percentage: float | None = None
    ath_date: datetime | None = None
    atl: float | None = None
    atl_change_percentage: float | None = None
    atl_date: datetime | None = None
    roi_times: float | None = None
    roi_currency: str | None = None
    roi_percentage: float | None = None
    last_updated: datetime = Field(description="CoinGecko's time of these values")
    snapshot_at: datetime = Field(description="When the pipeline fetched them")
    run_id: int | None = Field(None, description="The pipeline run (etl_runs.id) that loaded it")


class CryptoList(BaseModel):
    data: list[CryptoLatest]
    count: int = Field(description="Coins matching the filters, before limit and offset")


class CryptoDetail(CryptoLatest):
    first_seen_at: datetime = Field(description="When the pipeline first saw the coin")
    last_seen_at: datetime = Field(description="When the pipeline last saw the coin")


class TopMarketCap(BaseModel):
    coin_id: str
    symbol: str
    name: str
    market_cap_rank: int | None = None
    market_cap: float | None = None
    current_price: float
    last_updated: datetime


class TopMarketCapList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "coin_id": "bitcoin",
                            "symbol": "btc",
                            "name": "Bitcoin",
                            "market_cap_rank": 1,
                            "market_cap": 569778313238.0,
                            "current_price": 29309.0,
                            "last_updated": "2023-07-28T20:03:29.093000Z",
                        }
                    ],
                    "count": 1,
                }
            ]
        }
    )

    data: list[TopMarketCap]
    count: int


class MarketCapVolume(BaseModel):
    coin_id: str
    symbol: str
    name: str
    market_cap: float | None = None
    total_volume: float | None = None
    volume_to_market_cap: float | None = Field(
        None, description="total_volume / market_cap: the share of the cap traded in 24h"
    )


class MarketCapVolumeList(BaseModel):
    data: list[MarketCapVolume]
    count: int


class HistoryPoint(BaseModel):
    """One point; besides these fields, one `ma_<N>` field per requested moving-average window."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "ts": "2023-07-28T20:00:00.000Z",
                    "price": 29309.0,
                    "market_cap": 569778313238.0,
                    "total_volume": 7555609615.0,
                    "simple_return": 0.0012,
                    "log_return": 0.0011993,
                    "ma_7": 29250.5,
                    "ma_30": None,
                }
            ]
        },
    )

    ts: datetime = Field(description="Observation time; with an interval, the bucket's start")
    price: float
    market_cap: float | None = None
    total_volume: float | None = None
    simple_return: float | None = Field(None, description="Change from the previous point")
    log_return: float | None = None


class History(BaseModel):
    coin_id: str = Field(examples=["bitcoin"])
    vs_currency: str = Field(examples=["usd"])
    interval: str = Field(description="The interval used (auto resolved)", examples=["1h"])
    start: datetime
    end: datetime
    data: list[HistoryPoint]
    count: int = Field(description="Points in the range, before limit and offset")


class Candle(BaseModel):
    ts: datetime = Field(description="The candle's close time")
    open: float
    high: float
    low: float
    close: float


class CandleList(BaseModel):
    coin_id: str = Field(examples=["bitcoin"])
    vs_currency: str = Field(examples=["usd"])
    interval: str = Field(examples=["4h"])
    source: Literal["ohlc", "history", "snapshot_24h"] = Field(
        description="ohlc: CoinGecko's candles; history: built from price points; snapshot_24h: "
        "one 24h candle per market snapshot",
    )
    data: list[Candle]
    count: int


class MarketShare(BaseModel):
    coin_id: str = Field(description='A coin id, or "others" for the rest', examples=["bitcoin"])
    symbol: str | None = None
    name: str | None = None
    market_cap: float
    share: float = Field(description="Fraction of the total market cap", examples=[0.47])


class MarketSummary(BaseModel):
    vs_currency: str = Field(examples=["usd"])
    as_of: datetime | None = Field(description="The newest last_updated among the coins")
    coins: int = Field(description="Coins with a snapshot in this currency", examples=[250])
    total_market_cap: float = Field(examples=[1.2e12])
    total_volume: float = Field(examples=[3.1e10])
    top_n: int = Field(examples=[10])
    dominance: list[MarketShare]


class Correlation(BaseModel):
    vs_currency: str = Field(examples=["usd"])
    interval: str = Field(examples=["1d"])
    start: datetime
    end: datetime
    coins: list[str] = Field(examples=[["bitcoin", "ethereum"]])
    matrix: list[list[float | None]] = Field(
        description="Pearson correlation of returns, in the order of `coins`; null where two coins "
        "share fewer than 3 returns",
        examples=[[[1.0, 0.82], [0.82, 1.0]]],
    )
    observations: int = Field(description="Grid points in the window", examples=[30])


class Run(BaseModel):
    """One row of etl_runs, read straight from the table."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    command: str = Field(examples=["run"])
    status: RunStatus = Field(examples=["success"])
    started_at: datetime
    finished_at: datetime | None = None
    vs_currency: str | None = None
    rows_extracted: int
    rows_loaded: int
    rows_rejected: int
    rows_skipped: int
    source: str | None = None
    error_message: str | None = None
    heartbeat_at: datetime | None = Field(
        None, description="The last sign of life of the run's process (renewed while running)"
    )
    lease_expires_at: datetime | None = Field(
        None,
        description="While running: when the run counts as abandoned unless its process renews "
        "the lease; null once closed",
    )
    orchestrator_run_id: str | None = Field(
        None,
        description="The orchestrator's run that started it (Airflow: "
        "dag_id/run_id/task_id[map_index]); null for the command line and `schedule`",
        examples=["crypto_etl/scheduled__2026-11-29T06:00:00+00:00/backfill_coin[3]"],
    )

    def as_of(self, now: datetime) -> Run:
        """The run as it stands at `now`: a `running` run whose lease expired is shown as
        `abandoned` (its process is gone), ended at its last heartbeat, with why."""
        lease = self.lease_expires_at
        if self.status != RunStatus.RUNNING or lease is None or lease >= now:
            return self
        return self.model_copy(
            update={
                "status": RunStatus.ABANDONED,
                "finished_at": self.heartbeat_at or self.started_at,
                "error_message": f"process gone: lease expired at {lease:%Y-%m-%dT%H:%M:%SZ}",
            }
        )

    @computed_field(description="finished_at - started_at in seconds; null while running")
    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class RunList(BaseModel):
    data: list[Run]
    count: int


class RejectedRowOut(BaseModel):
    """One row of rejected_rows, its `raw` JSON text decoded."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    run_id: int | None = None
    coin_id: str | None = Field(None, examples=["bitcoin"])
    vs_currency: str | None = Field(None, examples=["usd"])
    rule: str = Field(examples=["non_negative"], description="The critical rule the row broke")
    reason: str = Field(examples=["negative price, market cap, volume or supply"])
    rejected_at: datetime
    raw: dict[str, Any] = Field(description="The row as it was read, every field")

    @field_validator("raw", mode="before")
    @classmethod
    def _decoded(cls, value: Any) -> Any:
        """The stored JSON text as an object; text that is not JSON is kept under `unparsed`."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return {"unparsed": value}
        return value if isinstance(value, dict) else {"value": value}


class RejectedRowList(BaseModel):
    data: list[RejectedRowOut]
    count: int


class TableFreshness(BaseModel):
    table: str = Field(examples=["market_snapshots"])
    column: str = Field(description="The timestamp column read", examples=["last_updated"])
    newest: datetime | None = None
    age_seconds: float | None = Field(None, examples=[182.4])
    max_age_seconds: int | None = Field(
        None, description="Age beyond which the table counts as stale; null when not scheduled"
    )
    fresh: bool | None = Field(None, description="age_seconds <= max_age_seconds")


class Freshness(BaseModel):
    checked_at: datetime
    expected_cadence_seconds: int = Field(examples=[300])
    data: list[TableFreshness]
    count: int
