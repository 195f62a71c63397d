"""one index for market_snapshots on PostgreSQL: the primary key carries the history columns

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

The primary key (coin_id, vs_currency, last_updated) and 0003's ix_market_snapshots_history had
the same key columns, so every loaded row was written into two B-trees of the same order. The
primary key now INCLUDEs the price, market cap and volume, so it alone serves a coin's history as
an index-only scan, and the separate index is dropped (bench/results/index.md: loads faster, the
history as fast). SQLite keeps its primary key as it is.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = "coin_id, vs_currency, last_updated"
HISTORY_INCLUDE = "current_price, market_cap, total_volume"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE market_snapshots DROP CONSTRAINT market_snapshots_pkey, "
        f"ADD CONSTRAINT market_snapshots_pkey PRIMARY KEY ({KEY}) INCLUDE ({HISTORY_INCLUDE})"
    )
    op.drop_index("ix_market_snapshots_history", table_name="market_snapshots")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE INDEX ix_market_snapshots_history ON market_snapshots ({KEY}) "
        f"INCLUDE ({HISTORY_INCLUDE})"
    )
    op.execute(
        "ALTER TABLE market_snapshots DROP CONSTRAINT market_snapshots_pkey, "
        f"ADD CONSTRAINT market_snapshots_pkey PRIMARY KEY ({KEY})"
    )
