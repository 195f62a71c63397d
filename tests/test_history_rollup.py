"""The hourly rollup (crypto_etl.storage.rollup) on both backends: kept by the bulk writer in the
write's transaction, equal to a rebuild from scratch, consistent after retention, and the history
API's answers from it byte for byte the answers from the raw rows (random data with both tables
overlapping, missing values, partial hours at both ends, ties within a millisecond, empty
ranges); a populated database stays on the raw rows until `rollup --rebuild` has filled it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text, update

from crypto_etl.analytics import series
from crypto_etl.analytics.series import hourly_points
from crypto_etl.api.app import create_app
from crypto_etl.pipeline.history_store import rebuild_rollup, run_retention
from crypto_etl.settings import Settings
from crypto_etl.storage.bulk import Rows, append_skip_existing, write_transaction
from crypto_etl.storage.engine import alembic_config, make_engine
from crypto_etl.storage.rollup import rebuild, status
from crypto_etl.storage.schema import Coin, HistoryHourly, MarketSnapshot, PriceHistory, RollupState

T0 = datetime(2026, 3, 30, 21, 0, tzinfo=UTC)  # the data spans a month's end
SPAN_HOURS = 80
SNAPSHOT_COLUMNS = (
    "coin_id",
    "vs_currency",
    "last_updated",
    "snapshot_at",
    "current_price",
    "market_cap",
    "total_volume",
)
HISTORY_COLUMNS = (
    "coin_id",
    "vs_currency",
    "ts",
    "price",
    "market_cap",
    "total_volume",
    "granularity",
)


def _maybe(rng: random.Random, value: float, missing: float = 0.2) -> float | None:
    return None if rng.random() < missing else value


def random_points(seed: int) -> tuple[list[tuple], list[tuple]]:
    """Snapshots and backfilled points of two coins: whole milliseconds, some on hour
    boundaries and half a millisecond either side, price_history sharing many of the snapshots'
    times, missing market caps and volumes, price points without a price."""
    rng = random.Random(seed)
    snapshots, history = [], []
    for coin in ("alpha", "beta"):
        times: set[datetime] = set()
        for _ in range(rng.randint(150, 400)):
            ms = rng.randrange(0, SPAN_HOURS * 3_600_000)
            if rng.random() < 0.15:  # on an hour boundary, or within a millisecond of one
                ms = ms // 3_600_000 * 3_600_000 + rng.choice((0, -1, 1))
            times.add(T0 + timedelta(milliseconds=max(ms, 0)))
        for moment in sorted(times):
            price = round(rng.uniform(1, 100), 6)
            in_snapshots = rng.random() < 0.6
            in_history = not in_snapshots or rng.random() < 0.4  # both: overlapping sources
            if in_snapshots:
                snapshots.append(
                    (
                        coin,
                        "usd",
                        moment,
                        moment,
                        price,
                        _maybe(rng, price * 1e6),
                        _maybe(rng, price * 1e4),
                    )
                )
            if in_history:
                history.append(
                    (
                        coin,
                        "usd",
                        moment,
                        _maybe(rng, price + 0.5, 0.15),
                        _maybe(rng, price * 2e6),
                        _maybe(rng, price * 3e4),
                        "5m",
                    )
                )
    return snapshots, history


def write(engine, snapshots: list[tuple], history: list[tuple], rng: random.Random) -> None:
    """Through the one bulk writer, in several loads of shuffled chunks (the rollup is kept
    incrementally, hours touched more than once)."""
    batches = [
        (MarketSnapshot, SNAPSHOT_COLUMNS, snapshots),
        (PriceHistory, HISTORY_COLUMNS, history),
    ]
    chunks = []
    for model, columns, rows in batches:
        rows = list(rows)
        rng.shuffle(rows)
        for k in range(0, len(rows), 97):
            chunks.append((model, columns, rows[k : k + 97]))
    rng.shuffle(chunks)
    with engine.begin() as conn:
        known = {row[0] for row in conn.execute(select(Coin.id))}
        coins = sorted({row[0] for row in snapshots + history} - known)
        if coins:
            conn.execute(
                insert(Coin),
                [
                    {"id": c, "symbol": c[:3], "name": c, "first_seen_at": T0, "last_seen_at": T0}
                    for c in coins
                ],
            )
    for model, columns, rows in chunks:
        with write_transaction(engine, "test load") as conn:
            append_skip_existing(conn, model.__table__, Rows(columns, rows))


def rollup_rows(engine) -> list[tuple]:
    h = HistoryHourly
    with engine.connect() as conn:
        stmt = select(*h.__table__.columns).order_by(h.coin_id, h.vs_currency, h.ts)
        return [tuple(row) for row in conn.execute(stmt)]


def set_complete(engine, complete: bool) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(RollupState)
            .where(RollupState.name == "history_hourly")
            .values(complete=complete, updated_at=datetime.now(UTC))
        )


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def random_queries(seed: int) -> list[dict]:
    rng = random.Random(seed)
    queries = []
    for k in range(40):
        start = T0 + timedelta(microseconds=rng.randrange(-3_600_000_000, 40 * 3_600_000_000))
        if k % 5 == 0:  # on an hour boundary
            start = start.replace(minute=0, second=0, microsecond=0)
        length = timedelta(microseconds=rng.randrange(1, 60 * 3_600_000_000))
        end = start + length
        if k % 7 == 0:
            end = end.replace(minute=0, second=0, microsecond=0)
        interval = rng.choice(("1h", "1d", "auto"))
        queries.append(
            {
                "coin": rng.choice(("alpha", "beta")),
                "start": iso(start),
                "end": iso(max(end, start)),
                "interval": interval,
                "ma": rng.choice(([2], [3, 7], [7, 30])),
            }
        )
    # a range without points, and a range over everything
    queries.append(
        {
            "coin": "alpha",
            "start": "2020-01-01T00:00:00Z",
            "end": "2020-01-09T00:00:00Z",
            "interval": "1h",
            "ma": [7],
        }
    )
    queries.append(
        {
            "coin": "beta",
            "start": iso(T0 - timedelta(hours=2)),
            "end": iso(T0 + timedelta(hours=SPAN_HOURS + 2)),
            "interval": "1h",
            "ma": [7],
        }
    )
    queries.append(
        {
            "coin": "beta",
            "start": iso(T0 - timedelta(days=1)),
            "end": iso(T0 + timedelta(days=5)),
            "interval": "1d",
            "ma": [2],
        }
    )
    return queries


def answers(url: str, queries: list[dict]) -> list[tuple[int, bytes]]:
    out = []
    settings = Settings(database_url=url, api_cache_check_seconds=0)
    with TestClient(create_app(settings)) as client:
        for q in queries:
            params = {k: v for k, v in q.items() if k != "coin"}
            response = client.get(f"/api/v1/cryptos/{q['coin']}/history", params=params)
            out.append((response.status_code, response.content))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollup_answers_are_the_raw_answers_byte_for_byte(db_url, seed, monkeypatch):
    used = []

    def spy(*args):
        found = hourly_points(*args)
        used.append(found is not None)
        return found

    monkeypatch.setattr(series, "hourly_points", spy)
    engine = make_engine(db_url)
    rebuild(engine)  # an empty database's rollup is complete (the PostgreSQL fixture empties it)
    try:
        snapshots, history = random_points(seed)
        write(engine, snapshots, history, random.Random(seed))
        kept = rollup_rows(engine)
        assert kept and status(engine) == (True, len(kept))

        queries = random_queries(seed)
        from_rollup = answers(db_url, queries)
        assert sum(used) >= len(queries) // 2  # most ranges hold full hours
        set_complete(engine, False)
        from_raw = answers(db_url, queries)
        assert sum(used) == len(used)  # the raw answers never read the rollup
        assert [code for code, _ in from_rollup] == [200] * len(queries)
        for query, rolled, raw in zip(queries, from_rollup, from_raw, strict=True):
            assert rolled == raw, query

        # What the writes kept is what a rebuild from the raw rows makes.
        rebuild(engine)
        assert rollup_rows(engine) == kept
        assert status(engine) == (True, len(kept))
    finally:
        engine.dispose()


def test_a_tie_within_a_millisecond_is_answered_from_the_raw_rows(db_url):
    engine = make_engine(db_url)
    rebuild(engine)  # an empty database's rollup is complete (the PostgreSQL fixture empties it)
    try:
        moment = T0 + timedelta(hours=5, minutes=10)
        snapshots = [
            ("alpha", "usd", moment, moment, 10.0, 1.0, None),
            ("alpha", "usd", moment + timedelta(microseconds=300), moment, 11.0, None, 2.0),
            ("alpha", "usd", moment + timedelta(minutes=20), moment, 12.0, 3.0, 3.0),
        ]
        history = [("alpha", "usd", moment + timedelta(hours=2), 13.0, None, 1.0, "5m")]
        write(engine, snapshots, history, random.Random(0))
        assert [row[6] for row in rollup_rows(engine)] == [True, False]
        queries = [
            {
                "coin": "alpha",
                "start": iso(T0),
                "end": iso(T0 + timedelta(hours=10)),
                "interval": i,
                "ma": [2],
            }
            for i in ("1h", "1d")
        ]
        from_rollup = answers(db_url, queries)
        set_complete(engine, False)
        assert from_rollup == answers(db_url, queries)
    finally:
        engine.dispose()


@pytest.mark.parametrize("mode", ["drop", "hourly"])
def test_retention_keeps_the_rollup_equal_to_a_rebuild(db_url, mode):
    engine = make_engine(db_url)
    rebuild(engine)  # an empty database's rollup is complete (the PostgreSQL fixture empties it)
    try:
        snapshots, history = random_points(7)
        write(engine, snapshots, history, random.Random(7))
        now = T0 + timedelta(days=2, minutes=17, seconds=3)
        run_retention(Settings(database_url=db_url), engine, 1, mode, now=now)
        kept = rollup_rows(engine)
        cutoff = now - timedelta(days=1)
        if mode == "drop":
            assert min(row[2] for row in kept) >= cutoff.replace(minute=0, second=0)
        rebuild(engine)
        assert rollup_rows(engine) == kept
        queries = random_queries(7)
        from_rollup = answers(db_url, queries)
        set_complete(engine, False)
        assert from_rollup == answers(db_url, queries)
    finally:
        engine.dispose()


def test_a_populated_database_reads_raw_rows_until_the_rebuild(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    try:
        config = alembic_config(engine)
        command.upgrade(config, "0009")
        snapshots, history = random_points(5)
        with engine.begin() as conn:  # as an older version stored them: no rollup yet
            conn.execute(
                insert(Coin),
                [
                    {"id": c, "symbol": c, "name": c, "first_seen_at": T0, "last_seen_at": T0}
                    for c in ("alpha", "beta")
                ],
            )
            for model, columns, rows in (
                (MarketSnapshot, SNAPSHOT_COLUMNS, snapshots),
                (PriceHistory, HISTORY_COLUMNS, history),
            ):
                conn.execute(insert(model), [dict(zip(columns, row, strict=True)) for row in rows])
        command.upgrade(config, "head")
        assert status(engine) == (False, 0)
        queries = random_queries(5)
        before = answers(url, queries)  # from the raw rows: the rollup is empty
        assert [code for code, _ in before] == [200] * len(queries)

        done = rebuild_rollup(Settings(database_url=url), engine)
        assert status(engine) == (True, done.rows) and done.rows > 0 and done.pairs == 2
        with engine.connect() as conn:
            run = conn.execute(
                text("SELECT command, status, rows_loaded FROM etl_runs WHERE id = :i"),
                {"i": done.run_id},
            ).one()
        assert tuple(run) == ("rollup", "success", done.rows)
        assert answers(url, queries) == before
    finally:
        engine.dispose()
