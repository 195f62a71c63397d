"""alerts, anomaly flags and the webhook outbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

- alerts: one row per episode of a condition (open, then resolved), at most one open per condition.
- anomaly_flags: suspicious market values, append-only (triggers refuse UPDATE and DELETE).
- alert_outbox: messages owed to each webhook until it accepts them.
- alert_evaluations: runs whose new points were checked; every run before this migration counts as
  checked, so that upgrading does not flag the whole stored history at once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
APPEND_ONLY = "anomaly_flags is append-only: flags are never altered or deleted"


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", ID, nullable=False),
        sa.Column("condition", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("last_notified_at", TS, nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("run_ids", sa.JSON(), nullable=False),
        sa.Column("coin_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_alerts_open_condition",
        "alerts",
        ["condition"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index("ix_alerts_opened_at", "alerts", ["opened_at"])

    op.create_table(
        "anomaly_flags",
        sa.Column("id", ID, nullable=False),
        sa.Column("rule", sa.String(length=50), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("coin_id", sa.String(length=200), nullable=False),
        sa.Column("vs_currency", sa.String(length=20), nullable=False),
        sa.Column("observed_at", TS, nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("expected", sa.Double(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_anomaly_flags_point",
        "anomaly_flags",
        ["rule", "source", "coin_id", "vs_currency", "observed_at"],
        unique=True,
    )
    op.create_index("ix_anomaly_flags_coin_observed", "anomaly_flags", ["coin_id", "observed_at"])
    op.create_index("ix_anomaly_flags_created_at", "anomaly_flags", ["created_at"])
    _append_only_triggers()

    op.create_table(
        "alert_outbox",
        sa.Column("id", ID, nullable=False),
        sa.Column("alert_id", ID, sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column("event", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_outbox_alert_id", "alert_outbox", ["alert_id"])
    op.create_index("ix_alert_outbox_pending", "alert_outbox", ["delivered_at", "target"])

    op.create_table(
        "alert_evaluations",
        sa.Column("run_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("evaluated_at", TS, nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.execute(
        "INSERT INTO alert_evaluations (run_id, evaluated_at, flags) "
        "SELECT id, CURRENT_TIMESTAMP, 0 FROM etl_runs"
    )


def _append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION anomaly_flags_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER anomaly_flags_append_only BEFORE UPDATE OR DELETE ON anomaly_flags "
            "FOR EACH ROW EXECUTE FUNCTION anomaly_flags_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER anomaly_flags_no_{action.lower()} BEFORE {action} ON "
                f"anomaly_flags BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )


def downgrade() -> None:
    op.drop_table("alert_evaluations")
    op.drop_index("ix_alert_outbox_pending", table_name="alert_outbox")
    op.drop_index("ix_alert_outbox_alert_id", table_name="alert_outbox")
    op.drop_table("alert_outbox")
    op.drop_table("anomaly_flags")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS anomaly_flags_append_only()")
    op.drop_index("ix_alerts_opened_at", table_name="alerts")
    op.drop_index("ux_alerts_open_condition", table_name="alerts")
    op.drop_table("alerts")
