"""Each coin's newest snapshot (queries.latest_snapshots, behind /api/v1/cryptos and the market
summary): the quick answer through coins.last_seen_at is taken only when it is the newest, so rows
written around the loader, other currencies and rows removed by retention still give the newest
one. On PostgreSQL the history tables are partitioned by month (several months here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from crypto_etl.storage import queries
from crypto_etl.storage.engine import init_db, make_engine
from crypto_etl.storage.partitions import ensure_partitions, is_partitioned
from crypto_etl.storage.schema import Coin, MarketSnapshot

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(days=9)  # 40 steps: about a year, many months


def _snapshot(coin: str, currency: str, when: datetime, price: float) -> dict:
    return {
        "coin_id": coin,
        "vs_currency": currency,
        "last_updated": when,
        "snapshot_at": when + timedelta(seconds=20),
        "current_price": price,
    }


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    init_db(engine)
    ensure_partitions(engine, "market_snapshots", T0, T0 + STEP * 45)
    rows, coins = [], []
    for c in range(5):
        coin = f"coin-{c}"
        times = [T0 + STEP * i + timedelta(minutes=c) for i in range(40)]
        rows += [_snapshot(coin, "usd", t, 100.0 * c + i) for i, t in enumerate(times)]
        # eur stops 10 steps earlier than usd: its newest lies before last_seen_at
        rows += [_snapshot(coin, "eur", t, 90.0 * c + i) for i, t in enumerate(times[:30])]
        coins.append(
            {
                "id": coin,
                "symbol": f"c{c}",
                "name": f"Coin {c}",
                "first_seen_at": times[0],
                "last_seen_at": times[-1],
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(Coin), coins)
        conn.execute(insert(MarketSnapshot), rows)
    yield engine
    engine.dispose()


def _newest(engine, currency: str) -> dict[str, tuple[datetime, float]]:
    with Session(engine) as session:
        rows, count = queries.list_latest(session, currency)
    assert count == len(rows)
    return {row["coin_id"]: (row["last_updated"], row["current_price"]) for row in rows}


def _expected(engine, currency: str) -> dict[str, tuple[datetime, float]]:
    """The newest row of each coin by reading them all."""
    with Session(engine) as session:
        found: dict[str, tuple[datetime, float]] = {}
        for row in session.query(MarketSnapshot).filter_by(vs_currency=currency):
            if row.coin_id not in found or row.last_updated > found[row.coin_id][0]:
                found[row.coin_id] = (row.last_updated, row.current_price)
    return found


def test_the_newest_snapshot_of_every_coin(engine):
    if engine.dialect.name == "postgresql":
        assert is_partitioned(engine, "market_snapshots")
    newest = _newest(engine, "usd")
    assert newest == _expected(engine, "usd")
    assert newest["coin-3"] == (T0 + STEP * 39 + timedelta(minutes=3), 339.0)


def test_another_currency_ending_before_last_seen_at(engine):
    newest = _newest(engine, "eur")
    assert newest == _expected(engine, "eur")
    assert newest["coin-2"] == (T0 + STEP * 29 + timedelta(minutes=2), 209.0)


def test_rows_written_after_last_seen_at_without_the_loader(engine):
    later = T0 + STEP * 42
    with engine.begin() as conn:
        conn.execute(insert(MarketSnapshot), [_snapshot("coin-1", "usd", later, 7.0)])
    newest = _newest(engine, "usd")
    assert newest["coin-1"] == (later, 7.0)
    assert newest == _expected(engine, "usd")


def test_the_row_at_last_seen_at_removed(engine):
    """Retention (or a hand-written DELETE) removed the row coins.last_seen_at points at."""
    with engine.begin() as conn:
        conn.execute(
            delete(MarketSnapshot).where(
                MarketSnapshot.coin_id == "coin-4",
                MarketSnapshot.last_updated >= T0 + STEP * 35,
            )
        )
    newest = _newest(engine, "usd")
    assert newest["coin-4"] == (T0 + STEP * 34 + timedelta(minutes=4), 434.0)
    assert newest == _expected(engine, "usd")


def test_last_seen_at_pointing_at_an_older_row(engine):
    """A coins row whose last_seen_at lags (written by hand): the newest row still wins."""
    with engine.begin() as conn:
        conn.execute(
            update(Coin)
            .where(Coin.id == "coin-0")
            .values(last_seen_at=T0 + STEP * 10 + timedelta(minutes=0))
        )
    newest = _newest(engine, "usd")
    assert newest["coin-0"] == (T0 + STEP * 39, 39.0)
    assert newest == _expected(engine, "usd")


def test_a_coin_without_snapshots_is_not_listed(engine):
    with engine.begin() as conn:
        conn.execute(
            insert(Coin),
            [{"id": "new", "symbol": "n", "name": "New", "first_seen_at": T0, "last_seen_at": T0}],
        )
    assert "new" not in _newest(engine, "usd")
