"""Raw `/coins/markets` rows to a flat, typed table with a stable column order, and its CSV form.

The CSV is the hand-over between `transform`, `validate` and `load`: every field of the API row
(`roi` flattened), plus `vs_currency` and `snapshot_at` (when the rows were fetched). Values that
do not parse are kept as they came, so that validation can quarantine the row with its reason
instead of the value vanishing here.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from crypto_etl.errors import InputFileError, MissingPackageError, first_line

TEXT_COLUMNS = ("id", "symbol", "name", "image", "roi_currency", "vs_currency")
TIMESTAMP_COLUMNS = ("ath_date", "atl_date", "last_updated", "snapshot_at")
# Stable CSV column order: the API row's own order, roi flattened in its place, then our two fields.
CSV_COLUMNS = (
    "id",
    "symbol",
    "name",
    "image",
    "current_price",
    "market_cap",
    "market_cap_rank",
    "fully_diluted_valuation",
    "total_volume",
    "high_24h",
    "low_24h",
    "price_change_24h",
    "price_change_percentage_24h",
    "market_cap_change_24h",
    "market_cap_change_percentage_24h",
    "circulating_supply",
    "total_supply",
    "max_supply",
    "ath",
    "ath_change_percentage",
    "ath_date",
    "atl",
    "atl_change_percentage",
    "atl_date",
    "roi_times",
    "roi_currency",
    "roi_percentage",
    "last_updated",
    "vs_currency",
    "snapshot_at",
)
NUMERIC_COLUMNS = tuple(
    c for c in CSV_COLUMNS if c not in TEXT_COLUMNS and c not in TIMESTAMP_COLUMNS
)
CSV_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# A whole number beyond this is not exact as a float: market_cap_rank stays a float then.
EXACT_INTEGER_LIMIT = 2**53
# Text a CSV reader takes for a float NaN: "not a number" is no value, as JSON has no NaN.
NAN_TEXTS = frozenset({"nan", "-nan", "+nan"})
READ_BLOCK_BYTES = 1 << 20


def read_raw_json(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a raw `/coins/markets` dump: one JSON array of objects."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(
            f"raw file {path} does not exist; create it with `python etl.py extract`"
        ) from None
    except UnicodeDecodeError:
        raise InputFileError(f"raw file {path} is not UTF-8 text (is it a JSON dump?)") from None
    except OSError as exc:
        raise InputFileError(f"cannot read raw file {path}: {exc.strerror}") from None
    if not text.strip():
        raise InputFileError(f"raw file {path} is empty; run `python etl.py extract` again")
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"raw file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(rows, list):
        raise InputFileError(
            f"raw file {path} must hold a JSON array of /coins/markets rows, "
            f"found a JSON {type(rows).__name__}"
        )
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputFileError(
                f"raw file {path}: item {i} is a JSON {type(row).__name__}, expected an object"
            )
    return rows


def _coerce(series: pd.Series, parse) -> pd.Series:
    """Parse a column; values that do not parse stay as the original text for validation."""
    parsed = parse(series)
    bad = parsed.isna() & series.notna()
    if not bad.any():
        return parsed
    out = parsed.astype(object)
    out[bad] = series[bad].astype(str)
    return out


def _to_number(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce").astype("float64")


def _to_timestamp(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, format="ISO8601", errors="coerce")


def _empty_as_missing(series: pd.Series, nan_too: bool = False) -> pd.Series:
    """Blank text counts as missing, as an empty CSV field does; with `nan_too` (numbers), so does
    text spelling NaN, as every CSV reader takes it for a missing float."""
    if series.dtype.kind in "fiumM":
        return series
    stripped = series.astype("str").str.strip()  # object or pandas' str dtype alike
    blank = stripped.eq("")
    if nan_too:
        blank |= stripped.str.lower().isin(NAN_TEXTS)
    return series.where(~blank.fillna(False).astype(bool), None)


def transform_markets(
    rows: Sequence[dict[str, Any]], vs_currency: str, snapshot_at: datetime
) -> pd.DataFrame:
    """Flatten raw market rows into the CSV_COLUMNS table (UTC timestamps, float numbers)."""
    n = len(rows)  # an empty object is a row too: validation quarantines it, nothing vanishes
    frame = pd.DataFrame.from_records(list(rows)) if rows else pd.DataFrame()
    roi = frame["roi"] if "roi" in frame else pd.Series([None] * n, dtype=object)

    def roi_part(key: str) -> list[Any]:
        return [r.get(key) if isinstance(r, dict) else None for r in roi]

    out = pd.DataFrame(index=range(n))
    for col in CSV_COLUMNS:
        if col == "roi_times":
            values = pd.Series(roi_part("times"), dtype=object)
        elif col == "roi_currency":
            values = pd.Series(roi_part("currency"), dtype=object)
        elif col == "roi_percentage":
            values = pd.Series(roi_part("percentage"), dtype=object)
        elif col == "vs_currency":
            values = pd.Series([vs_currency.lower()] * n, dtype=object)
        elif col == "snapshot_at":
            values = pd.Series([snapshot_at] * n, dtype=object)
        elif col in frame:
            values = frame[col].reset_index(drop=True)
        else:
            values = pd.Series([None] * n, dtype=object)
        out[col] = values
    return normalise_types(out)


def normalise_types(frame: pd.DataFrame) -> pd.DataFrame:
    """Give each column its type: float numbers, UTC timestamps, nullable ints, text. Columns that
    already have their type (as pyarrow reads a clean CSV) are left as they are."""
    out = frame.copy()
    for col in TEXT_COLUMNS:
        if col in out:
            series = _empty_as_missing(out[col])
            out[col] = series.astype("str").where(series.notna(), None)
    for col in NUMERIC_COLUMNS:
        if col not in out:
            continue
        if out[col].dtype.kind in "fiu":
            out[col] = out[col].astype("float64")
        else:
            out[col] = _coerce(_empty_as_missing(out[col], nan_too=True), _to_number)
    for col in TIMESTAMP_COLUMNS:
        if col not in out:
            continue
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.tz_convert("UTC")
        elif out[col].dtype.kind == "M":
            out[col] = out[col].dt.tz_localize("UTC")
        else:
            out[col] = _coerce(_empty_as_missing(out[col]), _to_timestamp)
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.as_unit("us")  # one unit whatever the reader chose
    rank = out.get("market_cap_rank")
    if rank is not None and rank.dtype == "float64":
        whole = rank.isna() | ((rank == rank.round()) & (rank.abs() <= EXACT_INTEGER_LIMIT))
        if whole.all():
            out["market_cap_rank"] = rank.astype("Int64")
    return out


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the table with the stable column order; timestamps as ISO 8601 UTC (Z). Values are
    quoted when they must be; when a text value holds a carriage return (which Python's csv
    writer leaves unquoted) every text value is quoted, so that it reads back as it was."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    table = frame.loc[:, list(CSV_COLUMNS)]
    quoting = csv.QUOTE_NONNUMERIC if _holds_carriage_return(table) else csv.QUOTE_MINIMAL
    table.to_csv(path, index=False, date_format=CSV_TIMESTAMP_FORMAT, quoting=quoting)
    return path


def _holds_carriage_return(table: pd.DataFrame) -> bool:
    for column in table.columns:
        series = table[column]
        if series.dtype.kind in "fiumM" or isinstance(series.dtype, pd.DatetimeTZDtype):
            continue
        if series.astype("str").str.contains("\r", regex=False).any():
            return True
    return False


def read_snapshot_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV written by `transform` (any column order) back into the typed table.

    Only an empty field counts as missing (a coin may be called "NA"). The fast path is pyarrow,
    parsing on every core; it cannot take a line break inside a
    value, nor text in a numeric column (a value kept for validation to quarantine). Such a file
    is read by Python's csv reader as text, every column then typed as `transform` types it, so
    both paths give the same table."""
    path = Path(path)
    header = read_csv_header(path)
    _require_pyarrow()  # a missing package is a broken install, not a malformed file
    try:
        frame = _read_with_pyarrow(path)
        fast = _one_record_per_line(path, len(frame))
    except Exception:  # pyarrow raises its own error types: the careful path decides
        fast = False
    if not fast:
        frame = _read_as_text(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    return normalise_types(frame.loc[:, list(header)])


def _require_pyarrow() -> None:
    """MissingPackageError when pyarrow cannot be imported: it is part of the ETL core."""
    try:
        import pyarrow
        import pyarrow.csv  # noqa: F401
    except ImportError as exc:
        raise MissingPackageError(
            f"the Python package pyarrow is not installed ({first_line(exc)}); the ETL reads "
            "snapshot CSVs with it: pip install -r requirements.txt (or requirements-airflow.txt "
            "on an Airflow worker), or pip install -e . for the ETL core"
        ) from None


def _read_with_pyarrow(path: Path) -> pd.DataFrame:
    """The fast reader: text columns as text, the rank as a float (an integer column with an
    empty field trips pandas' own pyarrow reader), the other columns as pyarrow infers them."""
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    types = {c: pa.string() for c in TEXT_COLUMNS} | {"market_cap_rank": pa.float64()}
    options = pa_csv.ConvertOptions(
        column_types=types,
        null_values=[""],
        true_values=[],  # "true" in a numeric column is text for validation, not a boolean
        false_values=[],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    return pa_csv.read_csv(path, convert_options=options).to_pandas()


def _read_as_text(path: Path) -> pd.DataFrame:
    """Every field as text (an empty one missing), with Python's csv reader: line breaks inside
    quoted values are kept, and a record of the wrong width is an error."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, strict=True)
            names = [name.strip() for name in next(reader)]
            records = []
            for record in reader:
                if not record:
                    continue  # a blank line
                if len(record) != len(names):
                    raise InputFileError(
                        f"CSV file {path} is malformed: line {reader.line_num} has "
                        f"{len(record)} fields, expected {len(names)}"
                    )
                records.append([value if value != "" else None for value in record])
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputFileError(f"CSV file {path} is malformed: {first_line(exc)}") from None
    return pd.DataFrame(records, columns=names, dtype=object)


def _one_record_per_line(path: Path, records: int) -> bool:
    """Whether the file holds exactly one line per record after the header and no carriage
    return: then no value holds a line break, which the fast reader would split or drop."""
    lines = 0
    with path.open("rb") as fh:
        while block := fh.read(READ_BLOCK_BYTES):
            if b"\r" in block:
                return False
            lines += block.count(b"\n")
            last = block
    if records == 0:
        return True
    return lines == records + 1 or (lines == records and not last.endswith(b"\n"))


def check_csv_file(path: Path) -> None:
    """The one check of a snapshot CSV file before it is read: it exists and is not empty."""
    if not path.is_file():
        raise InputFileError(
            f"CSV file {path} does not exist; create it with `python etl.py transform`"
        )
    if path.stat().st_size == 0:
        raise InputFileError(f"CSV file {path} is empty; run `python etl.py transform` again")


def read_csv_header(path: str | Path) -> list[str]:
    """The header of a snapshot CSV, checked against CSV_COLUMNS."""
    path = Path(path)
    check_csv_file(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # tolerate Excel's BOM
            header = next(csv.reader(fh), [])
    except UnicodeDecodeError:
        raise InputFileError(f"CSV file {path} is not UTF-8 text") from None
    header = [h.strip() for h in header]
    missing = [c for c in CSV_COLUMNS if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        problems = []
        if missing:
            problems.append(f"missing columns {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown columns {', '.join(unknown[:5])}")
        if len(set(header)) != len(header):
            problems.append("repeated column names")
        raise InputFileError(
            f"CSV file {path} is not a snapshot table ({'; '.join(problems)}); "
            "produce it with `python etl.py transform`"
        )
    return header
