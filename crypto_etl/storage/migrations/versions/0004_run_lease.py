"""owner and lease of a running run

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

A run records which process owns it (host, pid, a random token) and a lease its heartbeat renews
(heartbeat_at, lease_expires_at), so that a run whose process is gone can be told from one still
working and closed as `abandoned` (crypto_etl.storage.runs). ix_etl_runs_status finds the running
ones without reading the whole journal.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("etl_runs") as batch:
        batch.add_column(sa.Column("owner_host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("owner_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("owner_token", sa.String(64), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_etl_runs_status", "etl_runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_etl_runs_status", table_name="etl_runs")
    # SQLite (3.35 and newer) drops these plain columns in place; a batch rebuild would drop and
    # recreate etl_runs, which the foreign keys of the tables holding data refuse.
    for column in ("lease_expires_at", "heartbeat_at", "owner_token", "owner_pid", "owner_host"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE etl_runs DROP COLUMN {column}")
        else:
            op.drop_column("etl_runs", column)
