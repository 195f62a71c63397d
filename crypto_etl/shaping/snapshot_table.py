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

from crypto_etl.errors import InputFileError, first_line

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


def _empty_as_missing(series: pd.Series) -> pd.Series:
    """Blank text counts as missing, as an empty CSV field does."""
    if series.dtype.kind in "fiumM":
        return series
    blank = series.astype("str").str.strip().eq("") if series.dtype == object else series.eq("")
    return series.where(~blank.fillna(False).astype(bool), None)


def transform_markets(
    rows: Sequence[dict[str, Any]], vs_currency: str, snapshot_at: datetime
) -> pd.DataFrame:
    """Flatten raw market rows into the CSV_COLUMNS table (UTC timestamps, float numbers)."""
    frame = pd.DataFrame.from_records(list(rows)) if rows else pd.DataFrame()
    roi = frame["roi"] if "roi" in frame else pd.Series([None] * len(frame), dtype=object)

    def roi_part(key: str) -> list[Any]:
        return [r.get(key) if isinstance(r, dict) else None for r in roi]

    out = pd.DataFrame(index=range(len(frame)))
    for col in CSV_COLUMNS:
        if col == "roi_times":
            values = pd.Series(roi_part("times"), dtype=object)
        elif col == "roi_currency":
            values = pd.Series(roi_part("currency"), dtype=object)
        elif col == "roi_percentage":
            values = pd.Series(roi_part("percentage"), dtype=object)
        elif col == "vs_currency":
            values = pd.Series([vs_currency.lower()] * len(frame), dtype=object)
        elif col == "snapshot_at":
            values = pd.Series([snapshot_at] * len(frame), dtype=object)
        elif col in frame:
            values = frame[col].reset_index(drop=True)
        else:
            values = pd.Series([None] * len(frame), dtype=object)
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
            out[col] = _coerce(_empty_as_missing(out[col]), _to_number)
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
        whole = rank.isna() | (rank == rank.round())
        if whole.all():
            out["market_cap_rank"] = rank.astype("Int64")
    return out


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the table with the stable column order; timestamps as ISO 8601 UTC (Z)."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    frame.loc[:, list(CSV_COLUMNS)].to_csv(
        path, index=False, date_format=CSV_TIMESTAMP_FORMAT, quoting=csv.QUOTE_MINIMAL
    )
    return path


def read_snapshot_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV written by `transform` (any column order) back into the typed table."""
    path = Path(path)
    header = read_csv_header(path)
    text = {c: "str" for c in TEXT_COLUMNS}
    try:
        # pyarrow parses on every core; only an empty field counts as missing (a coin may be
        # called "NA").
        frame = pd.read_csv(
            path, engine="pyarrow", dtype=text, keep_default_na=False, na_values=[""]
        )
    except Exception as exc:  # pyarrow raises its own error types for malformed files
        raise InputFileError(f"CSV file {path} is malformed: {first_line(exc)}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return normalise_types(frame.loc[:, list(header)])


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
