"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coins",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("symbol", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "etl_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("command", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("vs_currency", sa.String(length=20), nullable=True),
        sa.Column("rows_extracted", sa.Integer(), nullable=False),
        sa.Column("rows_loaded", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("rows_skipped", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("etl_runs", schema=None) as batch_op:
        batch_op.create_index("ix_etl_runs_started_at", ["started_at"], unique=False)

    op.create_table(
        "market_snapshots",
        sa.Column("coin_id", sa.String(length=200), nullable=False),
        sa.Column("vs_currency", sa.String(length=20), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snapshot_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_price", sa.Double(), nullable=False),
        sa.Column("market_cap", sa.Double(), nullable=True),
        sa.Column("market_cap_rank", sa.Integer(), nullable=True),
        sa.Column("fully_diluted_valuation", sa.Double(), nullable=True),
        sa.Column("total_volume", sa.Double(), nullable=True),
        sa.Column("high_24h", sa.Double(), nullable=True),
        sa.Column("low_24h", sa.Double(), nullable=True),
        sa.Column("price_change_24h", sa.Double(), nullable=True),
        sa.Column("price_change_percentage_24h", sa.Double(), nullable=True),
        sa.Column("market_cap_change_24h", sa.Double(), nullable=True),
        sa.Column("market_cap_change_percentage_24h", sa.Double(), nullable=True),
        sa.Column("circulating_supply", sa.Double(), nullable=True),
        sa.Column("total_supply", sa.Double(), nullable=True),
        sa.Column("max_supply", sa.Double(), nullable=True),
        sa.Column("ath", sa.Double(), nullable=True),
        sa.Column("ath_change_percentage", sa.Double(), nullable=True),
        sa.Column("ath_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("atl", sa.Double(), nullable=True),
        sa.Column("atl_change_percentage", sa.Double(), nullable=True),
        sa.Column("atl_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("roi_times", sa.Double(), nullable=True),
        sa.Column("roi_currency", sa.String(length=20), nullable=True),
        sa.Column("roi_percentage", sa.Double(), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("coin_id", "vs_currency", "last_updated"),
    )
    with op.batch_alter_table("market_snapshots", schema=None) as batch_op:
        batch_op.create_index("ix_market_snapshots_last_updated", ["last_updated"], unique=False)

    op.create_table(
        "ohlc",
        sa.Column("coin_id", sa.String(length=200), nullable=False),
        sa.Column("vs_currency", sa.String(length=20), nullable=False),
        sa.Column("interval", sa.String(length=10), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("close", sa.Double(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("coin_id", "vs_currency", "interval", "ts"),
    )
    op.create_table(
        "price_history",
        sa.Column("coin_id", sa.String(length=200), nullable=False),
        sa.Column("vs_currency", sa.String(length=20), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price", sa.Double(), nullable=True),
        sa.Column("market_cap", sa.Double(), nullable=True),
        sa.Column("total_volume", sa.Double(), nullable=True),
        sa.Column("granularity", sa.String(length=10), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("coin_id", "vs_currency", "ts"),
    )
    op.create_table(
        "rejected_rows",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("coin_id", sa.String(length=200), nullable=True),
        sa.Column("vs_currency", sa.String(length=20), nullable=True),
        sa.Column("rule", sa.String(length=50), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["etl_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rejected_rows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rejected_rows_run_id"), ["run_id"], unique=False)
        batch_op.create_index("ux_rejected_rows_row_hash_rule", ["row_hash", "rule"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("rejected_rows", schema=None) as batch_op:
        batch_op.drop_index("ux_rejected_rows_row_hash_rule")
        batch_op.drop_index(batch_op.f("ix_rejected_rows_run_id"))

    op.drop_table("rejected_rows")
    op.drop_table("price_history")
    op.drop_table("ohlc")
    with op.batch_alter_table("market_snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_market_snapshots_last_updated")

    op.drop_table("market_snapshots")
    with op.batch_alter_table("etl_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_etl_runs_started_at")

    op.drop_table("etl_runs")
    op.drop_table("coins")
