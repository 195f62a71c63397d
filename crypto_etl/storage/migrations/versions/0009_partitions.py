"""monthly partitions for the history tables on PostgreSQL, and etl_runs.details

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29

On PostgreSQL, `market_snapshots` (by last_updated) and `price_history` (by ts) become RANGE
partitioned tables with one partition per UTC month (crypto_etl.storage.partitions), when they are
empty: same columns, keys, indexes and grants, with the months around now and a DEFAULT partition.
A table that holds rows is left as it is, with one line saying to run `python etl.py partition`:
copying billions of rows is a job of its own, not something to hide in a schema upgrade. SQLite
keeps plain tables.

`etl_runs.details` holds what a run did beyond its row counts, as JSON text (retention: rows
removed per table, partitions dropped).

Downgrade copies the rows of a partitioned table back into a plain one.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crypto_etl.storage.partitions import (
    PARTITION_COLUMNS,
    create_default_partition,
    create_partitioned_like,
    ensure_partitions,
    is_partitioned,
    swap_tables,
)

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("crypto_etl.migrations")


def upgrade() -> None:
    with op.batch_alter_table("etl_runs") as batch:
        batch.add_column(sa.Column("details", sa.Text(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in PARTITION_COLUMNS:
        if is_partitioned(bind, table):
            continue
        if bind.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar():
            log.warning(
                "%s holds rows and stays a plain table; run `python etl.py partition` to "
                "partition it by month",
                table,
            )
            continue
        new_table = f"{table}_partitioned"
        create_partitioned_like(bind, table, new_table)
        create_default_partition(bind, table, new_table)
        now = bind.execute(sa.text("SELECT now()")).scalar_one()
        ensure_partitions(bind, table, now, now, parent=new_table, now=now)
        old_table = swap_tables(bind, table, new_table)
        op.execute(f'DROP TABLE "{old_table}"')


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in PARTITION_COLUMNS:
            if not is_partitioned(bind, table):
                continue
            plain = f"{table}_unpartitioned"
            create_partitioned_like(bind, table, plain, partitioned=False)
            op.execute(f'INSERT INTO "{plain}" SELECT * FROM "{table}"')
            old_table = swap_tables(bind, table, plain, old_suffix="_monthly")
            op.execute(f'DROP TABLE "{old_table}"')  # its partitions go with it
    if bind.dialect.name == "sqlite":
        op.execute("ALTER TABLE etl_runs DROP COLUMN details")
    else:
        op.drop_column("etl_runs", "details")
