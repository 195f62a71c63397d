"""The API tests' seeded database, shared by test_api*.py: the real 250-coin /coins/markets
response as one pipeline run, plus hourly snapshots of three coins before it, backfilled daily
points and stored candles; the fixtures `seeded_url` and `client` (a TestClient of the seeded API),
registered for every test module by conftest's pytest_plugins."""

from __future__ import annotations

import json
import math
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import DATA, empty_tables
from sqlalchemy import insert

from crypto_etl.settings import Settings
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.rollup import rebuild
from crypto_etl.storage.schema import Base, Coin, EtlRun, MarketSnapshot, Ohlc, PriceHistory

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

FETCHED_AT = datetime(2023, 7, 28, 20, 5, tzinfo=UTC)
BTC_UPDATED = datetime(2023, 7, 28, 20, 3, 29, 93000, tzinfo=UTC)
HOURLY = ("bitcoin", "ethereum", "tether")
HOURS = 48
START = "2023-07-01T00:00:00Z"
END = "2023-07-29T00:00:00Z"
API_KEY = "s3cret-key"


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _snapshot(raw: dict, run_id: int) -> dict:
    numbers = {
        k: float(v) if isinstance(v, int | float) and k != "market_cap_rank" else v
        for k, v in raw.items()
    }
    roi = raw["roi"] or {}
    return {
        **{c.key: numbers.get(c.key) for c in MarketSnapshot.__table__.columns},
        "coin_id": raw["id"],
        "vs_currency": "usd",
        "last_updated": _time(raw["last_updated"]),
        "snapshot_at": FETCHED_AT,
        "ath_date": _time(raw["ath_date"]),
        "atl_date": _time(raw["atl_date"]),
        "roi_times": roi.get("times"),
        "roi_currency": roi.get("currency"),
        "roi_percentage": roi.get("percentage"),
        "run_id": run_id,
    }


def seed(url: str) -> None:
    markets = json.loads((DATA / "coins_markets_usd_250.json").read_text())
    engine = make_engine(url)
    runs = [
        dict(command="run", status="success", started_at=FETCHED_AT, rows_loaded=250),
        dict(command="backfill", status="failed", started_at=FETCHED_AT + timedelta(minutes=1)),
        dict(command="run", status="partial", started_at=FETCHED_AT + timedelta(minutes=2)),
    ]
    for run in runs:
        run.update(
            finished_at=run["started_at"] + timedelta(seconds=30),
            vs_currency="usd",
            rows_extracted=run.get("rows_loaded", 0),
            rows_loaded=run.get("rows_loaded", 0),
            rows_rejected=0,
            rows_skipped=0,
            error_message="CoinGecko answered 429" if run["status"] == "failed" else None,
        )
    snapshots = [_snapshot(raw, run_id=1) for raw in markets]
    latest = {row["coin_id"]: row for row in snapshots}
    for coin in HOURLY:
        base = latest[coin]
        for hour in range(1, HOURS + 1):
            factor = 1 + 0.01 * math.sin(hour) * (HOURLY.index(coin) + 1)
            snapshots.append(
                {
                    **base,
                    "last_updated": base["last_updated"] - timedelta(hours=hour),
                    "current_price": base["current_price"] * factor,
                    "market_cap": base["market_cap"] * factor,
                }
            )
    snapshots.append({**latest["bitcoin"], "vs_currency": "eur", "current_price": 26500.0})
    days = [
        BTC_UPDATED.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=d)
        for d in range(3, 28)
    ]
    history = [
        dict(
            coin_id="bitcoin",
            vs_currency="usd",
            ts=day,
            price=29000.0 + 10 * i,
            market_cap=5.6e11,
            total_volume=7e9,
            granularity="1d",
            run_id=2,
        )
        for i, day in enumerate(sorted(days))
    ]
    candles = [
        dict(
            coin_id="bitcoin",
            vs_currency="usd",
            interval="4h",
            ts=datetime(2023, 7, 28, 4 * k, tzinfo=UTC),
            open=29000.0 + k,
            high=29100.0 + k,
            low=28900.0 + k,
            close=29050.0 + k,
        )
        for k in range(6)
    ]
    coins = [
        dict(
            id=raw["id"],
            symbol=raw["symbol"],
            name=raw["name"],
            image=raw["image"],
            first_seen_at=FETCHED_AT - timedelta(days=30),
            last_seen_at=FETCHED_AT,
        )
        for raw in markets
    ]
    with engine.begin() as conn:
        conn.execute(insert(EtlRun), runs)
        conn.execute(insert(Coin), coins)
        conn.execute(insert(MarketSnapshot), snapshots)
        conn.execute(insert(PriceHistory), history)
        conn.execute(insert(Ohlc), candles)
    # Rows written by hand, not through the bulk writer: the hourly rollup is filled after them
    # (as `python etl.py rollup --rebuild` does), so hourly and daily answers come from it.
    rebuild(engine)
    engine.dispose()


