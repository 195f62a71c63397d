"""history_hourly: the hourly rollup of the history tables, and rollup_state

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29

`history_hourly` holds per coin, currency and UTC hour the point the history API keeps for that
hour from market_snapshots and price_history merged (crypto_etl.storage.rollup); hourly and daily
answers are read from it. On PostgreSQL it is RANGE partitioned by month like the history tables
(crypto_etl.storage.partitions), with the months around now and a DEFAULT partition.

`rollup_state` says whether the rollup holds every hour: true on a database without history,
false on one that holds history already, until `python etl.py rollup --rebuild` has filled it.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from crypto_etl.storage.partitions import create_default_partition, ensure_partitions

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    op.create_table(
        "history_hourly",
        sa.Column("coin_id", sa.String(length=200), nullable=False),
        sa.Column("vs_currency", sa.String(length=20), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("market_cap", sa.Double(), nullable=True),
        sa.Column("total_volume", sa.Double(), nullable=True),
        sa.Column("ms_ties", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("coin_id", "vs_currency", "ts"),
        **({"postgresql_partition_by": "RANGE (ts)"} if postgresql else {}),
    )
    if postgresql:
        create_default_partition(bind, "history_hourly")
        now = bind.execute(sa.text("SELECT now()")).scalar_one()
        ensure_partitions(bind, "history_hourly", now, now, now=now)
    state = op.create_table(
        "rollup_state",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    populated = any(
        bind.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar()
        for table in ("market_snapshots", "price_history")
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        state,
        [{"name": "history_hourly", "complete": not populated, "updated_at": now}],
    )


def downgrade() -> None:
    op.drop_table("rollup_state")
    op.drop_table("history_hourly")  # its partitions go with it
