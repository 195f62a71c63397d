"""Monthly partitions of market_snapshots and price_history on the real PostgreSQL: migration 0009,
converting populated tables without losing a row, creating the months a write needs (also with two
writers at once), the default partition, and the schema staying distributable by coin_id."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from conftest import ADMIN_URL
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError
from test_schema_in_step import differences
from test_storage_migrations import (  # noqa: F401  (fixtures)
    admin,
    as_role,
    migrated_with_role,
    new_database,
    role_name,
)

from crypto_etl.api.app import create_app
from crypto_etl.errors import DatabaseError, ETLError
from crypto_etl.pipeline.history_store import partition_tables
from crypto_etl.settings import Settings
from crypto_etl.shaping.history_records import PricePoint
from crypto_etl.storage.bulk import Rows, append_skip_existing, write_transaction
from crypto_etl.storage.engine import alembic_config, make_engine
from crypto_etl.storage.history import store_price_points
from crypto_etl.storage.partitions import (
    convert_to_partitioned,
    ensure_partitions,
    is_partitioned,
    list_partitions,
    month_start,
    table_fingerprint,
)
from crypto_etl.storage.schema import MarketSnapshot

HISTORY_TABLES = ("market_snapshots", "price_history")
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
END = "2026-10-01T00:00:00Z"


@pytest.fixture
def new_pg_url(pg_server_url):
    """A factory of empty PostgreSQL databases of the test's own, dropped at the end."""
    server = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    names: list[str] = []

    def create() -> str:
        name = f"partitions_test_{uuid.uuid4().hex[:10]}"
        with server.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return server.url.set(database=name).render_as_string(hide_password=False)

    yield create
    with server.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


def names(engine, table: str) -> list[str]:
    return [p.name for p in list_partitions(engine, table)]


def fill_months(engine) -> None:
    """Five coins over seven months in both tables (plain SQL, as an older version stored them)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO market_snapshots (coin_id, vs_currency, last_updated, snapshot_at, "
                "current_price, market_cap, total_volume, market_cap_rank) "
                "SELECT 'coin' || (g % 5), CASE WHEN g % 3 = 0 THEN 'eur' ELSE 'usd' END, "
                "timestamptz '2026-01-03 00:00+00' + g * interval '97 minutes', "
                "timestamptz '2026-01-03 00:00+00' + g * interval '97 minutes', "
                "1000 + g, 1e9 + g, 1e6 + g, 1 + g % 5 FROM generate_series(1, 3000) g"
            )
        )
        conn.execute(
            text(
                "INSERT INTO price_history (coin_id, vs_currency, ts, price, market_cap, "
                "total_volume, granularity) "
                "SELECT 'coin' || (g % 5), 'usd', "
                "timestamptz '2025-12-20 00:00+00' + g * interval '1 hour', g * 1.5, NULL, g, "
                "'1h' FROM generate_series(1, 5000) g"
            )
        )


def test_a_fresh_database_gets_partitioned_history_tables_with_months_around_now(pg_url):
    engine = make_engine(pg_url)
    try:
        now = month_start(datetime.now(UTC))
        for table in HISTORY_TABLES:
            assert is_partitioned(engine, table)
            found = names(engine, table)
            assert f"{table}_p{now:%Y%m}" in found
            assert f"{table}_pdefault" in found
        # The same keys and indexes as before, on the partitioned parents.
        with engine.connect() as conn:
            pkey = conn.execute(
                text(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conname = 'market_snapshots_pkey'"
                )
            ).scalar_one()
        assert pkey == (
            "PRIMARY KEY (coin_id, vs_currency, last_updated) "
            "INCLUDE (current_price, market_cap, total_volume)"
        )
        assert differences(engine) == []  # the models match, partitions aside
        assert not is_partitioned(engine, "ohlc")
    finally:
        engine.dispose()


def test_the_read_only_api_role_reads_partitioned_tables_and_their_new_months(request):
    url = request.getfixturevalue("migrated_with_role")  # test_storage_migrations' fixtures
    role = request.getfixturevalue("role_name")
    engine = make_engine(url)
    try:
        old = PricePoint(NOW.replace(year=2020), 1.0, None, None, "1d")
        assert store_price_points(engine, "bitcoin", "usd", [old], 1) == 1
    finally:
        engine.dispose()
    reader = as_role(url, role)
    try:
        with reader.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM price_history")).scalar_one() == 1
            # The month made later is readable by itself too (default privileges).
            assert conn.execute(text("SELECT count(*) FROM price_history_p202011")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM market_snapshots")).scalar_one() == 1
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text("DELETE FROM price_history"))
    finally:
        reader.dispose()


def api_answers(url: str) -> list:
    """What the API answers for a coin's history, its candles and the latest list."""
    with TestClient(create_app(Settings(database_url=url, api_cache_check_seconds=0))) as client:
        out = []
        for path, params in (
            (
                "/api/v1/cryptos/coin1/history",
                {"start": "2026-01-01T00:00:00Z", "end": END, "interval": "raw"},
            ),
            (
                "/api/v1/cryptos/coin2/history",
                {"start": "2026-02-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"},
            ),
            (
                "/api/v1/cryptos/coin3/history",
                {"start": "2026-01-01T00:00:00Z", "end": END, "interval": "1d"},
            ),
            ("/api/v1/cryptos", {"limit": 10}),
        ):
            response = client.get(path, params=params)
            assert response.status_code == 200, response.text
            out.append(response.json())
        return out


