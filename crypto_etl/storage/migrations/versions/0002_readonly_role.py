"""read-only database role for the API

On PostgreSQL, when API_DB_USER and API_DB_PASSWORD are set, creates that LOGIN role (or sets its
password when it exists) and lets it read every table of the public schema, including tables the
migrating user creates later. The API connects as this role, so it can select but never write.
Without those variables, and on SQLite, this migration does nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crypto_etl.errors import ConfigError

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _readonly_role() -> tuple[str, str] | None:
    """(user, password) from the environment, or None when this database has no API role."""
    if op.get_bind().dialect.name != "postgresql":
        return None
    user = os.environ.get("API_DB_USER", "").strip()
    password = os.environ.get("API_DB_PASSWORD", "")
    if not user or not password:
        return None
    return user, password


def upgrade() -> None:
    role = _readonly_role()
    if role is None:
        return
    user, password = role
    bind = op.get_bind()
    owner, database = bind.execute(sa.text("SELECT current_user, current_database()")).one()
    if user == owner:
        raise ConfigError(
            f"API_DB_USER must name a role of its own, not the migrating user {owner!r}"
        )
    exists = bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :u"), {"u": user}).first()
    # Role statements take no bind parameters: let the server quote the name and the password.
    statement = (
        "ALTER ROLE %I WITH LOGIN PASSWORD %L" if exists else "CREATE ROLE %I LOGIN PASSWORD %L"
    )
    ddl = bind.execute(
        sa.text("SELECT format(CAST(:statement AS text), CAST(:u AS text), CAST(:p AS text))"),
        {"statement": statement, "u": user, "p": password},
    ).scalar_one()
    # Straight to the driver: its placeholder parsing would choke on a % in the password.
    with bind.connection.dbapi_connection.cursor() as cursor:
        cursor.execute(ddl)

    q = bind.dialect.identifier_preparer.quote
    for grant in (
        f"GRANT CONNECT ON DATABASE {q(database)} TO {q(user)}",
        f"GRANT USAGE ON SCHEMA public TO {q(user)}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {q(user)}",
        # Tables the migrating user creates in later migrations are readable too.
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {q(user)}",
    ):
        bind.exec_driver_sql(grant)


def downgrade() -> None:
    """Revoke what upgrade granted in this database; the role is cluster-wide and stays."""
    role = _readonly_role()
    if role is None:
        return
    user, _ = role
    bind = op.get_bind()
    if not bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :u"), {"u": user}).first():
        return
    database = bind.execute(sa.text("SELECT current_database()")).scalar_one()
    q = bind.dialect.identifier_preparer.quote
    for revoke in (
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM {q(user)}",
        f"REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM {q(user)}",
        f"REVOKE USAGE ON SCHEMA public FROM {q(user)}",
        f"REVOKE CONNECT ON DATABASE {q(database)} FROM {q(user)}",
    ):
        bind.exec_driver_sql(revoke)
