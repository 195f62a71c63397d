"""indexes for the REST API

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

- ix_market_snapshots_history (PostgreSQL only): the history of one coin in a time range as an
  index-only scan, the price, market cap and volume being carried in the index.
- ix_price_history_ts and ix_ohlc_ts: the newest row of each table (/api/v1/freshness, /metrics)
  without reading the table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HISTORY_INCLUDE = ["current_price", "market_cap", "total_volume"]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_market_snapshots_history",
            "market_snapshots",
            ["coin_id", "vs_currency", "last_updated"],
            postgresql_include=HISTORY_INCLUDE,
        )
    op.create_index("ix_price_history_ts", "price_history", ["ts"])
    op.create_index("ix_ohlc_ts", "ohlc", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_ohlc_ts", table_name="ohlc")
    op.drop_index("ix_price_history_ts", table_name="price_history")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_market_snapshots_history", table_name="market_snapshots")