def test_a_populated_database_stays_plain_then_converts_without_losing_a_row(new_pg_url, caplog):
    url = new_pg_url()
    engine = make_engine(url)
    try:
        config = alembic_config(engine)
        command.upgrade(config, "0008")
        fill_months(engine)
        with caplog.at_level("WARNING"):
            command.upgrade(config, "head")
        assert not is_partitioned(engine, "market_snapshots")
        assert "python etl.py partition" in caplog.text
        with engine.connect() as conn:
            before = {t: table_fingerprint(conn, t) for t in HISTORY_TABLES}
        answers = api_answers(url)

        done = partition_tables(Settings(database_url=url), engine, batch_rows=700)

        assert {c.table: c.rows for c in done.conversions} == {
            "market_snapshots": 3000,
            "price_history": 5000,
        }
        with engine.connect() as conn:
            after = {t: table_fingerprint(conn, t) for t in HISTORY_TABLES}
            run = conn.execute(
                text("SELECT command, status, rows_loaded, details FROM etl_runs WHERE id = :i"),
                {"i": done.run_id},
            ).one()
            leftovers = conn.execute(
                text(
                    "SELECT count(*) FROM pg_class "
                    "WHERE relname LIKE '%\\_plain' OR relname LIKE '%\\_partitioned'"
                )
            ).scalar_one()
        assert after == before
        assert run[:3] == ("partition", "success", 8000)
        assert '"rows_moved": 3000' in run[3]
        assert leftovers == 0
        for table in HISTORY_TABLES:
            assert is_partitioned(engine, table)
        assert "market_snapshots_p202601" in names(engine, "market_snapshots")
        assert "price_history_p202512" in names(engine, "price_history")
        assert (
            sum(p.rows for p in list_partitions(engine, "price_history", exact_rows=True)) == 5000
        )
        assert api_answers(url) == answers
        assert differences(engine) == []

        again = partition_tables(Settings(database_url=url), engine, batch_rows=700)
        assert again.run_id is None
        assert all(c.already_partitioned for c in again.conversions)

        # Downgrading copies the rows back into plain tables.
        command.downgrade(config, "0008")
        assert not is_partitioned(engine, "price_history")
        with engine.connect() as conn:
            assert {t: table_fingerprint(conn, t) for t in HISTORY_TABLES} == before
    finally:
        engine.dispose()


