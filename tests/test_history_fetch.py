"""The time-series reads on PostgreSQL come packed, one binary value per table
(storage.queries._packed_statement): the matrix is the one a row-by-row fetch of the same
statement gives, NULL and NaN as NaN, rows in the same order, on random data with gaps, missing
values and points in both tables or in one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from crypto_etl.storage import queries
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.schema import Coin, MarketSnapshot, Ohlc, PriceHistory

START = datetime(2024, 3, 1, tzinfo=UTC)


def _maybe(rng: np.random.Generator, value: float, missing: float) -> float | None:
    roll = rng.random()
    if roll < missing:
        return None
    if roll < missing * 1.5:
        return float("nan")
    return value


def _seed(url: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    micros = np.sort(rng.choice(3 * 86_400_000_000, 700, replace=False))
    times = [START + timedelta(microseconds=int(m)) for m in micros]
    backfill = [START + timedelta(hours=int(h)) for h in rng.choice(72, 40, replace=False)]
    times[:5] = backfill[:5]  # the same instant in both tables
    snapshots = [
        {
            "coin_id": "bitcoin",
            "vs_currency": "usd",
            "last_updated": t,
            "snapshot_at": t,
            "current_price": float(rng.uniform(1e-9, 1e5)),
            "market_cap": _maybe(rng, float(rng.uniform(0, 1e12)), 0.2),
            "total_volume": _maybe(rng, float(rng.uniform(0, 1e11)), 0.2),
            "high_24h": _maybe(rng, 2.0, 0.2),
            "low_24h": _maybe(rng, 1.0, 0.2),
            "price_change_24h": _maybe(rng, -0.5, 0.2),
        }
        for t in times
    ]
    history = [
        {
            "coin_id": "bitcoin",
            "vs_currency": "usd",
            "ts": t,
            "price": _maybe(rng, float(rng.uniform(1e-9, 1e5)), 0.1),
            "market_cap": _maybe(rng, float(rng.uniform(0, 1e12)), 0.2),
            "total_volume": _maybe(rng, 3.5, 0.2),
            "granularity": "1h",
        }
        for t in backfill
    ]
    candles = [
        {"coin_id": "bitcoin", "vs_currency": "usd", "interval": "4h", "ts": t}
        | dict(zip(("open", "high", "low", "close"), rng.uniform(1, 2, 4).tolist(), strict=True))
        for t in backfill
    ]
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(Coin),
            [
                {"id": "bitcoin", "symbol": "btc", "name": "Bitcoin"}
                | dict.fromkeys(("first_seen_at", "last_seen_at"), START)
            ],
        )
        conn.execute(insert(MarketSnapshot), snapshots)
        conn.execute(insert(PriceHistory), history)
        conn.execute(insert(Ohlc), candles)
    engine.dispose()


def _row_by_row(session: Session, name: str, params: dict) -> np.ndarray:
    """The matrix as read before the packed form: one tuple per row, None as NaN."""
    stmt = queries.SERIES[name]
    rows = [tuple(row) for row in session.execute(stmt, params).all()]
    matrix = np.array(rows, dtype="float64").reshape(-1, len(stmt.selected_columns))
    column = 1 if name == "points" else 0
    return matrix[np.argsort(matrix[:, column], kind="stable")]


@pytest.mark.parametrize("seed", range(3))
def test_packed_fetch_is_the_row_by_row_matrix(pg_url, seed):
    _seed(pg_url, seed)
    engine = make_engine(pg_url)
    ranges = [
        (START, START + timedelta(days=3)),
        (START + timedelta(hours=5, microseconds=7), START + timedelta(hours=40)),
        (START + timedelta(minutes=1), START + timedelta(minutes=59)),  # snapshots only
        (START - timedelta(days=9), START - timedelta(days=1)),  # nothing in range
    ]
    with Session(engine) as session:
        for start, end in ranges:
            base = {"coin_id": "bitcoin", "vs_currency": "usd", "start": start, "end": end}
            for name, params in (
                ("points", base),
                ("snapshot_24h", base),
                ("ohlc", base | {"interval": "4h"}),
            ):
                packed = queries._float_matrix(session, name, params)
                expected = _row_by_row(session, name, params)
                assert packed.dtype == np.float64
                assert packed.shape == expected.shape
                np.testing.assert_array_equal(packed, expected)  # NaN where NaN, bit for bit
    engine.dispose()
