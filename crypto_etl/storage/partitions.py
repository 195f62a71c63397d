"""Monthly partitions of the two history tables on PostgreSQL (README: A history store for
billions of rows).

`market_snapshots` (by `last_updated`) and `price_history` (by `ts`) are RANGE partitioned by
month, one partition per calendar month in UTC named `<table>_pYYYYMM`, plus one DEFAULT partition
`<table>_pdefault` that catches a row no month holds yet. The pipeline's own writers never put a
row there: before every bulk write they create the months the rows need and the months ahead of
now (`ensure_partitions`, in the write's transaction, under the writers' advisory lock). The
default is for other writers (hand-written SQL, a restore, a seed script) so that their rows are
never refused; when a month is created later, the rows the default holds for it move into it in
the same transaction (a default holding such rows would otherwise block creating the month).

`convert_to_partitioned` turns a populated plain table into a partitioned one without losing a
row: it copies the rows in batches into a new partitioned table while holding the writers' lock,
checks counts and a checksum, swaps the names in one transaction and only then drops the old
table. SQLite keeps plain tables: every function here answers "not partitioned" there, and
converting refuses with one line.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from crypto_etl import clock
from crypto_etl.errors import DatabaseError

log = logging.getLogger(__name__)

# The partitioned history tables and the column each is partitioned by.
PARTITION_COLUMNS = {"market_snapshots": "last_updated", "price_history": "ts"}
# Every table partitioned by month: the history tables and their hourly rollup (migration 0010,
# crypto_etl.storage.rollup), which is made partitioned and never converted.
MONTHLY_TABLES = {**PARTITION_COLUMNS, "history_hourly": "ts"}
DEFAULT_AHEAD_MONTHS = 2
# A single write asking for more new months than this holds a timestamp far off (a unit mistake,
# year 1970 or 9999): refused with one line rather than creating hundreds of empty tables.
MAX_NEW_PARTITIONS = 600
DEFAULT_BATCH_ROWS = 1_000_000
DEFAULT_SUFFIX = "_pdefault"
_PARTITION_NAME = re.compile(rf"^({'|'.join(MONTHLY_TABLES)})_p(\d{{6}}|default)$")
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    """One partition: its name, the months it covers [start, end), its rows (PostgreSQL's estimate
    unless counted exactly) and its size on disk with indexes."""

    name: str
    start: datetime | None  # None for a DEFAULT partition
    end: datetime | None
    rows: int
    total_bytes: int


@dataclass(frozen=True)
class Conversion:
    """What `convert_to_partitioned` did: rows moved, partitions made, seconds taken; or nothing,
    when the table was partitioned already."""

    table: str
    already_partitioned: bool
    rows: int = 0
    partitions: int = 0
    seconds: float = 0.0
    checksum: str | None = None


def is_partition_name(name: str) -> bool:
    """Whether a table name is one of our monthly partitions (the schema comparison skips them)."""
    return bool(_PARTITION_NAME.match(name))


def month_start(moment: datetime) -> datetime:
    """The first instant of the UTC month holding `moment`."""
    moment = moment.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(month: datetime, months: int) -> datetime:
    index = month.year * 12 + month.month - 1 + months
    return month.replace(year=index // 12, month=index % 12 + 1)


def months_covering(start: datetime, end: datetime) -> list[datetime]:
    """The first instants of every UTC month that [start, end] touches, oldest first."""
    if end < start:
        start, end = end, start
    month, last = month_start(start), month_start(end)
    months = []
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return months


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month:%Y%m}"


def default_partition_name(table: str) -> str:
    return f"{table}{DEFAULT_SUFFIX}"


def _check_table(table: str) -> str:
    if table not in MONTHLY_TABLES:
        known = ", ".join(MONTHLY_TABLES)
        raise DatabaseError(f"{table!r} is not a partitioned history table (those are: {known})")
    return table


def _relkind(conn: Connection, table: str) -> str | None:
    return conn.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
    ).scalar()


def _is_partitioned(conn: Connection, table: str) -> bool:
    return conn.dialect.name == "postgresql" and _relkind(conn, table) == "p"


def is_partitioned(bind: Engine | Connection, table: str) -> bool:
    """Whether `table` is a partitioned table (always False on SQLite)."""
    if isinstance(bind, Connection):
        return _is_partitioned(bind, table)
    if bind.dialect.name != "postgresql":
        return False
    with bind.connect() as conn:
        return _is_partitioned(conn, table)


def _partition_rows(conn: Connection, table: str) -> list[Any]:
    return conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), "
            "greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t) ORDER BY c.relname"
        ),
        {"t": table},
    ).all()


def _bounds(expression: str) -> tuple[datetime | None, datetime | None]:
    found = _BOUND.search(expression or "")
    if not found:
        return None, None
    start, end = (datetime.fromisoformat(v).astimezone(UTC) for v in found.groups())
    return start, end


def list_partitions(
    bind: Engine | Connection, table: str, exact_rows: bool = False
) -> list[Partition]:
    """The partitions of `table`, oldest first (empty when it is not partitioned). Rows are
    PostgreSQL's estimate from the last ANALYZE unless `exact_rows` (which counts every one)."""
    _check_table(table)
    if bind.dialect.name != "postgresql":
        return []
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return list_partitions(conn, table, exact_rows)
    found = []
    for name, bound, rows, size in _partition_rows(bind, table):
        if exact_rows:
            rows = bind.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
        start, end = _bounds(bound)
        found.append(Partition(name, start, end, int(rows), int(size)))
    return sorted(
        found, key=lambda p: (p.start is None, p.start or datetime.min.replace(tzinfo=UTC))
    )


