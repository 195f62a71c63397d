"""Properties of transform, validation and load over any CoinGecko-shaped row (hypothesis): nulls,
missing keys, huge and tiny numbers, exponents, numbers as text, odd ids and unicode. Each row
round-trips through the CSV unchanged, and the load either stores it with the same values or
quarantines it with a reason; nothing is lost and nothing is counted twice.

Example counts are modest (CI time); the database is one SQLite file per test, emptied between
examples, and the same property runs once more on PostgreSQL with fewer examples.
"""

from __future__ import annotations

import math
import string
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from crypto_etl.shaping.snapshot_table import (
    NAN_TEXTS,
    NUMERIC_COLUMNS,
    TEXT_COLUMNS,
    TIMESTAMP_COLUMNS,
    read_snapshot_csv,
    transform_markets,
    write_csv,
)
from crypto_etl.shaping.validation import validate_snapshots
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.snapshots import load_snapshot_csv

NOW = datetime(2025, 10, 28, 8, 0, tzinfo=UTC)
SNAPSHOT_AT = NOW - timedelta(seconds=30)
NUMBER_FIELDS = [
    "current_price",
    "market_cap",
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
    "atl",
    "atl_change_percentage",
]

# -- what CoinGecko (or something pretending to be it) may send -----------------------------------
odd_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=30,
)
coin_ids = st.one_of(
    st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=40),
    odd_text,  # unicode, quotes, commas, newlines, blanks
    st.sampled_from(["NA", "null", "None", "nan", "-", "0", "1e5", " bitcoin "]),
)
floats = st.floats(allow_nan=False, allow_infinity=False)
numbers = st.one_of(
    st.none(),
    floats,
    st.floats(min_value=-1e-300, max_value=1e-300, allow_nan=False),  # tiny
    st.sampled_from([0.0, -0.0, 1e308, 5e-324, 1.7976931348623157e308, 2.5e-12]),
    st.integers(min_value=-(2**80), max_value=2**80),  # huge integers, beyond int64
    floats.map(lambda f: f"{f:e}"),  # a number as text with an exponent
    st.sampled_from(["1e-9", "2.5E+30", "12", "n/a", "", " ", "1,000", "Infinity", "NaN"]),
)
moments = st.datetimes(
    min_value=datetime(2009, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)
)
timestamps = st.one_of(
    st.none(),
    moments.map(lambda m: m.isoformat(timespec="milliseconds").replace("+00:00", "Z")),
    moments.map(lambda m: m.astimezone(UTC).isoformat()),  # with an offset
    st.sampled_from(["", "yesterday", "2025-13-40T99:00:00Z", "2025-10-28"]),
)
ranks = st.one_of(
    st.none(), st.integers(min_value=-5, max_value=20000), floats, st.sampled_from(["1", "x"])
)
rois = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"times": numbers, "currency": st.one_of(st.none(), odd_text), "percentage": numbers}
    ),
)


@st.composite
def market_rows(draw) -> dict:
    """One /coins/markets row; any key may be missing."""
    row = {
        "id": draw(st.one_of(st.none(), coin_ids)),
        "symbol": draw(st.one_of(st.none(), odd_text)),
        "name": draw(st.one_of(st.none(), odd_text)),
        "image": draw(st.one_of(st.none(), odd_text)),
        "market_cap_rank": draw(ranks),
        "roi": draw(rois),
        "last_updated": draw(timestamps),
        "ath_date": draw(timestamps),
        "atl_date": draw(timestamps),
    }
    for name in NUMBER_FIELDS:
        row[name] = draw(numbers)
    dropped = draw(st.sets(st.sampled_from(sorted(row))))
    return {k: v for k, v in row.items() if k not in dropped}


rows_lists = st.lists(market_rows(), min_size=1, max_size=5)


