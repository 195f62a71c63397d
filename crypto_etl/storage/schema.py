"""The database schema: typed SQLAlchemy 2.x tables. Table and column names are a contract for SQL
users, the REST API and the dashboard; change them only with an Alembic migration."""

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
    PrimaryKeyConstraint,
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
        # On PostgreSQL the key carries the history's columns (migration 0006): one index serves
        # a coin's history as an index-only scan.
        PrimaryKeyConstraint(
            "coin_id",
            "vs_currency",
            "last_updated",
            name="market_snapshots_pkey",
            postgresql_include=["current_price", "market_cap", "total_volume"],
        ),
        Index("ix_market_snapshots_last_updated", "last_updated"),
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

    __table_args__ = (Index("ix_etl_runs_started_at", "started_at"),)


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
