"""history_fetches: when each coin's history was last asked for

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

One row per coin, currency, table (price_history or ohlc) and granularity: the range last asked
of CoinGecko, when, and the newest point its answer held. The backfill and the candle refresh skip
a request for what is newer than the stored data when its granularity's step has not elapsed since
the same was asked for (CoinGecko cannot have anything newer yet).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "history_fetches",
        sa.Column("coin_id", sa.String(length=200), nullable=False),
        sa.Column("vs_currency", sa.String(length=20), nullable=False),
        sa.Column("table_name", sa.String(length=20), nullable=False),
        sa.Column("granularity", sa.String(length=10), nullable=False),
        sa.Column("range_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("range_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("newest_point", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("coin_id", "vs_currency", "table_name", "granularity"),
    )


def downgrade() -> None:
    op.drop_table("history_fetches")
