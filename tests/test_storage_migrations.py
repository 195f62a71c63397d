"""Migration 0002: the API's read-only PostgreSQL role can select and cannot write.

Roles are cluster-wide: each test run uses a role name of its own and drops it afterwards, after
the databases it was granted on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime

import pytest
from conftest import ADMIN_URL
from helpers import head_revision
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import ProgrammingError

from crypto_etl.errors import ConfigError
from crypto_etl.storage.engine import init_db, make_engine

PASSWORD = "s3cret'with%odd\\chars"


@pytest.fixture
def admin(pg_server_url):
    """An autocommit superuser engine (pg_server_url only for its skip-or-fail on no server)."""
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def role_name(admin):
    name = f"crypto_api_test_{uuid.uuid4().hex[:10]}"
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))


@pytest.fixture
def new_database(admin, role_name):
    """A factory of empty databases, dropped at the end (before the role, which depends on them)."""
    names = []

    def create() -> str:
        name = f"crypto_etl_role_test_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return admin.url.set(database=name).render_as_string(hide_password=False)

    yield create
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrate(url: str) -> str:
    engine = make_engine(url)
    try:
        return init_db(engine)
    finally:
        engine.dispose()


def as_role(url: str, role: str):
    """An engine logged in as `role` (the test server trusts local logins)."""
    return create_engine(
        make_url(url).set(username=role, password=PASSWORD), isolation_level="AUTOCOMMIT"
    )


def scram_matches(stored: str, password: str) -> bool:
    """Whether PostgreSQL's SCRAM-SHA-256 verifier `stored` was made from `password`."""
    method, rest = stored.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return method == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == base64.b64decode(
        stored_key
    )


def stored_password(admin, role: str) -> str | None:
    with admin.connect() as conn:
        return conn.execute(
            text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": role}
        ).scalar_one()


@pytest.fixture
def migrated_with_role(monkeypatch, new_database, role_name):
    monkeypatch.setenv("API_DB_USER", role_name)
    monkeypatch.setenv("API_DB_PASSWORD", PASSWORD)
    url = new_database()
    assert migrate(url) == head_revision()
    owner = create_engine(url)
    now = datetime.now(UTC)
    with owner.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO market_snapshots (coin_id, vs_currency, last_updated, snapshot_at,"
                " current_price) VALUES ('bitcoin', 'usd', :now, :now, 111688)"
            ),
            {"now": now},
        )
    owner.dispose()
    return url


WRITES = [
    "INSERT INTO market_snapshots (coin_id, vs_currency, last_updated, snapshot_at, current_price)"
    " VALUES ('ethereum', 'usd', now(), now(), 1)",
    "UPDATE market_snapshots SET current_price = 0",
    "DELETE FROM market_snapshots",
    "TRUNCATE market_snapshots",
    "CREATE TABLE sneaky (id int)",
    "DROP TABLE market_snapshots",
]


@pytest.mark.postgres
def test_api_role_selects_but_cannot_write(migrated_with_role, role_name):
    reader = as_role(migrated_with_role, role_name)
    try:
        with reader.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == role_name
            count = conn.execute(text("SELECT count(*) FROM market_snapshots")).scalar_one()
            assert count == 1
            for table in ("coins", "etl_runs", "rejected_rows", "price_history", "ohlc"):
                conn.execute(text(f"SELECT count(*) FROM {table}"))
            for statement in WRITES:
                with pytest.raises(ProgrammingError, match=r"permission denied|must be owner"):
                    conn.execute(text(statement))
    finally:
        reader.dispose()


@pytest.mark.postgres
def test_tables_created_later_by_the_owner_are_readable(migrated_with_role, role_name):
    owner = create_engine(migrated_with_role)
    with owner.begin() as conn:
        conn.execute(text("CREATE TABLE added_later (id int)"))
        conn.execute(text("INSERT INTO added_later VALUES (7)"))
    owner.dispose()
    reader = as_role(migrated_with_role, role_name)
    try:
        with reader.connect() as conn:
            assert conn.execute(text("SELECT id FROM added_later")).scalar_one() == 7
    finally:
        reader.dispose()


@pytest.mark.postgres
def test_existing_role_gets_the_new_password(
    monkeypatch, migrated_with_role, admin, role_name, new_database
):
    first = stored_password(admin, role_name)
    assert scram_matches(first, PASSWORD)  # quotes, % and backslashes arrive unchanged

    # A second database in the same cluster, a new password: the role is updated, not duplicated.
    monkeypatch.setenv("API_DB_PASSWORD", "another-password")
    migrate(new_database())
    second = stored_password(admin, role_name)
    assert scram_matches(second, "another-password")
    with admin.connect() as conn:
        can_login = conn.execute(
            text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": role_name}
        ).scalar_one()
    assert can_login


@pytest.mark.postgres
def test_without_the_variables_no_role_is_made(monkeypatch, new_database, admin, role_name):
    monkeypatch.delenv("API_DB_USER", raising=False)
    monkeypatch.delenv("API_DB_PASSWORD", raising=False)
    assert migrate(new_database()) == head_revision()
    monkeypatch.setenv("API_DB_USER", role_name)  # a password alone is not enough either
    assert migrate(new_database()) == head_revision()
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role_name})
        assert found.first() is None


@pytest.mark.postgres
def test_the_migrating_user_cannot_be_the_api_role(monkeypatch, new_database):
    monkeypatch.setenv("API_DB_USER", "postgres")
    monkeypatch.setenv("API_DB_PASSWORD", PASSWORD)
    with pytest.raises(ConfigError, match="API_DB_USER must name a role of its own"):
        migrate(new_database())


def test_sqlite_ignores_the_role(monkeypatch, tmp_path):
    monkeypatch.setenv("API_DB_USER", "crypto_api")
    monkeypatch.setenv("API_DB_PASSWORD", PASSWORD)
    assert migrate(f"sqlite:///{tmp_path / 'crypto.db'}") == head_revision()
