"""Retention of the detailed history on SQLite and PostgreSQL: dropping rows older than the cutoff
(whole monthly partitions on PostgreSQL, the exact cutoff honoured) or downsampling them to the
last row of each coin and hour, each application journaled in etl_runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from crypto_etl.errors import ConfigError
from crypto_etl.pipeline.history_store import retention_after_run, run_retention
from crypto_etl.settings import Settings, load_settings
from crypto_etl.shaping.history_records import PricePoint
from crypto_etl.storage.bulk import Rows, append_skip_existing, write_transaction
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.history import store_price_points
from crypto_etl.storage.partitions import list_partitions
from crypto_etl.storage.schema import MarketSnapshot

START = datetime(2026, 8, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 15, 12, 7, tzinfo=UTC)
DAYS = 60
CUTOFF = NOW - timedelta(days=DAYS)  # 2026-09-16 12:07, not on an hour
SNAPSHOT_TIMES = [START + timedelta(minutes=30 * i) for i in range(101 * 48)]  # to 11-10
PRICE_TIMES = [START + timedelta(minutes=5 * i) for i in range(61 * 288)]  # to 10-01


def seed(engine) -> None:
    """Two coins' snapshots every 30 minutes and one coin's 5-minute prices, through the
    pipeline's own writers (which create the months on PostgreSQL)."""
    columns = ("coin_id", "vs_currency", "last_updated", "snapshot_at", "current_price")
    rows = [
        (coin, "usd", t, t, float(i)) for coin in ("a", "b") for i, t in enumerate(SNAPSHOT_TIMES)
    ]
    with write_transaction(engine, "seed") as conn:
        append_skip_existing(conn, MarketSnapshot.__table__, Rows(columns, rows))
    points = [PricePoint(t, float(i), None, None, "5m") for i, t in enumerate(PRICE_TIMES)]
    store_price_points(engine, "a", "usd", points, None)


