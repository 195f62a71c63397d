"""The one bulk writer: append rows to a table and skip the rows whose primary key is stored
already (dlt's "append" with the table's key deciding what is new), in the caller's transaction.

Snapshots, price history and candles all go through `append_skip_existing`:

- PostgreSQL: the rows are COPYed into a temporary staging table (dropped at commit) and moved over
  with one `INSERT ... SELECT ... ON CONFLICT (key) DO NOTHING`; its row count is what was new.
- SQLite: one `INSERT ... ON CONFLICT DO NOTHING` per batch of SQLITE_BATCH_ROWS rows, the new rows
  counted with `total_changes()`.

What differs between the three is only how rows reach the staging table, which a `RowSource` says:
`Rows` streams Python tuples with COPY's `write_row`; a snapshot CSV is streamed by the server
itself (crypto_etl.storage.snapshots). `write_transaction` is the transaction every bulk write
runs in: database errors leave it as one `DatabaseError` line. Before staged rows move into a
table partitioned by month, the months they need are created (crypto_etl.storage.partitions).
A write of market_snapshots or price_history also recomputes the hours of the hourly rollup its
new rows fall in (crypto_etl.storage.rollup), in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.errors import DatabaseError, first_line
from crypto_etl.storage.engine import WRITE_WAIT_SECONDS

log = logging.getLogger(__name__)
SQLITE_BATCH_ROWS = 5000
COPY_BLOCK_BYTES = 1 << 20
# The PostgreSQL advisory lock every bulk write holds (any constant; "crypto_etl" in ASCII).
WRITE_LOCK_KEY = 0x63727970746F5F65
# The tables the hourly rollup is made of (crypto_etl.storage.rollup), with their time column.
ROLLUP_SOURCES = {"market_snapshots": "last_updated", "price_history": "ts"}


@dataclass(frozen=True)
class Selection:
    """How the staged rows map onto the target's columns: one SQL expression per column over the
    staging table (aliased `s`), and the parameters those expressions use."""

    expressions: Sequence[str]
    params: Sequence[Any] = field(default_factory=tuple)


class RowSource(Protocol):
    """Rows for `append_skip_existing`: the target columns they fill, how to stage them on
    PostgreSQL and how to hand them over as records on SQLite."""

    @property
    def columns(self) -> Sequence[str]: ...

    def stage(self, cursor: Any, stage: str, table: Table) -> Selection:
        """Create the temporary table `stage` (ON COMMIT DROP) and fill it with COPY."""
        ...

    def records(self) -> Iterable[Mapping[str, Any]]:
        """The rows as {column: value}, for SQLite."""
        ...


@dataclass(frozen=True)
class Rows:
    """Rows as Python tuples in the order of `columns`."""

    columns: Sequence[str]
    values: Sequence[Sequence[Any]]

    def stage(self, cursor: Any, stage: str, table: Table) -> Selection:
        create_stage(cursor, stage, f"LIKE {table.name}")
        quoted = _quoted(self.columns)
        with cursor.copy(f"COPY {stage} ({quoted}) FROM STDIN") as copy:
            for row in self.values:
                copy.write_row(row)
        return Selection([f's."{c}"' for c in self.columns])

    def records(self) -> Iterable[Mapping[str, Any]]:
        return (dict(zip(self.columns, row, strict=True)) for row in self.values)


def create_stage(cursor: Any, stage: str, definition: str) -> None:
    """A temporary staging table, dropped when the transaction commits or rolls back."""
    cursor.execute(f"CREATE TEMP TABLE {stage} ({definition}) ON COMMIT DROP")


def copy_file(cursor: Any, sql: str, path: Path) -> int:
    """Stream a file into `COPY ... FROM STDIN` in blocks (the server parses it); returns the rows
    copied."""
    with cursor.copy(sql) as copy, path.open("rb") as fh:
        while block := fh.read(COPY_BLOCK_BYTES):
            copy.write(block)
    return cursor.rowcount


def append_skip_existing(conn: Connection, table: Table, source: RowSource) -> int:
    """Append `source`'s rows to `table`, skipping rows whose primary key is stored already (rows
    already there are never changed); returns how many rows were new. Runs in `conn`'s
    transaction, so it commits or rolls back with whatever else the caller writes."""
    key = ", ".join(column.name for column in table.primary_key.columns)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        cursor = conn.connection.driver_connection.cursor()
        stage = f"stage_{table.name}"
        selection = source.stage(cursor, stage, table)
        _ensure_partitions(conn, cursor, table, source, selection, stage)
        insert_sql = (
            f"INSERT INTO {table.name} ({_quoted(source.columns)}) "
            f"SELECT {', '.join(selection.expressions)} FROM {stage} s "
            f"ON CONFLICT ({key}) DO NOTHING"
        )
        time_column = ROLLUP_SOURCES.get(table.name)
        if time_column is None:
            cursor.execute(insert_sql, tuple(selection.params))
            return cursor.rowcount
        # The new rows' times per coin and currency, for the hourly rollup.
        cursor.execute(
            f"WITH new AS ({insert_sql} RETURNING coin_id, vs_currency, {time_column} AS t) "
            "SELECT coin_id, vs_currency, min(t), max(t), count(*) FROM new GROUP BY 1, 2",
            tuple(selection.params),
        )
        found = cursor.fetchall()
        _refresh_rollup(conn, [row[:4] for row in found])
        return sum(row[4] for row in found)
    if dialect == "sqlite":
        stmt = sqlite_insert(table).on_conflict_do_nothing(
            index_elements=[c.name for c in table.primary_key.columns]
        )
        before = conn.exec_driver_sql("SELECT total_changes()").scalar_one()
        time_column = ROLLUP_SOURCES.get(table.name)
        spans: dict[tuple[str, str], list[Any]] = {}
        records = iter(source.records())
        while batch := list(islice(records, SQLITE_BATCH_ROWS)):
            conn.execute(stmt, batch)
            if time_column is not None:
                for record in batch:
                    _widen(spans, (record["coin_id"], record["vs_currency"]), record[time_column])
        new = conn.exec_driver_sql("SELECT total_changes()").scalar_one() - before
        if time_column is not None:
            _refresh_rollup(conn, [(*pair, first, last) for pair, (first, last) in spans.items()])
        return new
    raise DatabaseError(f"bulk loads support PostgreSQL and SQLite, not {dialect}")


def _widen(spans: dict[tuple[str, str], list[Any]], pair: tuple[str, str], moment: Any) -> None:
    span = spans.get(pair)
    if span is None:
        spans[pair] = [moment, moment]
    elif moment < span[0]:
        span[0] = moment
    elif moment > span[1]:
        span[1] = moment


def _refresh_rollup(conn: Connection, spans: Sequence[Sequence[Any]]) -> None:
    """Recompute the hourly rollup's hours the written rows fall in (crypto_etl.storage.rollup),
    in this transaction: (coin id, currency, first time, last time) per coin and currency."""
    from crypto_etl.storage.rollup import Touched, refresh_hours

    refresh_hours(conn, [Touched(c, v, _utc(first), _utc(last)) for c, v, first, last in spans])


def _utc(moment: Any) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ensure_partitions(
    conn: Connection, cursor: Any, table: Table, source: RowSource, selection: Selection, stage: str
) -> None:
    """Before staged rows move into a partitioned history table, create the monthly partitions
    their time range needs (and the months ahead of now), in this transaction and under its write
    lock, so a row never finds no partition (crypto_etl.storage.partitions)."""
    from crypto_etl.storage.partitions import (
        DEFAULT_AHEAD_MONTHS,
        MONTHLY_TABLES,
        ensure_partitions,
        is_partitioned,
    )

    column = MONTHLY_TABLES.get(table.name)
    if column is None or column not in source.columns or not is_partitioned(conn, table.name):
        return
    expression = selection.expressions[list(source.columns).index(column)]
    cursor.execute(f"SELECT min({expression}), max({expression}) FROM {stage} s")
    first, last = cursor.fetchone()
    if first is None:
        return
    ahead = conn.get_execution_options().get("partitions_ahead_months", DEFAULT_AHEAD_MONTHS)
    ensure_partitions(conn, table.name, first, last, ahead)


def take_write_lock(conn: Connection, what: str) -> None:
    """Serialise bulk writes between processes, so that two writers started together (two runs,
    a run and a backfill, two machines on one PostgreSQL) never deadlock on each other's rows:
    on PostgreSQL a transaction-scoped advisory lock, taken before any row, released at commit or
    rollback; on SQLite the write lock, taken by BEGIN IMMEDIATE (storage.engine). A writer that
    has to wait logs it once."""
    if conn.dialect.name != "postgresql":
        return
    if conn.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY}
    ).scalar():
        return
    log.info("%s: waiting for another process writing to the database", what)
    conn.execute(text(f"SET LOCAL lock_timeout = '{WRITE_WAIT_SECONDS}s'"))
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
    conn.execute(text("SET LOCAL lock_timeout = 0"))


@contextmanager
def write_transaction(engine: Engine, what: str) -> Iterator[Connection]:
    """One transaction for a bulk write, holding the write lock (`take_write_lock`): it commits
    when the block ends, and any failure rolls it back whole. A database error leaves as
    DatabaseError("<what> failed and was rolled back: ..."); other errors pass through as they
    are."""
    try:
        with engine.connect() as plain, plain.execution_options(write_lock=True).begin() as tx:
            conn = tx.connection
            take_write_lock(conn, what)
            yield conn
    except Exception as exc:
        interrupt = _interrupt_behind(exc)
        if interrupt is not None:
            # Ctrl-C or SIGTERM stopped the driver mid-command and the rollback could not be
            # sent: the server rolls the transaction back as the connection goes. The command
            # stops as interrupted, not as a failed write.
            log.debug("%s: after the interrupt: %s", what, first_line(exc))
            raise interrupt from None
        if isinstance(exc, SQLAlchemyError) or exc.__class__.__module__.startswith("psycopg"):
            raise DatabaseError(f"{what} failed and was rolled back: {first_line(exc)}") from exc
        raise


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt (KeyboardInterrupt, or errors.Terminated for SIGTERM) that `exc` was raised
    while handling, if any."""
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _quoted(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)
