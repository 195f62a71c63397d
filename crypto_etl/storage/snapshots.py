"""Loading snapshot tables into the database: the history, the coin list and the quarantine.

A load is one transaction: the new snapshots, the coins they mention and the rejected rows commit
together or not at all. The snapshots go through the one bulk writer (crypto_etl.storage.bulk); on
PostgreSQL the server parses the CSV itself while pandas validates the same file on the other
core.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from crypto_etl.errors import InputFileError, first_line
from crypto_etl.shaping.snapshot_table import (
    CSV_COLUMNS,
    NUMERIC_COLUMNS,
    TIMESTAMP_COLUMNS,
    read_csv_header,
    read_snapshot_csv,
)
from crypto_etl.shaping.validation import ValidationReport, validate_snapshots
from crypto_etl.storage.bulk import (
    Selection,
    append_skip_existing,
    copy_file,
    create_stage,
    write_transaction,
)
from crypto_etl.storage.schema import Coin, MarketSnapshot, RejectedRow

log = logging.getLogger(__name__)
# CSV columns kept in `coins`, not repeated in every snapshot row.
COIN_ONLY_COLUMNS = ("symbol", "name", "image")
STORED_COLUMNS = tuple(c for c in CSV_COLUMNS if c not in COIN_ONLY_COLUMNS)


@dataclass
class LoadResult:
    """What a load did: rows read, newly stored, already stored before, quarantined."""

    rows_in: int
    loaded: int
    skipped: int
    rejected: int


def snapshot_column(csv_column: str) -> str:
    return "coin_id" if csv_column == "id" else csv_column


def _pg_type(column: str) -> str:
    if column in TIMESTAMP_COLUMNS:
        return "timestamptz"
    if column in NUMERIC_COLUMNS:
        return "float8"
    return "text"


def _pg_select(column: str, typed: bool) -> str:
    """The staging column converted to the target column's type."""
    ref = f's."{column}"'
    kind = _pg_type(column)
    if kind == "text":
        return f"NULLIF({ref}, '')"
    if column == "market_cap_rank":
        return f"{ref}::float8::integer"
    return ref if typed else f"{ref}::{kind}"


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def _rejected_records(
    frame: pd.DataFrame, report: ValidationReport, run_id: int | None, now: datetime
) -> list[dict[str, Any]]:
    rows = frame.loc[report.rejected_rule.index]
    out = []
    for label, row in rows.iterrows():
        raw = {c: _json_value(row[c]) for c in frame.columns}
        raw_json = json.dumps(raw, default=str, sort_keys=True)
        coin = raw.get("id")
        out.append(
            {
                "run_id": run_id,
                "coin_id": None if coin is None else str(coin)[:200],
                "vs_currency": None if raw.get("vs_currency") is None else str(raw["vs_currency"]),
                "rule": report.rejected_rule[label],
                "reason": report.rejected_reason[label],
                "raw": raw_json,
                "row_hash": hashlib.sha256(raw_json.encode()).hexdigest(),
                "rejected_at": now,
            }
        )
    return out


def _coin_records(valid: pd.DataFrame) -> list[dict[str, Any]]:
    if valid.empty:
        return []
    ordered = valid.loc[:, ["id", "symbol", "name", "image", "last_updated"]].sort_values(
        "last_updated", kind="stable"
    )
    latest = ordered.groupby("id", sort=True).last()
    first = ordered.groupby("id", sort=True)["last_updated"].min()
    return [
        {
            "id": coin,
            "symbol": str(row["symbol"]),
            "name": str(row["name"]),
            "image": _json_value(row["image"]),
            "first_seen_at": first[coin].to_pydatetime(),
            "last_seen_at": row["last_updated"].to_pydatetime(),
        }
        for coin, row in latest.iterrows()
    ]