def same(a, b) -> bool:
    """Equal values, a missing value equal only to a missing one."""
    a_missing = a is None or a is pd.NA or a is pd.NaT or (isinstance(a, float) and math.isnan(a))
    b_missing = b is None or b is pd.NA or b is pd.NaT or (isinstance(b, float) and math.isnan(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    return a == b


def assert_same_table(left: pd.DataFrame, right: pd.DataFrame) -> None:
    assert list(left.columns) == list(right.columns)
    assert len(left) == len(right)
    for column in left.columns:
        for i, (a, b) in enumerate(zip(left[column], right[column], strict=True)):
            assert same(a, b), (column, i, a, b)


# -- transform and the CSV ---------------------------------------------------------------------
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_lists)
def test_any_row_round_trips_through_the_csv_unchanged(rows, tmp_path_factory):
    path = tmp_path_factory.mktemp("csv") / "snapshot.csv"
    frame = transform_markets(rows, "usd", SNAPSHOT_AT)
    assert len(frame) == len(rows)
    write_csv(frame, path)
    assert_same_table(read_snapshot_csv(path), frame)


@settings(max_examples=60, deadline=None)
@given(rows=rows_lists)
def test_transform_keeps_every_value_it_cannot_parse_for_validation(rows):
    frame = transform_markets(rows, "usd", SNAPSHOT_AT)
    for i, row in enumerate(rows):
        for column in NUMERIC_COLUMNS:
            if column.startswith("roi_") or column not in row:
                continue
            value, kept = row[column], frame[column].iloc[i]
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert same(float(value), kept) or (math.isinf(float(value)) and kept == value)
            elif isinstance(value, str) and value.strip().lower() in NAN_TEXTS:
                assert pd.isna(kept)  # "NaN" is no value: JSON has none, CSV readers agree
            elif isinstance(value, str) and value.strip():
                parsed = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
                assert same(float(parsed), kept) if not pd.isna(parsed) else kept == value


# -- validation --------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(rows=rows_lists)
def test_every_row_is_valid_or_rejected_with_a_rule_and_a_reason(rows):
    frame = transform_markets(rows, "usd", SNAPSHOT_AT)
    report = validate_snapshots(frame, NOW)
    assert report.rows == len(rows)
    rejected = set(report.rejected_rule.index)
    for label in rejected:
        assert report.rejected_rule[label]
        assert report.rejected_reason[label].strip()
    valid = frame.loc[report.valid_mask(frame.index)]
    assert len(valid) + len(rejected) == len(frame)
    for _, row in valid.iterrows():  # what passes is what the schema can hold
        assert isinstance(row["id"], str) and row["id"].strip()
        assert isinstance(row["current_price"], float) and math.isfinite(row["current_price"])
        assert row["current_price"] >= 0
        assert isinstance(row["last_updated"], pd.Timestamp)
        assert row["last_updated"] <= pd.Timestamp(NOW + timedelta(minutes=5))
        for column in NUMERIC_COLUMNS:
            value = row[column]
            assert pd.isna(value) or (isinstance(value, float | int) and math.isfinite(value))


# -- the load ----------------------------------------------------------------------------------
STORED = [c for c in NUMERIC_COLUMNS if c != "market_cap_rank"]


def check_load(engine, rows, folder) -> None:
    """Load the rows' CSV; every row is stored with its values or quarantined with a reason."""
    with engine.begin() as conn:
        for table in ("market_snapshots", "rejected_rows", "coins"):
            conn.execute(text(f"DELETE FROM {table}"))
    path = folder / "snapshot.csv"
    frame = transform_markets(rows, "usd", SNAPSHOT_AT)
    write_csv(frame, path)
    result, report = load_snapshot_csv(engine, path, None, NOW)

    assert result.rows_in == len(rows)
    assert result.loaded + result.skipped + result.rejected == len(rows)
    assert result.rejected == report.rejected_count
    with engine.connect() as conn:
        quarantined = conn.execute(text("SELECT rule, reason FROM rejected_rows")).all()
        stored = conn.execute(
            text(
                f"SELECT coin_id, vs_currency, last_updated, {', '.join(STORED)}, "
                "market_cap_rank FROM market_snapshots"
            )
        ).all()
    # The same broken row twice is quarantined once (by its hash): at most, never more.
    assert len(quarantined) <= result.rejected and all(r and why for r, why in quarantined)
    assert len(quarantined) >= min(1, result.rejected)
    assert len(stored) == result.loaded

    valid = frame.loc[report.valid_mask(frame.index)]
    by_key = {}
    for _, row in valid.iterrows():
        by_key.setdefault((row["id"], row["vs_currency"], row["last_updated"]), row)
    assert len(by_key) == len(stored)
    for coin, currency, when, *values in stored:
        when = pd.Timestamp(when).tz_localize("UTC") if pd.Timestamp(when).tzinfo is None else when
        row = by_key[(coin, currency, pd.Timestamp(when).tz_convert("UTC"))]
        *numbers, rank = values
        for column, value in zip(STORED, numbers, strict=True):
            assert same(value, row[column]), (column, value, row[column])
        assert same(rank, None if pd.isna(row["market_cap_rank"]) else int(row["market_cap_rank"]))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=rows_lists)