def _create_partition(conn: Connection, parent: str, table: str, month: datetime) -> str:
    """Create one month's partition; rows the DEFAULT partition holds for that month move into
    it, in the caller's transaction."""
    name = partition_name(table, month)
    start, end = month, add_months(month, 1)
    bounds = f"FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    column = MONTHLY_TABLES[table]
    default = _default_partition(conn, parent)
    strays = (
        default is not None
        and conn.execute(
            text(
                f'SELECT EXISTS (SELECT 1 FROM "{default}" '
                f'WHERE "{column}" >= :s AND "{column}" < :e)'
            ),
            {"s": start, "e": end},
        ).scalar()
    )
    if not strays:
        conn.execute(
            text(f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{parent}" FOR VALUES {bounds}')
        )
        return name
    conn.execute(text(f'ALTER TABLE "{parent}" DETACH PARTITION "{default}"'))
    conn.execute(text(f'CREATE TABLE "{name}" PARTITION OF "{parent}" FOR VALUES {bounds}'))
    moved = conn.execute(
        text(
            f'WITH moved AS (DELETE FROM "{default}" WHERE "{column}" >= :s AND "{column}" < :e '
            f'RETURNING *) INSERT INTO "{name}" SELECT * FROM moved'
        ),
        {"s": start, "e": end},
    ).rowcount
    conn.execute(text(f'ALTER TABLE "{parent}" ATTACH PARTITION "{default}" DEFAULT'))
    log.info("%s: moved %d row(s) from the default partition into %s", table, moved, name)
    return name


def _default_partition(conn: Connection, parent: str) -> str | None:
    return conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t) AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'"
        ),
        {"t": parent},
    ).scalar()