def test_converting_refuses_sqlite_with_one_line(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        with pytest.raises(ETLError, match="partitioned tables need PostgreSQL"):
            partition_tables(Settings(database_url=sqlite_url), engine, 1000)
        with pytest.raises(DatabaseError, match="need PostgreSQL"):
            convert_to_partitioned(engine, "price_history")
        assert ensure_partitions(engine, "price_history", NOW, NOW) == []
        assert not is_partitioned(engine, "price_history")
    finally:
        engine.dispose()


def test_ensure_partitions_is_idempotent_and_keeps_months_ahead(pg_url):
    engine = make_engine(pg_url)
    try:
        start = datetime(2019, 3, 10, tzinfo=UTC)
        ensure_partitions(engine, "price_history", start, start, ahead_months=3, now=NOW)
        found = names(engine, "price_history")
        wanted = ["price_history_p201903"] + [
            f"price_history_p{m}" for m in ("202611", "202612", "202701", "202702")
        ]
        assert all(name in found for name in wanted)
        again = ensure_partitions(engine, "price_history", start, start, ahead_months=3, now=NOW)
        assert again == []
        assert names(engine, "price_history") == found
    finally:
        engine.dispose()


def test_the_writer_keeps_partitions_ahead_months_ready(pg_url):
    from crypto_etl.storage.engine import Database
    from crypto_etl.storage.partitions import add_months

    engine = Database(pg_url, partitions_ahead_months=5).engine
    try:
        point = PricePoint(datetime(2021, 1, 1, tzinfo=UTC), 1.0, None, None, "1d")
        store_price_points(engine, "bitcoin", "usd", [point], None)
        ahead = add_months(month_start(datetime.now(UTC)), 5)
        assert f"price_history_p{ahead:%Y%m}" in names(engine, "price_history")
    finally:
        engine.dispose()


def test_two_writers_ensuring_the_same_months_at_once_both_succeed(pg_url):
    engine = make_engine(pg_url)
    barrier = threading.Barrier(2)
    results: list = []
    start, end = datetime(2015, 1, 1, tzinfo=UTC), datetime(2016, 6, 1, tzinfo=UTC)

    def writer() -> None:
        barrier.wait()
        try:
            results.append(ensure_partitions(engine, "price_history", start, end, now=NOW))
        except Exception as exc:  # reported below
            results.append(exc)

    try:
        threads = [threading.Thread(target=writer) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(isinstance(r, Exception) for r in results), results
        made = sorted(results[0] + results[1])
        months = [f"price_history_p{y}{m:02d}" for y in (2015, 2016) for m in range(1, 13)]
        wanted = months[:18]
        assert [n for n in made if n in wanted] == wanted  # each month made once, by one writer
        assert all(n in names(engine, "price_history") for n in wanted)
    finally:
        engine.dispose()


def test_loads_two_years_back_and_ahead_create_their_months(pg_url):
    engine = make_engine(pg_url)
    try:
        now = datetime.now(UTC)
        past, future = now - timedelta(days=730), now + timedelta(days=730)
        points = [PricePoint(t, 1.0, 2.0, 3.0, "1h") for t in (past, future)]
        assert store_price_points(engine, "bitcoin", "usd", points, 1) == 2
        columns = ("coin_id", "vs_currency", "last_updated", "snapshot_at", "current_price")
        rows = [("bitcoin", "usd", t, t, 1.0) for t in (past, future)]
        with write_transaction(engine, "test load") as conn:
            assert append_skip_existing(conn, MarketSnapshot.__table__, Rows(columns, rows)) == 2
        for table in HISTORY_TABLES:
            found = names(engine, table)
            assert f"{table}_p{past:%Y%m}" in found and f"{table}_p{future:%Y%m}" in found
            with engine.connect() as conn:
                stray = conn.execute(text(f"SELECT count(*) FROM {table}_pdefault")).scalar_one()
            assert stray == 0  # the writer never needs the default partition
    finally:
        engine.dispose()


def test_rows_written_outside_the_pipeline_wait_in_the_default_partition_until_their_month(pg_url):
    engine = make_engine(pg_url)
    try:
        moment = datetime(2012, 5, 6, 7, 8, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO price_history (coin_id, vs_currency, ts, granularity) "
                    "VALUES ('bitcoin', 'usd', :t, '1d'), ('ether', 'usd', :t, '1d')"
                ),
                {"t": moment},
            )
            assert conn.execute(text("SELECT count(*) FROM price_history_pdefault")).scalar() == 2
        assert ensure_partitions(engine, "price_history", moment, moment, now=NOW)[0] == (
            "price_history_p201205"
        )
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM price_history_pdefault")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM price_history_p201205")).scalar() == 2
    finally:
        engine.dispose()