def quarantine(conn: Connection, records: list[dict[str, Any]]) -> None:
    """Keep rejected rows; the same row broken by the same rule is kept once, however often it is
    loaded again."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(RejectedRow).on_conflict_do_nothing(index_elements=["row_hash", "rule"])
    conn.execute(stmt, records)


def upsert_coins(conn: Connection, records: list[dict[str, Any]]) -> None:
    """Insert new coins; for known ones keep the earliest first sighting and take the newest
    descriptive fields, so that older data never overwrites newer."""
    if not records:
        return
    dialect = conn.dialect.name
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(Coin)
    least, greatest = (
        (func.least, func.greatest) if dialect == "postgresql" else (func.min, func.max)
    )
    newer = stmt.excluded.last_seen_at >= Coin.last_seen_at
    from sqlalchemy import case

    stmt = stmt.on_conflict_do_update(
        index_elements=[Coin.id],
        set_={
            "symbol": case((newer, stmt.excluded.symbol), else_=Coin.symbol),
            "name": case((newer, stmt.excluded.name), else_=Coin.name),
            "image": case((newer, stmt.excluded.image), else_=Coin.image),
            "first_seen_at": least(Coin.first_seen_at, stmt.excluded.first_seen_at),
            "last_seen_at": greatest(Coin.last_seen_at, stmt.excluded.last_seen_at),
        },
    )
    conn.execute(stmt, records)


class SnapshotCsv:
    """A snapshot CSV as a RowSource for the bulk writer, validated on the way in.

    On PostgreSQL the server parses the file itself: COPY streams it into a typed staging table on
    one core while pandas reads and validates the same file on the other; if the file holds values
    the server cannot parse, it is staged as text instead and only valid rows are cast. Rows a
    critical rule rejects are then deleted from the staging table. On SQLite the valid rows are
    handed over as records. Either way `frame` and `report` hold what was read and the verdict."""

    def __init__(
        self,
        path: Path,
        header: list[str],
        validate: Callable[[pd.DataFrame], ValidationReport],
        run_id: int | None,
    ) -> None:
        self.path, self.header, self.validate, self.run_id = path, header, validate, run_id
        self.frame: pd.DataFrame | None = None
        self.report: ValidationReport | None = None

    @property
    def columns(self) -> list[str]:
        return [snapshot_column(c) for c in STORED_COLUMNS] + ["run_id"]

    def read(self) -> tuple[pd.DataFrame, ValidationReport]:
        """The file as a typed frame and its validation report (read once)."""
        if self.frame is None or self.report is None:
            self.frame = read_snapshot_csv(self.path)
            self.report = self.validate(self.frame)
        return self.frame, self.report

    def records(self) -> list[dict[str, Any]]:
        frame, report = self.read()
        return _snapshot_records(frame[report.valid_mask(frame.index)], self.run_id)

    def stage(self, cursor, stage: str, table) -> Selection:
        import psycopg

        cursor.execute("SET LOCAL timezone = 'UTC'")
        cursor.execute("SAVEPOINT typed_staging")
        copier = _CopyThread(
            cursor.connection.cursor(), _create_staging(cursor, stage, self.header, True), self.path
        )
        copier.start()
        try:
            frame, report = self.read()
        finally:
            copier.join()
        typed, copied = True, copier.rows
        if isinstance(copier.error, psycopg.DataError):
            log.info("the file has values PostgreSQL cannot parse; staging it as text")
            cursor.execute("ROLLBACK TO SAVEPOINT typed_staging")
            typed = False
            try:
                copied = copy_file(
                    cursor, _create_staging(cursor, stage, self.header, False), self.path
                )
            except psycopg.DataError as exc:
                raise InputFileError(
                    f"CSV file {self.path} is malformed: {first_line(exc)}"
                ) from None
        elif copier.error is not None:
            raise copier.error
        if copied != len(frame):
            raise InputFileError(
                f"CSV file {self.path}: the database read {copied} rows but pandas read "
                f"{len(frame)}; the file is malformed"
            )
        rejected_positions = frame.index.get_indexer(report.rejected_rule.index) + 1
        if len(rejected_positions):
            cursor.execute(
                f"DELETE FROM {stage} WHERE row_no = ANY(%s)",
                ([int(p) for p in rejected_positions],),
            )
        values = [_pg_select(c, typed) for c in STORED_COLUMNS] + ["%s"]
        return Selection(values, (self.run_id,))


class _CopyThread(threading.Thread):
    """Streams the CSV file into the staging table while the main thread validates it."""

    def __init__(self, cursor, sql: str, path: Path) -> None:
        super().__init__(name="copy-staging", daemon=True)
        self.cursor, self.sql, self.path = cursor, sql, path
        self.rows = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.rows = copy_file(self.cursor, self.sql, self.path)
        except BaseException as exc:  # handed to the main thread
            self.error = exc


def _create_staging(cursor, stage: str, header: list[str], typed: bool) -> str:
    """The staging table for the CSV's columns (typed, or all text) with each row's position;
    returns the COPY statement that fills it."""
    columns = ", ".join(f'"{c}" {_pg_type(c) if typed else "text"}' for c in header)
    create_stage(cursor, stage, f"{columns}, row_no bigserial")
    quoted = ", ".join(f'"{c}"' for c in header)
    return f"COPY {stage} ({quoted}) FROM STDIN WITH (FORMAT csv, HEADER true)"


def _snapshot_records(valid: pd.DataFrame, run_id: int | None) -> list[dict[str, Any]]:
    body = valid.drop(columns=list(COIN_ONLY_COLUMNS)).rename(columns={"id": "coin_id"})
    body = body.astype(object).where(body.notna(), None)
    records = body.to_dict("records")
    for record in records:
        record["run_id"] = run_id
        for col in TIMESTAMP_COLUMNS:
            value = record.get(col)
            if value is not None:
                record[col] = value.to_pydatetime()
    return records


def load_snapshot_csv(
    engine: Engine,
    csv_path: str | Path,
    run_id: int | None,
    now: datetime,
    stale_after: timedelta = timedelta(hours=6),
    future_tolerance: timedelta = timedelta(minutes=5),
) -> tuple[LoadResult, ValidationReport]:
    """Validate a snapshot CSV and load it in one transaction: valid rows into market_snapshots
    (rows already stored are skipped) and coins, rows that break a critical rule into
    rejected_rows."""
    path = Path(csv_path)
    header = read_csv_header(path)

    def validate(frame: pd.DataFrame) -> ValidationReport:
        return validate_snapshots(frame, now, stale_after, future_tolerance)

    source = SnapshotCsv(path, header, validate, run_id)
    with write_transaction(engine, "load") as conn:
        loaded = append_skip_existing(conn, MarketSnapshot.__table__, source)
        frame, report = source.read()
        valid = frame[report.valid_mask(frame.index)]
        upsert_coins(conn, _coin_records(valid))
        rejects = _rejected_records(frame, report, run_id, now)
        if rejects:
            quarantine(conn, rejects)
    result = LoadResult(
        rows_in=len(frame),
        loaded=loaded,
        skipped=len(valid) - loaded,
        rejected=report.rejected_count,
    )
    return result, report
