"""The models (crypto_etl.storage.schema, re-exported by models.py) and the migrations describe the
same schema, and every migration can be undone and redone on a database holding data, on SQLite
and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import ADMIN_URL
from sqlalchemy import Index, MetaData, create_engine, insert, inspect, select, text

from crypto_etl.storage.engine import alembic_config, init_db, make_engine
from crypto_etl.storage.partitions import is_partition_name
from crypto_etl.storage.schema import (
    Base,
    Coin,
    EtlRun,
    HistoryFetch,
    MarketSnapshot,
    Ohlc,
    PriceHistory,
    RejectedRow,
    on_backend,
)

T = datetime(2025, 10, 28, 8, 0, tzinfo=UTC)


def differences(engine, metadata: MetaData = Base.metadata) -> list:
    """What `alembic revision --autogenerate` would write: the models against the database."""
    with engine.connect() as conn:
        dialect = conn.dialect.name
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": lambda item, name, kind, *_: (
                    on_backend(item, dialect) and not (kind == "table" and is_partition_name(name))
                ),
            },
        )
        return compare_metadata(context, metadata)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """A database with nothing in it (not even migrated), on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("pg_server_url")  # skips (or fails in CI) without a server
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"data_schema_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_the_models_match_a_database_migrated_to_head(db_url):
    engine = make_engine(db_url)
    try:
        assert differences(engine) == []
    finally:
        engine.dispose()


def test_the_comparison_sees_an_index_missing_from_the_models(db_url):
    """The check above is not vacuous: models without one of migration 0003's indexes differ."""
    trimmed = MetaData()
    for table in Base.metadata.tables.values():
        copied = table.to_metadata(trimmed)
        infos = {index.name: index.info for index in table.indexes}
        for index in copied.indexes:  # to_metadata leaves an index's info behind
            index.info.update(infos[index.name])
    ohlc = trimmed.tables["ohlc"]
    ohlc.indexes = {index for index in ohlc.indexes if index.name != "ix_ohlc_ts"}
    extra = trimmed.tables["coins"]
    Index("ix_coins_symbol_not_migrated", extra.c.symbol)
    engine = make_engine(db_url)
    try:
        found = {(kind, index.name) for kind, index in differences(engine, trimmed)}
    finally:
        engine.dispose()
    assert found == {("remove_index", "ix_ohlc_ts"), ("add_index", "ix_coins_symbol_not_migrated")}


def fill(engine) -> dict[str, int]:
    """One or two rows in every table of the head schema; rows per table."""
    rows = {
        Coin: [dict(id="bitcoin", symbol="btc", name="Bitcoin", first_seen_at=T, last_seen_at=T)],
        EtlRun: [dict(command="run", status="success", started_at=T, finished_at=T)],
        MarketSnapshot: [
            dict(
                coin_id=coin,
                vs_currency="usd",
                last_updated=T,
                snapshot_at=T,
                current_price=price,
                run_id=1,
            )
            for coin, price in (("bitcoin", 1e5), ("ethereum", 4e3))
        ],
        RejectedRow: [
            dict(
                run_id=1,
                rule="required",
                reason="no price",
                raw="{}",
                row_hash="0" * 64,
                rejected_at=T,
            )
        ],
        PriceHistory: [
            dict(coin_id="bitcoin", vs_currency="usd", ts=T, price=1e5, granularity="5m")
        ],
        Ohlc: [
            dict(
                coin_id="bitcoin",
                vs_currency="usd",
                interval="30m",
                ts=T,
                open=1.0,
                high=2.0,
                low=0.5,
                close=1.5,
            )
        ],
        HistoryFetch: [
            dict(
                coin_id="bitcoin",
                vs_currency="usd",
                table_name="ohlc",
                granularity="30m",
                range_start=T,
                range_end=T,
                fetched_at=T,
            )
        ],
    }
    with engine.begin() as conn:
        for model, values in rows.items():
            conn.execute(insert(model), values)
    return {model.__tablename__: len(values) for model, values in rows.items()}


def counts(engine, tables) -> dict[str, int]:
    existing = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {
            name: conn.execute(select(text("count(*)")).select_from(text(name))).scalar_one()
            for name in tables
            if name in existing
        }


def test_every_migration_goes_down_to_base_and_up_to_head_on_a_database_holding_data(empty_url):
    engine = make_engine(empty_url)
    config = alembic_config(engine)
    script = ScriptDirectory.from_config(config)
    chain = [rev.revision for rev in script.walk_revisions()]  # head first
    try:
        init_db(engine)
        stored = fill(engine)

        steps = []
        for revision in chain:
            command.downgrade(config, "-1")
            with engine.connect() as conn:
                steps.append((revision, MigrationContext.configure(conn).get_current_revision()))
            # The tables still there keep their rows: a migration drops only what it made.
            survivors = counts(engine, stored)
            assert survivors == {name: stored[name] for name in survivors}, revision
        assert [to for _, to in steps] == [*chain[1:], None]
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        for revision in reversed(chain):  # up again, one migration at a time
            command.upgrade(config, revision)
        assert differences(engine) == []
        assert fill(engine) == stored  # the schema takes data again
        assert counts(engine, stored) == stored
    finally:
        engine.dispose()