def stored(engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def as_utc(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@pytest.fixture
def seeded(db_url):
    engine = make_engine(db_url)
    seed(engine)
    yield engine, Settings(database_url=db_url)
    engine.dispose()


def journal(engine, run_id: int) -> tuple[str, str, int, dict]:
    command, status, removed, details = stored(
        engine, f"SELECT command, status, rows_rejected, details FROM etl_runs WHERE id = {run_id}"
    )[0]
    return command, status, removed, json.loads(details)


def test_drop_removes_every_row_older_than_the_cutoff_and_whole_months(seeded):
    engine, settings = seeded
    old_snapshots = 2 * sum(t < CUTOFF for t in SNAPSHOT_TIMES)
    old_prices = sum(t < CUTOFF for t in PRICE_TIMES)

    preview = run_retention(settings, engine, DAYS, "drop", dry_run=True, now=NOW)
    counts = {t.table: t.rows_removed for t in preview.retention.tables}
    assert counts == {"market_snapshots": old_snapshots, "price_history": old_prices}
    assert stored(engine, "SELECT count(*) FROM market_snapshots")[0][0] == 2 * len(SNAPSHOT_TIMES)

    done = run_retention(settings, engine, DAYS, "drop", now=NOW)

    tables = {t.table: t for t in done.retention.tables}
    assert tables["market_snapshots"].rows_removed == old_snapshots
    assert tables["price_history"].rows_removed == old_prices
    first_snapshot = min(t for t in SNAPSHOT_TIMES if t >= CUTOFF)
    first_price = min(t for t in PRICE_TIMES if t >= CUTOFF)
    ((oldest, rows),) = stored(engine, "SELECT min(last_updated), count(*) FROM market_snapshots")
    assert (as_utc(oldest), rows) == (first_snapshot, 2 * len(SNAPSHOT_TIMES) - old_snapshots)
    ((oldest, rows),) = stored(engine, "SELECT min(ts), count(*) FROM price_history")
    assert (as_utc(oldest), rows) == (first_price, len(PRICE_TIMES) - old_prices)

    if engine.dialect.name == "postgresql":  # August, entirely older, went as a whole table
        for table in ("market_snapshots", "price_history"):
            dropped = tables[table].partitions_dropped
            assert f"{table}_p202608" in dropped
            # Older empty months other tests of the session made go too; September stays.
            assert all(name < f"{table}_p202609" for name in dropped)
            left = [p.name for p in list_partitions(engine, table)]
            assert f"{table}_p202609" in left and not set(dropped) & set(left)
    command, status, removed, details = journal(engine, done.run_id)
    assert (command, status, removed) == ("retention", "success", old_snapshots + old_prices)
    assert details["mode"] == "drop" and details["dry_run"] is False
    assert details["tables"]["price_history"]["rows_removed"] == old_prices
    assert journal(engine, preview.run_id)[3]["dry_run"] is True

    again = run_retention(settings, engine, DAYS, "drop", now=NOW)
    assert again.retention.rows_removed == 0


def test_hourly_keeps_the_last_row_of_each_coin_and_hour_before_the_cutoff(seeded):
    engine, settings = seeded
    cut_hour = CUTOFF.replace(minute=0)
    old_hours = len({t.replace(minute=0) for t in SNAPSHOT_TIMES if t < cut_hour})

    preview = run_retention(settings, engine, DAYS, "hourly", dry_run=True, now=NOW)
    done = run_retention(settings, engine, DAYS, "hourly", now=NOW)

    assert preview.retention.details().replace("true", "false") == done.retention.details()
    snapshots = [
        (coin, as_utc(t))
        for coin, t in stored(engine, "SELECT coin_id, last_updated FROM market_snapshots")
    ]
    before = sorted(t for coin, t in snapshots if coin == "a" and t < cut_hour)
    assert len(before) == old_hours
    assert all(t.minute == 30 for t in before)  # the last of each hour
    after = [t for coin, t in snapshots if coin == "a" and t >= cut_hour]
    assert len(after) == sum(t >= cut_hour for t in SNAPSHOT_TIMES)  # untouched
    prices = [
        (as_utc(t), g) for t, g in stored(engine, "SELECT ts, granularity FROM price_history")
    ]
    old = sorted(p for p in prices if p[0] < cut_hour)
    assert len(old) == len({t.replace(minute=0) for t in PRICE_TIMES if t < cut_hour})
    assert all(t.minute == 55 and g == "1h" for t, g in old)
    assert all(g == "5m" for t, g in prices if t >= cut_hour)
    tables = {t.table: t for t in done.retention.tables}
    assert tables["price_history"].rows_marked_hourly == len(old)
    assert (
        tables["market_snapshots"].rows_removed
        == 2 * sum(t < cut_hour for t in SNAPSHOT_TIMES) - 2 * old_hours
    )
    command, status, removed, details = journal(engine, done.run_id)
    assert (command, status) == ("retention", "success")
    assert removed == done.retention.rows_removed and details["mode"] == "hourly"

    # A day later only the new day's hours are thinned; the older ones are not scanned again.
    later = run_retention(settings, engine, DAYS, "hourly", now=NOW + timedelta(days=1))
    thinned = {t.table: t.rows_removed for t in later.retention.tables}
    assert thinned == {"market_snapshots": 2 * 24, "price_history": 24 * 11}


def test_retention_after_a_run_only_when_set(db_url):
    engine = make_engine(db_url)
    try:
        assert retention_after_run(Settings(database_url=db_url), engine) is None
        on = Settings(database_url=db_url, retention_days=30, retention_mode="drop")
        done = retention_after_run(on, engine)
        assert done is not None and done.retention.rows_removed == 0
        assert stored(engine, "SELECT command FROM etl_runs") == [("retention",)]
    finally:
        engine.dispose()


def test_retention_settings():
    settings = load_settings({"RETENTION_DAYS": "365", "RETENTION_MODE": "Hourly"}, dotenv=False)
    assert (settings.retention_days, settings.retention_mode) == (365, "hourly")
    off = load_settings({"RETENTION_DAYS": "0"}, dotenv=False)
    assert (off.retention_days, off.retention_mode, off.partitions_ahead_months) == (
        None,
        "drop",
        2,
    )
    with pytest.raises(ConfigError, match="RETENTION_MODE must be 'drop' or 'hourly'"):
        load_settings({"RETENTION_MODE": "weekly"}, dotenv=False)
    with pytest.raises(ConfigError, match="RETENTION_DAYS"):
        load_settings({"RETENTION_DAYS": "-3"}, dotenv=False)
