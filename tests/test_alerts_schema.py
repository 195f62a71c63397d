"""Migration 0007: the alert tables match the models, flags are append-only, and a condition has
at most one open alert; on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, text
from sqlalchemy.exc import DatabaseError, IntegrityError

from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.schema import Alert, AnomalyFlag, Base

ALERT_TABLES = {"alerts", "anomaly_flags", "alert_outbox", "alert_evaluations"}
NOW = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_the_migration_matches_the_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    def table_of(entry) -> str | None:
        for item in entry if isinstance(entry, list) else [entry]:
            for part in item[1:]:
                name = getattr(part, "name", None) if hasattr(part, "columns") else None
                table = getattr(part, "table", None)
                if name in ALERT_TABLES:
                    return name
                if table is not None and getattr(table, "name", None) in ALERT_TABLES:
                    return table.name
                if isinstance(part, str) and part in ALERT_TABLES:
                    return part
        return None

    ours = [entry for entry in diff if table_of(entry)]
    assert ours == []


def _flag(**overrides):
    row = dict(
        rule="price_move",
        source="market_snapshots",
        coin_id="bitcoin",
        vs_currency="usd",
        observed_at=NOW,
        value=1.0,
        expected=0.1,
        score=40.0,
        run_id=1,
        created_at=NOW,
    )
    return {**row, **overrides}


def test_flags_are_never_altered_or_deleted(engine):
    with engine.begin() as conn:
        conn.execute(insert(AnomalyFlag), [_flag()])
    for statement in ("UPDATE anomaly_flags SET value = 2", "DELETE FROM anomaly_flags"):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM anomaly_flags")).scalar_one() == 1.0


def _alert(state: str) -> dict:
    return dict(
        condition="run_failed:run",
        kind="run_failed",
        state=state,
        summary="run 1 failed",
        opened_at=NOW,
        last_seen_at=NOW,
        details={},
        run_ids=[1],
        coin_ids=[],
    )


def test_one_open_alert_per_condition(engine):
    with engine.begin() as conn:
        conn.execute(insert(Alert), [_alert("resolved"), _alert("resolved"), _alert("open")])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(Alert), [_alert("open")])