class PgRows:
    """Every row of a PostgreSQL database's tables and its sequences' positions, taken once
    (binary COPY) and put back into the emptied tables in a fraction of what seeding costs."""

    def __init__(self, url: str) -> None:
        self.tables: list[tuple[str, bytes]] = []
        engine = make_engine(url)
        with engine.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()
            for table in Base.metadata.sorted_tables:  # parents before children (foreign keys)
                data = bytearray()
                with cursor.copy(
                    f'COPY (SELECT * FROM "{table.name}") TO STDOUT (FORMAT BINARY)'
                ) as copy:
                    for block in copy:
                        data += block
                self.tables.append((table.name, bytes(data)))
            self.sequences = cursor.execute(
                "SELECT format('%I.%I', schemaname, sequencename), last_value"
                " FROM pg_sequences WHERE last_value IS NOT NULL"
            ).fetchall()
        engine.dispose()

    def restore(self, url: str) -> None:
        """Into the database at `url`, whose tables are empty (the pg_url fixture)."""
        engine = make_engine(url)
        with engine.begin() as conn:
            cursor = conn.connection.driver_connection.cursor()
            for name, data in self.tables:
                with cursor.copy(f'COPY "{name}" FROM STDIN (FORMAT BINARY)') as copy:
                    copy.write(data)
            for sequence, value in self.sequences:
                cursor.execute("SELECT setval(%s, %s)", (sequence, value))
        engine.dispose()


@pytest.fixture(scope="session")
def seeded_pg_rows(pg_server_url) -> PgRows:
    """The seeded rows on PostgreSQL, seeded once per session into the session's database."""
    empty_tables(pg_server_url)
    seed(pg_server_url)
    rows = PgRows(pg_server_url)
    empty_tables(pg_server_url)  # empty again, as the test that asked first expects
    return rows


@pytest.fixture(scope="session")
def seeded_sqlite(sqlite_template, tmp_path_factory) -> Path:
    """The seeded SQLite database, seeded once per session."""
    path = tmp_path_factory.mktemp("seeded") / "crypto.db"
    shutil.copyfile(sqlite_template, path)
    seed(f"sqlite:///{path}")
    return path


@pytest.fixture
def seeded_url(request, db_url):
    """`db_url` holding the seed: a copy of the session's seeded database (SQLite) or its rows
    copied back into the emptied tables (PostgreSQL), byte for byte what seed() writes."""
    if db_url.startswith("sqlite"):
        shutil.copyfile(request.getfixturevalue("seeded_sqlite"), db_url.removeprefix("sqlite:///"))
    else:
        request.getfixturevalue("seeded_pg_rows").restore(db_url)
    return db_url


def api_client(url: str, **overrides) -> TestClient:
    # Imported here: this plugin is loaded for every test, also in .venv-airflow, which has no API.
    from fastapi.testclient import TestClient

    from crypto_etl.api.app import create_app

    return TestClient(create_app(Settings(database_url=url, **overrides)))


@pytest.fixture
def client(seeded_url):
    with api_client(seeded_url) as client:
        yield client


def start_run(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(EtlRun).values(
                command="run", status="running", started_at=FETCHED_AT + timedelta(hours=1)
            )
        )
    engine.dispose()
