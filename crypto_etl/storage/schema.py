"""The database schema: typed SQLAlchemy 2.x tables. Table and column names are a contract for SQL
users, the REST API and the dashboard; change them only with an Alembic migration, and keep these
models in step with the migrations (tests/test_schema_in_step.py compares the two on both
backends). An index made on one backend only says so in `info["dialects"]`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    text,
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


def run_id_index(name: str) -> Index:
    """A BRIN index on run_id, PostgreSQL only (migration 0011): rows are appended run after run,
    so the smallest and largest run_id per block range find one run's rows (the alert check)."""
    return Index(
        name,
        "run_id",
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
        info={"dialects": ["postgresql"]},
    ).ddl_if(dialect="postgresql")


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
        run_id_index("ix_market_snapshots_run_id"),
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
    # The orchestrator's run that started this one (migration 0008), e.g. Airflow's
    # dag_id/run_id/task_id[map_index]; empty for the command line and `schedule`.
    orchestrator_run_id: Mapped[str | None] = mapped_column(String(500))
    # What the run did beyond its counts, as JSON text (migration 0009), e.g. a retention run's
    # rows removed per table and partitions dropped.
    details: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_etl_runs_started_at", "started_at"),
        Index("ix_etl_runs_status", "status"),
    )


class RateLimit(Base):
    """A call budget shared by every process using the database (migration 0008): the earliest
    time the next call may start, in seconds since the Unix epoch
    (crypto_etl.storage.rate_limit)."""

    __tablename__ = "rate_limits"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_slot_unix_seconds: Mapped[float]
    updated_at: Mapped[datetime]


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

    __table_args__ = (Index("ix_price_history_ts", "ts"), run_id_index("ix_price_history_run_id"))


class HistoryHourly(Base):
    """The hourly rollup of market_snapshots and price_history (migration 0010): per coin,
    currency and UTC hour (`ts`, the hour's start) the point the history API keeps for that hour
    from the two tables' merged points. Kept in step by every bulk write of either table
    (crypto_etl.storage.rollup); `ms_ties` marks an hour where one table has two points within a
    millisecond, which the API answers from the raw rows. Monthly partitions on PostgreSQL."""

    __tablename__ = "history_hourly"

    coin_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    vs_currency: Mapped[str] = mapped_column(String(20), primary_key=True)
    ts: Mapped[datetime] = mapped_column(primary_key=True)
    price: Mapped[float]
    market_cap: Mapped[float | None]
    total_volume: Mapped[float | None]
    ms_ties: Mapped[bool] = mapped_column(Boolean)


class RollupState(Base):
    """Whether a rollup holds every hour of the data (migration 0010): false on a database that
    held history before the rollup existed, until `python etl.py rollup --rebuild` has filled it;
    the API answers from the raw rows meanwhile."""

    __tablename__ = "rollup_state"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    complete: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime]


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


class Alert(Base):
    """One alert per episode of a condition (crypto_etl.alerts): open while the condition holds,
    resolved once it clears; at most one open alert per condition key."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    condition: Mapped[str] = mapped_column(String(300))  # e.g. run_failed:run, data_stale:usd
    kind: Mapped[str] = mapped_column(String(50))  # run_failed, failed_streak, data_stale, ...
    state: Mapped[str] = mapped_column(String(20))  # open or resolved
    summary: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]  # the last evaluation that found the condition holding
    resolved_at: Mapped[datetime | None]
    last_notified_at: Mapped[datetime | None]
    details: Mapped[dict] = mapped_column(JSON)
    run_ids: Mapped[list] = mapped_column(JSON)  # the etl_runs rows concerned
    coin_ids: Mapped[list] = mapped_column(JSON)  # the coins concerned

    __table_args__ = (
        Index(
            "ux_alerts_open_condition",
            "condition",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
        Index("ix_alerts_opened_at", "opened_at"),
    )


class AnomalyFlag(Base):
    """A market value an anomaly rule found suspicious. Append-only: never altered or deleted
    (database triggers refuse UPDATE and DELETE)."""

    __tablename__ = "anomaly_flags"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    rule: Mapped[str] = mapped_column(String(50))  # price_move, market_cap, volume_jump
    source: Mapped[str] = mapped_column(String(20))  # market_snapshots or price_history
    coin_id: Mapped[str] = mapped_column(String(200))
    vs_currency: Mapped[str] = mapped_column(String(20))
    observed_at: Mapped[datetime]  # the flagged point's time (last_updated or ts)
    value: Mapped[float | None]
    expected: Mapped[float | None]  # the baseline the value was compared with
    score: Mapped[float | None]  # robust z-score, or relative deviation for market_cap
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]

    __table_args__ = (
        Index(
            "ux_anomaly_flags_point",
            "rule",
            "source",
            "coin_id",
            "vs_currency",
            "observed_at",
            unique=True,
        ),
        Index("ix_anomaly_flags_coin_observed", "coin_id", "observed_at"),
        Index("ix_anomaly_flags_created_at", "created_at"),
    )


class AlertOutbox(Base):
    """A message about an alert still owed to one webhook (identified by a fingerprint of its URL,
    never the URL): delivered_at stays empty until the webhook accepted it."""

    __tablename__ = "alert_outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    event: Mapped[str] = mapped_column(String(20))  # opened or resolved
    target: Mapped[str] = mapped_column(String(64))  # crypto_etl.alerts.delivery fingerprint
    message: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_alert_outbox_pending", "delivered_at", "target"),)


class AlertEvaluation(Base):
    """A finished run whose new points the anomaly rules have checked (so each run is checked
    once, and a check missed after one run is made after the next)."""

    __tablename__ = "alert_evaluations"

    run_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    evaluated_at: Mapped[datetime]
    flags: Mapped[int] = mapped_column(Integer, default=0)