def test_the_load_stores_each_row_unchanged_or_quarantines_it_sqlite(rows, sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    try:
        check_load(engine, rows, tmp_path)
    finally:
        engine.dispose()


@pytest.mark.postgres
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=rows_lists)
def test_the_load_stores_each_row_unchanged_or_quarantines_it_postgresql(rows, pg_url, tmp_path):
    engine = make_engine(pg_url)
    try:
        check_load(engine, rows, tmp_path)
    finally:
        engine.dispose()


def test_the_strategies_reach_the_odd_cases():
    """The generators do produce what the properties are about (no silent narrowing)."""
    assert TEXT_COLUMNS and TIMESTAMP_COLUMNS
    seen = {"huge": False, "exponent": False, "missing": False}

    @settings(max_examples=200, deadline=None)
    @given(row=market_rows())
    def look(row):
        values = list(row.values())
        seen["huge"] |= any(isinstance(v, int) and abs(v) > 2**63 for v in values)
        seen["exponent"] |= any(isinstance(v, str) and "e" in v.lower() for v in values)
        seen["missing"] |= "id" not in row

    look()
    assert all(seen.values()), seen


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([{"id": "a", "market_cap_rank": 1}, {"id": "b"}], id="a coin without rank"),
        pytest.param([{}, {"id": "a"}], id="an empty object"),
        pytest.param([{"id": "a", "name": "line\rbreak"}], id="a carriage return"),
        pytest.param([{"id": "a", "name": "two\nlines"}], id="a line feed"),
        pytest.param([{"id": "a", "ath": " "}, {"id": "b", "ath": " "}], id="blank numbers"),
        pytest.param([{"id": "a", "market_cap_rank": 2**70}], id="a rank beyond int64"),
        pytest.param([{"id": "a", "low_24h": "NaN"}], id="NaN as text"),
        pytest.param([{"id": "a", "ath": "true"}, {"id": "b", "ath": "false"}], id="booleans"),
    ],
)
def test_what_the_properties_found_stays_fixed(rows, tmp_path):
    """Each of these once broke the round trip (a read error, a row lost or shifted, a value
    changed) or the load."""
    path = tmp_path / "snapshot.csv"
    frame = transform_markets(rows, "usd", SNAPSHOT_AT)
    assert len(frame) == len(rows)
    write_csv(frame, path)
    assert_same_table(read_snapshot_csv(path), frame)
    report = validate_snapshots(frame, NOW)
    rank = frame["market_cap_rank"]
    assert all(pd.isna(r) or r <= 2**31 - 1 for r in rank[report.valid_mask(frame.index)])
