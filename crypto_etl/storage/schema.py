"""The database schema: typed SQLAlchemy 2.x tables. Table and column names are a contract for SQL
users, the REST API and the dashboard; change them only with an Alembic migration, and keep these
models in step with the migrations (tests/test_schema_in_step.py compares the two on both
backends). An index made on one backend only says so in `info["dialects"]`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them without an offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {datetime: UTCDateTime, float: Double}


class Coin(Base):
    """One row per CoinGecko coin id, with its latest descriptive fields."""

    __tablename__ = "coins"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(300))
    image: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class MarketSnapshot(Base):
    """The market history: one row per (coin, currency, CoinGecko's last_updated)."""

    __tablename__ = "market_snapshots"

    coin_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    vs_currency: Mapped[str] = mapped_column(String(20), primary_key=True)
    last_updated: Mapped[datetime] = mapped_column(primary_key=True)
    snapshot_at: Mapped[datetime]
    current_price: Mapped[float]
    market_cap: Mapped[float | None]
    market_cap_rank: Mapped[int | None] = mapped_column(Integer)
    fully_diluted_valuation: Mapped[float | None]
    total_volume: Mapped[float | None]
    high_24h: Mapped[float | None]
    low_24h: Mapped[float | None]
    price_change_24h: Mapped[float | None]
    price_change_percentage_24h: Mapped[float | None]
    market_cap_change_24h: Mapped[float | None]
    market_cap_change_percentage_24h: Mapped[float | None]
    circulating_supply: Mapped[float | None]
    total_supply: Mapped[float | None]
    max_supply: Mapped[float | None]
    ath: Mapped[float | None]
    ath_change_percentage: Mapped[float | None]
    ath_date: Mapped[datetime | None]
    atl: Mapped[float | None]
    atl_change_percentage: Mapped[float | None]
    atl_date: Mapped[datetime | None]
    roi_times: Mapped[float | None]
    roi_currency: Mapped[str | None] = mapped_column(String(20))
    roi_percentage: Mapped[float | None]
    run_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_market_snapshots_last_updated", "last_updated"),
        # One coin's history in a time range as an index-only scan (migration 0003).
        Index(
            "ix_market_snapshots_history",
            "coin_id",
            "vs_currency",
            "last_updated",
            postgresql_include=["current_price", "market_cap", "total_volume"],
            info={"dialects": ("postgresql",)},
        ).ddl_if(dialect="postgresql"),
    )


class EtlRun(Base):
    """One row per pipeline run or single step, with its outcome and row counts."""

    __tablename__ = "etl_runs"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    command: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20))  # a crypto_etl.run_status.RunStatus value
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    vs_currency: Mapped[str | None] = mapped_column(String(20))
    rows_extracted: Mapped[int] = mapped_column(Integer, default=0)
    rows_loaded: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rows_skipped: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    # The owner and its lease (migration 0004): which process runs it, and until when the run
    # counts as alive without a new heartbeat (crypto_etl.storage.runs).
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    owner_token: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_etl_runs_started_at", "started_at"),
        Index("ix_etl_runs_status", "status"),
    )


class RejectedRow(Base):
    """The quarantine: a row that broke a critical rule, kept whole with the rule and the run."""

    __tablename__ = "rejected_rows"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("etl_runs.id"), index=True)
    coin_id: Mapped[str | None] = mapped_column(String(200))
    vs_currency: Mapped[str | None] = mapped_column(String(20))
    rule: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)  # the row as read, JSON
    row_hash: Mapped[str] = mapped_column(String(64))  # sha256 of raw: quarantined once per rule
    rejected_at: Mapped[datetime]

    __table_args__ = (Index("ux_rejected_rows_row_hash_rule", "row_hash", "rule", unique=True),)


class PriceHistory(Base):
    """Price, market cap and volume points from /coins/{id}/market_chart/range."""

    __tablename__ = "price_history"

    coin_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    vs_currency: Mapped[str] = mapped_column(String(20), primary_key=True)
    ts: Mapped[datetime] = mapped_column(primary_key=True)
    price: Mapped[float | None]
    market_cap: Mapped[float | None]
    total_volume: Mapped[float | None]
    granularity: Mapped[str] = mapped_column(String(10))  # 5m, 1h, 1d
    run_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_price_history_ts", "ts"),)


class Ohlc(Base):
    """Candles from /coins/{id}/ohlc; ts is the candle's close time."""

    __tablename__ = "ohlc"

    coin_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    vs_currency: Mapped[str] = mapped_column(String(20), primary_key=True)
    interval: Mapped[str] = mapped_column(String(10), primary_key=True)  # 30m, 4h, 4d
    ts: Mapped[datetime] = mapped_column(primary_key=True)
    open: Mapped[float]
    high: Mapped[float]
    low: Mapped[float]
    close: Mapped[float]
    run_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_ohlc_ts", "ts"),)


class HistoryFetch(Base):
    """When the history of one coin was last asked for, per table and granularity, over what range
    and the newest point the answer held: a re-run within a granularity's step asks CoinGecko
    nothing it cannot have yet."""

    __tablename__ = "history_fetches"

    coin_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    vs_currency: Mapped[str] = mapped_column(String(20), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(20), primary_key=True)  # price_history, ohlc
    granularity: Mapped[str] = mapped_column(String(10), primary_key=True)  # 5m, 1h, 30m, 4h, 4d
    range_start: Mapped[datetime]
    range_end: Mapped[datetime]
    fetched_at: Mapped[datetime]
    newest_point: Mapped[datetime | None]  # None: the answer held no point
    run_id: Mapped[int | None] = mapped_column(BigInteger)


def on_backend(item: object, dialect_name: str) -> bool:
    """Whether a schema item exists on a backend: all do, except an index made on some backends
    only (its `info["dialects"]`). Alembic's comparison of models and database uses it."""
    dialects = getattr(item, "info", {}).get("dialects")
    return dialects is None or dialect_name in dialects