def create_default_partition(conn: Connection, table: str, parent: str | None = None) -> str:
    """The DEFAULT partition of `table` (made when missing); returns its name."""
    name = default_partition_name(table)
    conn.execute(
        text(f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{parent or table}" DEFAULT')
    )
    return name


def _missing_months(
    conn: Connection, parent: str, table: str, months: list[datetime]
) -> list[datetime]:
    covered = [_bounds(bound) for _, bound, _, _ in _partition_rows(conn, parent)]
    return [
        month
        for month in months
        if not any(s is not None and s <= month and month < e for s, e in covered)
    ]


def ensure_partitions(
    bind: Engine | Connection,
    table: str,
    start: datetime,
    end: datetime,
    ahead_months: int = DEFAULT_AHEAD_MONTHS,
    now: datetime | None = None,
    parent: str | None = None,
) -> list[str]:
    """Create the monthly partitions of `table` that [start, end] and the next `ahead_months`
    months after now touch, when `table` is partitioned; returns the names created (none when
    they all exist, on a plain table and on SQLite).

    Idempotent, and safe with two writers at once: on an Engine it runs in its own transaction
    under the writers' advisory lock; on a Connection it runs in that connection's transaction,
    which must hold the lock already (the bulk writer's does). When nothing is missing it only
    reads the catalog; creating a partition locks the parent table until the transaction ends."""
    _check_table(table)
    parent = parent or table
    if bind.dialect.name != "postgresql":
        return []
    if isinstance(bind, Engine):
        from crypto_etl.storage.bulk import write_transaction

        with bind.connect() as conn:
            if not _is_partitioned(conn, parent):
                return []
            wanted = _wanted_months(start, end, ahead_months, now)
            if not _missing_months(conn, parent, table, wanted):
                return []
        with write_transaction(bind, f"creating partitions of {table}") as conn:
            return ensure_partitions(conn, table, start, end, ahead_months, now, parent)
    if not _is_partitioned(bind, parent):
        return []
    wanted = _wanted_months(start, end, ahead_months, now)
    missing = _missing_months(bind, parent, table, wanted)
    if len(missing) > MAX_NEW_PARTITIONS:
        raise DatabaseError(
            f"{table}: rows from {start:%Y-%m-%d} to {end:%Y-%m-%d} would need "
            f"{len(missing)} new monthly partitions (more than {MAX_NEW_PARTITIONS}); "
            "check the timestamps of the data"
        )
    created = [_create_partition(bind, parent, table, month) for month in missing]
    if created:
        log.info("%s: created partition(s) %s", table, ", ".join(created))
    return created


def _wanted_months(
    start: datetime, end: datetime, ahead_months: int, now: datetime | None
) -> list[datetime]:
    this_month = month_start(now or clock.utcnow())
    ahead = months_covering(this_month, add_months(this_month, max(ahead_months, 0)))
    return sorted(set(months_covering(start, end)) | set(ahead))


# -- converting a populated plain table ---------------------------------------------------------


def _indexes(conn: Connection, table: str) -> list[tuple[str, str | None, str]]:
    """(index name, constraint definition or None, index definition) of every index of `table`."""
    return conn.execute(
        text(
            "SELECT ic.relname, pg_get_constraintdef(con.oid), pg_get_indexdef(ix.indexrelid) "
            "FROM pg_index ix JOIN pg_class ic ON ic.oid = ix.indexrelid "
            "LEFT JOIN pg_constraint con ON con.conindid = ix.indexrelid "
            "AND con.conrelid = ix.indrelid "
            "WHERE ix.indrelid = to_regclass(:t) ORDER BY ic.relname"
        ),
        {"t": table},
    ).all()


def _grants(conn: Connection, table: str) -> list[tuple[str, str]]:
    """(grantee, privilege) granted on `table` to roles other than its owner; PUBLIC included."""
    return conn.execute(
        text(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
            "a.privilege_type FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a "
            "LEFT JOIN pg_roles r ON r.oid = a.grantee "
            "WHERE c.oid = to_regclass(:t) AND a.grantee <> c.relowner"
        ),
        {"t": table},
    ).all()


def _new_name(name: str) -> str:
    return f"{name[:58]}_new"


def _old_name(name: str, suffix: str) -> str:
    return f"{name[: 63 - len(suffix)]}{suffix}"


def create_partitioned_like(
    conn: Connection, table: str, new_table: str, partitioned: bool = True
) -> None:
    """A new, empty table `new_table` partitioned by month on `table`'s column (or a plain one,
    `partitioned=False`), with `table`'s columns, NOT NULLs, defaults, keys, indexes (named
    `<name>_new`) and grants."""
    column = PARTITION_COLUMNS[_check_table(table)]
    partition_by = f' PARTITION BY RANGE ("{column}")' if partitioned else ""
    conn.execute(
        text(
            f'CREATE TABLE "{new_table}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
            f"INCLUDING STORAGE INCLUDING COMMENTS){partition_by}"
        )
    )
    for name, constraint, definition in _indexes(conn, table):
        if constraint is not None:
            conn.execute(
                text(f'ALTER TABLE "{new_table}" ADD CONSTRAINT "{_new_name(name)}" {constraint}')
            )
            continue
        found = re.match(r"^CREATE (UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ (USING .*)$", definition)
        if not found:
            raise DatabaseError(f"cannot copy index {name} of {table}: {definition}")
        unique = found.group(1) or ""
        conn.execute(
            text(f'CREATE {unique}INDEX "{_new_name(name)}" ON "{new_table}" {found.group(2)}')
        )
    for grantee, privilege in _grants(conn, table):
        conn.execute(text(f'GRANT {privilege} ON "{new_table}" TO {grantee}'))


def swap_tables(conn: Connection, table: str, new_table: str, old_suffix: str = "_plain") -> str:
    """Give `new_table` (made by `create_partitioned_like`) the name of `table` and its indexes'
    names, and `table` the name `<table><old_suffix>`; returns the old table's new name. In the
    caller's one transaction: readers see the old table or the new one, never neither."""
    old_table = _old_name(table, old_suffix)
    indexes = _indexes(conn, table)
    conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{old_table}"'))
    for name, constraint, _ in indexes:
        _rename_index(conn, old_table, name, _old_name(name, old_suffix), constraint is not None)
    conn.execute(text(f'ALTER TABLE "{new_table}" RENAME TO "{table}"'))
    for name, constraint, _ in indexes:
        _rename_index(conn, table, _new_name(name), name, constraint is not None)
    return old_table


def _rename_index(conn: Connection, table: str, name: str, to: str, constraint: bool) -> None:
    if constraint:
        conn.execute(text(f'ALTER TABLE "{table}" RENAME CONSTRAINT "{name}" TO "{to}"'))
    else:
        conn.execute(text(f'ALTER INDEX "{name}" RENAME TO "{to}"'))


def _key_columns(conn: Connection, table: str) -> list[str]:
    return list(
        conn.execute(
            text(
                "SELECT a.attname FROM pg_index ix CROSS JOIN LATERAL "
                "unnest(ix.indkey[0:ix.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, n) "
                "JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum "
                "WHERE ix.indrelid = to_regclass(:t) AND ix.indisprimary ORDER BY k.n"
            ),
            {"t": table},
        ).scalars()
    )


def table_fingerprint(conn: Connection, table: str) -> tuple[int, str]:
    """(rows, checksum) of a table: the checksum sums a 64-bit hash of every row's text, so two
    tables with the same rows (in any order, same columns) have the same one."""
    rows, checksum = conn.execute(
        text(
            f"SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) "
            f'FROM "{table}" t'
        )
    ).one()
    return int(rows), str(checksum)


def convert_to_partitioned(
    engine: Engine,
    table: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    keep_old: bool = False,
    ahead_months: int = DEFAULT_AHEAD_MONTHS,
    now: datetime | None = None,
) -> Conversion:
    """Turn the populated plain `table` into a monthly partitioned one without losing a row.

    While it works it holds the writers' advisory lock (crypto_etl.storage.bulk), so no load
    changes the table meanwhile: loads started then wait for it (and fail after their wait limit,
    to be caught up by the next run). Readers keep reading the old table until the swap.
    Steps: create `<table>_partitioned` like the table; create the partitions the data's range
    needs; copy the rows in primary-key order, `batch_rows` per committed batch; compare row count
    and checksum of both tables; swap the names in one transaction; drop the old table (kept as
    `<table>_plain` with `keep_old`). A conversion stopped half-way leaves the table untouched and
    is started over by the next call."""
    _check_table(table)
    if engine.dialect.name != "postgresql":
        raise DatabaseError("partitioned tables need PostgreSQL; SQLite keeps plain tables")
    if batch_rows < 1:
        raise DatabaseError(f"batch_rows must be >= 1, got {batch_rows}")
    from crypto_etl.storage.bulk import WRITE_LOCK_KEY

    began = time.monotonic()
    new_table = f"{table}_partitioned"
    column = PARTITION_COLUMNS[table]
    with engine.connect() as conn:
        conn.execute(text("SET timezone = 'UTC'"))
        if _is_partitioned(conn, table):
            conn.rollback()
            return Conversion(table, already_partitioned=True)
        if _relkind(conn, table) is None:
            raise DatabaseError(f"there is no table {table}; run `python etl.py init_db` first")
        conn.commit()
        log.info("%s: waiting for the writers' lock", table)
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": WRITE_LOCK_KEY})
        conn.commit()
        try:
            with conn.begin():
                if _is_partitioned(conn, table):  # converted by another process meanwhile
                    return Conversion(table, already_partitioned=True)
                conn.execute(text(f'DROP TABLE IF EXISTS "{new_table}"'))
                create_partitioned_like(conn, table, new_table)
                first, last = conn.execute(
                    text(f'SELECT min("{column}"), max("{column}") FROM "{table}"')
                ).one()
                moment = now or clock.utcnow()
                create_default_partition(conn, table, new_table)
                made = ensure_partitions(
                    conn,
                    table,
                    first or moment,
                    last or moment,
                    ahead_months,
                    now,
                    parent=new_table,
                )
                key = _key_columns(conn, table)
            moved = _copy_in_batches(conn, table, new_table, key, batch_rows)
            with conn.begin():
                source = table_fingerprint(conn, table)
                copied = table_fingerprint(conn, new_table)
                if source != copied or copied[0] != moved:
                    raise DatabaseError(
                        f"{table}: the copy does not match ({source[0]} rows, checksum "
                        f"{source[1]} vs {copied[0]} rows, checksum {copied[1]}); nothing was "
                        "changed"
                    )
                old_table = swap_tables(conn, table, new_table)
            with conn.begin():
                if not keep_old:
                    conn.execute(text(f'DROP TABLE "{old_table}"'))
        except BaseException:
            if conn.in_transaction():
                conn.rollback()
            with conn.begin():
                conn.execute(text(f'DROP TABLE IF EXISTS "{new_table}"'))
            raise
        finally:
            if conn.in_transaction():
                conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": WRITE_LOCK_KEY})
            conn.commit()
    seconds = time.monotonic() - began
    log.info("%s: %d rows moved into %d partition(s) in %.1f s", table, moved, len(made), seconds)
    return Conversion(table, False, moved, len(made), seconds, source[1])


def _copy_in_batches(
    conn: Connection, table: str, new_table: str, key: list[str], batch_rows: int
) -> int:
    """Copy every row of `table` into `new_table` in `key` (primary-key) order, one committed
    batch of `batch_rows` at a time; returns the rows copied."""
    if not key:
        raise DatabaseError(f"{table} has no primary key to copy it by")
    quoted = ", ".join(f'"{c}"' for c in key)
    descending = ", ".join(f'"{c}" DESC' for c in key)
    after = "(" + ", ".join(f":k{i}" for i in range(len(key))) + ")"
    moved, last = 0, None
    while True:
        where = "" if last is None else f"WHERE ({quoted}) > {after}"
        params = {} if last is None else {f"k{i}": v for i, v in enumerate(last)}
        with conn.begin():
            row = conn.execute(
                text(
                    f'WITH batch AS (SELECT * FROM "{table}" {where} ORDER BY {quoted} '
                    f"LIMIT {int(batch_rows)}), "
                    f'moved AS (INSERT INTO "{new_table}" SELECT * FROM batch RETURNING 1) '
                    f"SELECT (SELECT count(*) FROM moved), {quoted} FROM batch "
                    f"ORDER BY {descending} LIMIT 1"
                ),
                params,
            ).first()
        if row is None:
            return moved
        moved += int(row[0])
        last = tuple(row[1:])
        log.info("%s: %d rows copied", table, moved)