# -- staying distributable by coin_id (Citus) ----------------------------------------------------

# The tables that would be distributed by coin_id; `coins` would be a reference table (copied to
# every node), the run journal, alerts and the quarantine stay on the coordinator.
DISTRIBUTED = ("market_snapshots", "price_history", "ohlc", "history_fetches")


def test_every_key_of_the_tables_to_distribute_holds_coin_id(pg_url):
    """Citus can distribute a table by a column only when every primary key and unique constraint
    or index of the table contains that column; read from the live catalog at head."""
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT t.relname, i.relname, array_agg(a.attname::text) "
                    "FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid "
                    "JOIN pg_class i ON i.oid = x.indexrelid "
                    "JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public' "
                    "JOIN pg_attribute a ON a.attrelid = t.oid "
                    "AND a.attnum = ANY (x.indkey[0:x.indnkeyatts - 1]) "
                    "WHERE (x.indisunique OR x.indisprimary) AND t.relname = ANY(:tables) "
                    "GROUP BY t.relname, i.relname"
                ),
                {"tables": list(DISTRIBUTED)},
            ).all()
        assert {table for table, _, _ in rows} == set(DISTRIBUTED)
        missing = [(t, i, cols) for t, i, cols in rows if "coin_id" not in cols]
        assert missing == []
    finally:
        engine.dispose()


def test_every_month_of_the_history_tables_finds_one_runs_rows_by_a_brin_index(pg_url):
    """The alert check starts from the rows of one run (alerts.store.run_series): each partition,
    those made later included, has migration 0011's BRIN index on run_id, and that query reads
    through it rather than through the whole table."""
    engine = make_engine(pg_url)
    try:
        later = datetime(2031, 5, 1, tzinfo=UTC)
        for table in HISTORY_TABLES:
            assert ensure_partitions(engine, table, later, later, now=NOW)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO market_snapshots (coin_id, vs_currency, last_updated, "
                    "snapshot_at, current_price, run_id) SELECT 'coin' || (g % 7), 'usd', "
                    "timestamptz '2031-05-02 00:00+00' + g * interval '5 minutes', "
                    "timestamptz '2031-05-02 00:00+00', 1.0, g / 100 "
                    "FROM generate_series(1, 2000) g"
                )
            )
            for table in HISTORY_TABLES:
                rows = conn.execute(
                    text(
                        "SELECT c.relname, am.amname, pg_get_indexdef(ix.indexrelid) "
                        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                        "JOIN pg_index ix ON ix.indrelid = c.oid "
                        "JOIN pg_class ic ON ic.oid = ix.indexrelid "
                        "JOIN pg_am am ON am.oid = ic.relam "
                        "WHERE i.inhparent = to_regclass(:t) AND am.amname = 'brin'"
                    ),
                    {"t": table},
                ).all()
                assert sorted(name for name, *_ in rows) == sorted(names(engine, table))
                assert all("(run_id)" in definition for *_, definition in rows)
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(
                conn.execute(
                    text(
                        "EXPLAIN SELECT coin_id, vs_currency, min(last_updated) "
                        "FROM market_snapshots WHERE run_id = 12 GROUP BY coin_id, vs_currency"
                    )
                ).scalars()
            )
        assert "Bitmap Index Scan on market_snapshots_p203105_run_id_idx" in plan
        assert "Seq Scan" not in plan
    finally:
        engine.dispose()
