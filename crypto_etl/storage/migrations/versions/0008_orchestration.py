"""runs started by an orchestrator, and a call budget shared by every process

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

`etl_runs.orchestrator_run_id` names the orchestrator's run that started a run (Airflow's
`dag_id/run_id/task_id[map_index]`), empty for runs started from the command line or `schedule`.
`rate_limits` holds one row per shared call budget (for example CoinGecko's calls per minute):
the time the next call may start, claimed by one conditional upsert so that tasks on several
workers and machines stay within the budget together (crypto_etl.storage.rate_limit). That time is
kept in seconds since the Unix epoch (a double), so that both backends add the interval in SQL at
full precision (SQLite has no interval arithmetic on its stored datetimes).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("etl_runs") as batch:
        batch.add_column(sa.Column("orchestrator_run_id", sa.String(500), nullable=True))
    op.create_table(
        "rate_limits",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("next_slot_unix_seconds", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE etl_runs DROP COLUMN orchestrator_run_id")
    else:
        op.drop_column("etl_runs", "orchestrator_run_id")
