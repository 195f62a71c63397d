"""The one bulk writer (append, skip existing keys) on SQLite and PostgreSQL, for each table it
serves: market snapshots, price history and candles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from crypto_etl.errors import DatabaseError, Terminated
from crypto_etl.storage import bulk
from crypto_etl.storage.bulk import Rows, append_skip_existing, write_transaction
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.history import OHLC_COLUMNS, PRICE_COLUMNS
from crypto_etl.storage.schema import MarketSnapshot, Ohlc, PriceHistory

T0 = datetime(2025, 9, 1, tzinfo=UTC)


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def price_rows(coin: str, start: int, stop: int) -> list[tuple]:
    return [
        (coin, "usd", T0 + timedelta(hours=h), 100.0 + h, 1e9, 1e7, "1h", None)
        for h in range(start, stop)
    ]


def count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def append(engine, table, columns, rows) -> int:
    with write_transaction(engine, "test write") as conn:
        return append_skip_existing(conn, table, Rows(columns, rows))


def test_new_rows_are_appended_and_stored_keys_skipped(engine):
    assert append(engine, PriceHistory.__table__, PRICE_COLUMNS, price_rows("btc", 0, 10)) == 10
    # An overlapping batch: 5 stored already, 5 new; the stored ones keep their values.
    changed = [(*row[:3], -1.0, *row[4:]) for row in price_rows("btc", 5, 15)]
    assert append(engine, PriceHistory.__table__, PRICE_COLUMNS, changed) == 5
    assert count(engine, "price_history") == 15
    with engine.connect() as conn:
        prices = conn.execute(text("SELECT price FROM price_history ORDER BY ts")).scalars().all()
    assert prices[:10] == [100.0 + h for h in range(10)] and prices[10:] == [-1.0] * 5


def test_the_same_writer_serves_candles_and_snapshots(engine):
    candles = [
        ("btc", "usd", "4h", T0 + timedelta(hours=4 * i), 1.0, 2.0, 0.5, 1.5, 7) for i in range(6)
    ]
    assert append(engine, Ohlc.__table__, OHLC_COLUMNS, candles) == 6
    assert append(engine, Ohlc.__table__, OHLC_COLUMNS, candles) == 0
    columns = ("coin_id", "vs_currency", "last_updated", "snapshot_at", "current_price")
    snapshots = [("btc", "usd", T0 + timedelta(minutes=5 * i), T0, 100.0) for i in range(3)]
    assert append(engine, MarketSnapshot.__table__, columns, snapshots) == 3
    assert append(engine, MarketSnapshot.__table__, columns, snapshots[1:]) == 0
    assert (count(engine, "ohlc"), count(engine, "market_snapshots")) == (6, 3)


def test_more_rows_than_one_sqlite_batch(engine, monkeypatch):
    monkeypatch.setattr(bulk, "SQLITE_BATCH_ROWS", 7)
    assert append(engine, PriceHistory.__table__, PRICE_COLUMNS, price_rows("eth", 0, 30)) == 30
    assert append(engine, PriceHistory.__table__, PRICE_COLUMNS, price_rows("eth", 20, 40)) == 10
    assert count(engine, "price_history") == 40


def test_a_failed_write_rolls_back_whole_and_is_one_database_error(engine):
    append(engine, PriceHistory.__table__, PRICE_COLUMNS, price_rows("sol", 0, 3))
    bad = [*price_rows("sol", 3, 6), ("sol", "usd", None, 1.0, 1.0, 1.0, "1h", None)]  # NULL key
    with pytest.raises(DatabaseError, match="test write failed and was rolled back"):
        append(engine, PriceHistory.__table__, PRICE_COLUMNS, bad)
    assert count(engine, "price_history") == 3


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), Terminated()])
def test_an_interrupt_whose_rollback_fails_stops_as_the_interrupt(engine, interrupt):
    """Ctrl-C or SIGTERM can stop psycopg between sending a command and reading its answer; the
    rollback then fails ("another command is already in progress"). The command must still stop
    as interrupted (exit 130 or 143, its run cancelled), not as a failed write, and nothing is
    kept."""

    def refuse(conn) -> None:
        raise OperationalError("ROLLBACK", {}, Exception("another command is already in progress"))

    with (
        pytest.raises(type(interrupt)) as stopped,
        write_transaction(engine, "test write") as conn,
    ):
        append_skip_existing(
            conn, PriceHistory.__table__, Rows(PRICE_COLUMNS, price_rows("x", 0, 4))
        )
        event.listen(conn, "rollback", refuse)
        raise interrupt
    assert stopped.value is interrupt
    engine.dispose()  # the connection whose rollback failed goes; the server drops its work
    assert count(engine, "price_history") == 0


def test_an_error_that_is_not_the_database_passes_through_and_rolls_back(engine):
    with (
        pytest.raises(RuntimeError, match="disk full"),
        write_transaction(engine, "test write") as conn,
    ):
        append_skip_existing(
            conn, PriceHistory.__table__, Rows(PRICE_COLUMNS, price_rows("x", 0, 4))
        )
        raise RuntimeError("disk full")
    assert count(engine, "price_history") == 0
