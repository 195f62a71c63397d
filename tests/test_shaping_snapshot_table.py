"""crypto_etl.shaping.snapshot_table: raw `/coins/markets` rows to the typed snapshot table, and
its CSV round trip.

Built on the real CoinGecko responses in tests/data; edge cases are those rows with one field
changed, so every other value stays realistic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from crypto_etl.errors import InputFileError, MissingPackageError
from crypto_etl.shaping.snapshot_table import (
    CSV_COLUMNS,
    NUMERIC_COLUMNS,
    TEXT_COLUMNS,
    TIMESTAMP_COLUMNS,
    read_raw_json,
    read_snapshot_csv,
    transform_markets,
    write_csv,
)
from crypto_etl.shaping.validation import validate_snapshots

DATA = Path(__file__).resolve().parent / "data"
ROOT = DATA.parent.parent
TOP50 = "coins_markets_usd_top50.json"
TOP250 = "coins_markets_usd_250.json"
# A fetch time just after each fixture's newest last_updated.
SNAPSHOT_AT = {
    TOP50: datetime(2025, 9, 9, 15, 5, tzinfo=UTC),
    TOP250: datetime(2023, 7, 28, 20, 5, tzinfo=UTC),
}
API_FIELDS = (
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
    "roi",
    "last_updated",
)
ROI_COLUMNS = ("roi_times", "roi_currency", "roi_percentage")


def load_rows(name: str) -> list[dict]:
    """A fresh copy of a fixture's rows (tests change them freely)."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def snapshot(rows: list[dict], name: str = TOP50, vs_currency: str = "usd") -> pd.DataFrame:
    return transform_markets(rows, vs_currency, SNAPSHOT_AT[name])


def row_of(frame: pd.DataFrame, coin_id: str) -> pd.Series:
    matches = frame[frame["id"] == coin_id]
    assert len(matches) == 1, f"expected one row for {coin_id}, found {len(matches)}"
    return matches.iloc[0]


def raises_one_line(call) -> str:
    """Run `call`, expect InputFileError, and return its message after checking it is one line."""
    with pytest.raises(InputFileError) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message
    return message


def round_trip(frame: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    return read_snapshot_csv(write_csv(frame, tmp_path / "snapshot.csv"))


# read_raw_json


def test_read_raw_json_returns_the_fixture_rows_unchanged():
    rows = read_raw_json(DATA / TOP250)

    assert rows == load_rows(TOP250)
    assert len(rows) == 250


def test_read_raw_json_accepts_an_empty_array(tmp_path):
    path = tmp_path / "raw.json"
    path.write_text("[]\n")

    assert read_raw_json(path) == []


def test_read_raw_json_missing_file_says_how_to_create_it(tmp_path):
    path = tmp_path / "absent.json"

    message = raises_one_line(lambda: read_raw_json(path))

    assert str(path) in message
    assert "does not exist" in message
    assert "extract" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("  \n\t\n", "is empty", id="whitespace-only"),
        pytest.param('[{"id": "bitcoin",]', "not valid JSON (line 1, column", id="malformed"),
        pytest.param('[{"id": "bitcoin"}\n', "not valid JSON (line 2", id="truncated"),
        pytest.param('{"id": "bitcoin"}', "must hold a JSON array", id="object-not-array"),
        pytest.param('"bitcoin"', "must hold a JSON array", id="string-not-array"),
        pytest.param('[{"id": "bitcoin"}, 3]', "item 1 ", id="int-item"),
        pytest.param('[{"id": "bitcoin"}, null]', "item 1 ", id="null-item"),
        pytest.param('[[{"id": "bitcoin"}]]', "item 0 ", id="nested-array"),
    ],
)
def test_read_raw_json_rejects_bad_content_with_one_line(tmp_path, content, expected):
    path = tmp_path / "raw.json"
    path.write_text(content, encoding="utf-8")

    message = raises_one_line(lambda: read_raw_json(path))

    assert str(path) in message
    assert expected in message
    if expected.startswith("item"):
        assert "expected an object" in message


def test_read_raw_json_on_a_directory_is_an_input_error(tmp_path):
    message = raises_one_line(lambda: read_raw_json(tmp_path))

    assert "cannot read raw file" in message


def test_read_raw_json_binary_file_is_an_input_error(tmp_path):
    path = tmp_path / "raw.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")

    message = raises_one_line(lambda: read_raw_json(path))

    assert str(path) in message


# transform_markets on the real fixtures


def test_csv_columns_are_the_26_api_fields_with_roi_flattened_then_ours():
    expected = []
    for name in API_FIELDS:
        expected.extend(ROI_COLUMNS if name == "roi" else [name])
    expected.extend(["vs_currency", "snapshot_at"])

    assert len(API_FIELDS) == 26
    assert list(CSV_COLUMNS) == expected
    assert len(CSV_COLUMNS) == 30


@pytest.mark.parametrize("name", [TOP50, TOP250])
def test_fixture_rows_have_exactly_the_26_api_fields(name):
    # Guards the premise of the other tests: the fixtures are complete /coins/markets rows.
    assert {tuple(row) for row in load_rows(name)} == {API_FIELDS}


@pytest.mark.parametrize("name", [TOP50, TOP250])
def test_transform_keeps_every_api_value_in_column_order(name):
    rows = load_rows(name)

    frame = snapshot(rows, name)

    assert list(frame.columns) == list(CSV_COLUMNS)
    assert len(frame) == len(rows)
    assert list(frame.index) == list(range(len(rows)))
    for i, raw in enumerate(rows):
        out = frame.iloc[i]
        for field in API_FIELDS:
            value = raw[field]
            if field == "roi":
                continue
            if value is None:
                assert pd.isna(out[field]), (raw["id"], field)
            elif field in TIMESTAMP_COLUMNS:
                assert out[field] == pd.Timestamp(value), (raw["id"], field)
            else:
                assert out[field] == value, (raw["id"], field)


def test_roi_object_is_flattened_into_three_columns():
    rows = load_rows(TOP250)
    raw = next(r for r in rows if r["id"] == "ethereum")
    assert isinstance(raw["roi"], dict)

    frame = snapshot(rows, TOP250)

    eth = row_of(frame, "ethereum")
    assert eth["roi_times"] == pytest.approx(84.4863692555408)
    assert eth["roi_currency"] == "btc"
    assert eth["roi_percentage"] == pytest.approx(8448.63692555408)
    assert "roi" not in frame.columns


def test_rows_with_roi_null_get_empty_roi_columns():
    rows = load_rows(TOP250)
    with_roi = {r["id"] for r in rows if r["roi"] is not None}
    assert len(with_roi) == 51

    frame = snapshot(rows, TOP250)

    has_roi = frame["roi_currency"].notna()
    assert set(frame.loc[has_roi, "id"]) == with_roi
    assert frame.loc[~has_roi, list(ROI_COLUMNS)].isna().all().all()
    assert frame.loc[has_roi, ["roi_times", "roi_percentage"]].notna().all().all()


def test_roi_object_with_missing_keys_leaves_those_columns_empty():
    rows = load_rows(TOP50)[:1]
    rows[0]["roi"] = {"currency": "usd"}

    frame = snapshot(rows)

    assert frame.loc[0, "roi_currency"] == "usd"
    assert pd.isna(frame.loc[0, "roi_times"])
    assert pd.isna(frame.loc[0, "roi_percentage"])


def test_vs_currency_is_added_in_lower_case_on_every_row():
    frame = snapshot(load_rows(TOP50), vs_currency="USD")

    assert frame["vs_currency"].tolist() == ["usd"] * 50


def test_snapshot_at_is_added_as_the_same_utc_instant_on_every_row():
    fetched = datetime(2025, 9, 9, 17, 5, tzinfo=timezone(timedelta(hours=2)))

    frame = transform_markets(load_rows(TOP50), "usd", fetched)

    assert (frame["snapshot_at"] == pd.Timestamp("2025-09-09T15:05:00Z")).all()
    assert str(frame["snapshot_at"].dt.tz) == "UTC"


@pytest.mark.parametrize("name", [TOP50, TOP250])
def test_every_timestamp_column_is_timezone_aware_utc(name):
    frame = snapshot(load_rows(name), name)

    for col in TIMESTAMP_COLUMNS:
        assert isinstance(frame[col].dtype, pd.DatetimeTZDtype), col
        assert str(frame[col].dt.tz) == "UTC", col
    assert frame.loc[0, "last_updated"] == pd.Timestamp(load_rows(name)[0]["last_updated"])


def test_timestamps_with_an_offset_are_converted_to_utc():
    rows = load_rows(TOP50)[:2]
    rows[0]["last_updated"] = "2025-09-09T17:02:51.243+02:00"
    rows[1]["last_updated"] = "2025-09-09T15:02:51Z"

    frame = snapshot(rows)

    assert frame["last_updated"].tolist() == [
        pd.Timestamp("2025-09-09T15:02:51.243Z"),
        pd.Timestamp("2025-09-09T15:02:51Z"),
    ]
    assert str(frame["last_updated"].dt.tz) == "UTC"


def test_int_in_one_row_and_float_in_the_next_become_one_float_column():
    rows = load_rows(TOP50)
    bitcoin, ethereum = rows[0], rows[1]
    # The quirk under test, as CoinGecko sends it.
    assert type(bitcoin["current_price"]) is int
    assert type(ethereum["current_price"]) is float

    frame = snapshot(rows)

    assert frame["current_price"].dtype == "float64"
    assert row_of(frame, "bitcoin")["current_price"] == 111688.0
    assert row_of(frame, "ethereum")["current_price"] == 4306.28


@pytest.mark.parametrize("name", [TOP50, TOP250])
def test_numeric_columns_are_floats_and_rank_a_nullable_int(name):
    frame = snapshot(load_rows(name), name)

    for col in NUMERIC_COLUMNS:
        expected = "Int64" if col == "market_cap_rank" else "float64"
        assert str(frame[col].dtype) == expected, col
    assert row_of(frame, "bitcoin")["market_cap_rank"] == 1


def test_numbers_sent_as_numeric_text_are_parsed():
    rows = load_rows(TOP50)[:2]
    rows[0]["total_volume"] = "12.5"
    rows[1]["market_cap_rank"] = "2"

    frame = snapshot(rows)

    assert frame.loc[0, "total_volume"] == 12.5
    assert frame.loc[1, "market_cap_rank"] == 2


@pytest.mark.parametrize("name", [TOP50, TOP250])
def test_text_columns_use_the_pandas_str_dtype(name):
    frame = snapshot(load_rows(name), name)

    for col in TEXT_COLUMNS:
        assert isinstance(frame[col].dtype, pd.StringDtype), col
        assert frame[col].dtype == "str", col
        assert frame[col].dtype != object, col


@pytest.mark.parametrize(
    ("field", "bad_value", "kept"),
    [
        ("current_price", "n/a", "n/a"),
        ("market_cap", {"value": 1}, "{'value': 1}"),
        ("high_24h", [1, 2], "[1, 2]"),
        ("market_cap_rank", "first", "first"),
        ("last_updated", "yesterday", "yesterday"),
        ("ath_date", "2025-13-45T00:00:00Z", "2025-13-45T00:00:00Z"),
    ],
)
def test_unparseable_values_are_kept_as_text_not_dropped(field, bad_value, kept):
    rows = load_rows(TOP50)[:3]
    rows[1][field] = bad_value

    frame = snapshot(rows)

    assert frame.loc[1, field] == kept
    # The neighbours still parse.
    for i in (0, 2):
        expected = rows[i][field]
        if field in TIMESTAMP_COLUMNS:
            expected = pd.Timestamp(expected)
        assert frame.loc[i, field] == expected


def test_unparseable_values_survive_the_csv_round_trip(tmp_path):
    rows = load_rows(TOP50)[:3]
    rows[0]["current_price"] = "n/a"
    rows[1]["last_updated"] = "yesterday"
    rows[2]["market_cap_rank"] = "first"

    back = round_trip(snapshot(rows), tmp_path)

    assert back.loc[0, "current_price"] == "n/a"
    assert back.loc[1, "last_updated"] == "yesterday"
    assert back.loc[2, "market_cap_rank"] == "first"
    assert back.loc[1, "current_price"] == 4306.28
    assert back.loc[0, "last_updated"] == pd.Timestamp("2025-09-09T15:02:51.243Z")


def test_blank_text_counts_as_missing():
    rows = load_rows(TOP50)[:2]
    rows[0]["name"] = ""
    rows[1]["image"] = ""

    frame = snapshot(rows)

    assert pd.isna(frame.loc[0, "name"])
    assert pd.isna(frame.loc[1, "image"])


def test_fields_absent_from_the_rows_become_empty_columns():
    dropped = ("roi", "max_supply")
    rows = [{k: v for k, v in r.items() if k not in dropped} for r in load_rows(TOP50)]

    frame = snapshot(rows)

    assert list(frame.columns) == list(CSV_COLUMNS)
    assert frame["max_supply"].isna().all()
    assert frame[list(ROI_COLUMNS)].isna().all().all()


def test_no_rows_give_an_empty_table_with_every_column(tmp_path):
    frame = snapshot([])

    assert frame.empty
    assert list(frame.columns) == list(CSV_COLUMNS)
    back = round_trip(frame, tmp_path)
    assert back.empty
    assert list(back.columns) == list(CSV_COLUMNS)


# write_csv and read_snapshot_csv


@pytest.mark.parametrize("name", [TOP50, TOP250])
def test_csv_round_trip_gives_an_equal_frame(tmp_path, name):
    frame = snapshot(load_rows(name), name)

    pd.testing.assert_frame_equal(round_trip(frame, tmp_path), frame)


@pytest.mark.parametrize("name", [TOP50, TOP250])
def test_csv_round_trip_keeps_every_value_and_dtype_family(tmp_path, name):
    frame = snapshot(load_rows(name), name)

    back = round_trip(frame, tmp_path)

    # Values, column order and dtypes up to the timestamp unit.
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    for col in CSV_COLUMNS:
        if col in TIMESTAMP_COLUMNS:
            assert isinstance(back[col].dtype, pd.DatetimeTZDtype), col
            assert str(back[col].dt.tz) == "UTC", col
        else:
            assert back[col].dtype == frame[col].dtype, col


def test_write_csv_header_is_csv_columns_in_order_whatever_the_frame_order(tmp_path):
    frame = snapshot(load_rows(TOP50))
    shuffled = frame[list(reversed(CSV_COLUMNS))]

    path = write_csv(shuffled, tmp_path / "out" / "nested" / "snapshot.csv")

    assert path == tmp_path / "out" / "nested" / "snapshot.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert len(lines) == 51


def test_write_csv_writes_timestamps_as_iso_8601_utc_with_z(tmp_path):
    path = write_csv(snapshot(load_rows(TOP50)), tmp_path / "snapshot.csv")

    first = path.read_text(encoding="utf-8").splitlines()[1].split(",")
    by_column = dict(zip(CSV_COLUMNS, first, strict=True))
    assert by_column["id"] == "bitcoin"
    assert by_column["last_updated"] == "2025-09-09T15:02:51.243000Z"
    assert by_column["snapshot_at"] == "2025-09-09T15:05:00.000000Z"
    assert by_column["roi_times"] == ""


def test_read_snapshot_csv_accepts_any_column_order(tmp_path):
    frame = snapshot(load_rows(TOP50))
    path = tmp_path / "reordered.csv"
    write_csv(frame, path)
    reordered = pd.read_csv(path, dtype=str, keep_default_na=False)[list(reversed(CSV_COLUMNS))]
    reordered.to_csv(path, index=False)

    back = read_snapshot_csv(path)

    pd.testing.assert_frame_equal(back[list(CSV_COLUMNS)], frame, check_dtype=False)


def test_read_snapshot_csv_accepts_windows_line_endings(tmp_path):
    frame = snapshot(load_rows(TOP50))
    path = write_csv(frame, tmp_path / "snapshot.csv")
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))

    back = read_snapshot_csv(path)

    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


@pytest.mark.parametrize("word", ["NA", "null", "NULL", "None", "nan", "N/A", "#N/A", "true"])
def test_coin_named_like_a_missing_value_survives_the_round_trip_as_text(tmp_path, word):
    rows = load_rows(TOP50)[:2]
    for field in ("id", "symbol", "name"):
        rows[0][field] = word

    back = round_trip(snapshot(rows), tmp_path)

    for field in ("id", "symbol", "name"):
        assert back.loc[0, field] == word, field
        assert back[field].dtype == "str", field
    assert back.loc[1, "name"] == "Ethereum"


def test_text_with_commas_quotes_and_newlines_survives_the_round_trip(tmp_path):
    rows = load_rows(TOP50)[:3]
    rows[0]["name"] = 'Wrapped "Bitcoin", bridged'
    rows[1]["name"] = "Two\nlines"
    rows[2]["name"] = "Ünïcødé ₿ 币"

    back = round_trip(snapshot(rows), tmp_path)

    assert back["name"].tolist() == [rows[0]["name"], rows[1]["name"], rows[2]["name"]]


def test_rows_without_roi_read_back_with_missing_roi_not_the_text_none(tmp_path):
    rows = [r for r in load_rows(TOP50) if r["roi"] is None][:5]

    back = round_trip(snapshot(rows), tmp_path)

    assert back["roi_currency"].isna().all()
    assert back["roi_currency"].dtype == "str"
    assert back["roi_times"].dtype == "float64"


def test_read_snapshot_csv_missing_file(tmp_path):
    path = tmp_path / "absent.csv"

    message = raises_one_line(lambda: read_snapshot_csv(path))

    assert str(path) in message
    assert "does not exist" in message
    assert "transform" in message


def test_read_snapshot_csv_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    message = raises_one_line(lambda: read_snapshot_csv(path))

    assert "is empty" in message


def written_csv(tmp_path: Path) -> Path:
    return write_csv(snapshot(load_rows(TOP50)[:3]), tmp_path / "good.csv")


def test_read_snapshot_csv_names_missing_columns(tmp_path):
    frame = pd.read_csv(written_csv(tmp_path), dtype=str)
    path = tmp_path / "missing.csv"
    frame.drop(columns=["market_cap", "snapshot_at"]).to_csv(path, index=False)

    message = raises_one_line(lambda: read_snapshot_csv(path))

    assert "missing columns market_cap, snapshot_at" in message


def test_read_snapshot_csv_names_unknown_columns(tmp_path):
    frame = pd.read_csv(written_csv(tmp_path), dtype=str)
    frame["sparkline"] = "x"
    path = tmp_path / "unknown.csv"
    frame.to_csv(path, index=False)

    message = raises_one_line(lambda: read_snapshot_csv(path))

    assert "unknown columns sparkline" in message
    assert "missing" not in message


def test_read_snapshot_csv_rejects_repeated_columns(tmp_path):
    good = written_csv(tmp_path).read_text(encoding="utf-8").splitlines()
    path = tmp_path / "repeated.csv"
    path.write_text(good[0] + ",id\n" + good[1] + ",bitcoin\n", encoding="utf-8")

    message = raises_one_line(lambda: read_snapshot_csv(path))

    assert "repeated column names" in message


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(bytes(range(256)) * 4, id="binary"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00\xff" * 64, id="png-header"),
        pytest.param(b"hello world\nthis is not a table\n", id="prose"),
        pytest.param(b'{"id": "bitcoin"}\n', id="json"),
    ],
)
def test_read_snapshot_csv_rejects_garbage(tmp_path, content):
    path = tmp_path / "garbage.csv"
    path.write_bytes(content)

    message = raises_one_line(lambda: read_snapshot_csv(path))

    assert str(path) in message


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("bitcoin,btc,Bitcoin\n", id="too-few-fields"),
        pytest.param(",".join(["x"] * 31) + "\n", id="too-many-fields"),
    ],
)
def test_read_snapshot_csv_rejects_rows_of_the_wrong_width(tmp_path, body):
    path = tmp_path / "ragged.csv"
    path.write_text(",".join(CSV_COLUMNS) + "\n" + body, encoding="utf-8")

    message = raises_one_line(lambda: read_snapshot_csv(path))

    assert "malformed" in message


def test_read_snapshot_csv_header_with_spaces_after_commas(tmp_path):
    good = written_csv(tmp_path).read_text(encoding="utf-8").split("\n", 1)
    path = tmp_path / "spaced.csv"
    path.write_text(good[0].replace(",", ", ") + "\n" + good[1], encoding="utf-8")

    back = read_snapshot_csv(path)

    assert list(back.columns) == list(CSV_COLUMNS)
    assert back.loc[0, "id"] == "bitcoin"


# Size: 100,000 rows


@pytest.fixture(scope="module")
def rows_100k() -> list[dict]:
    """The 250 real rows 400 times, each copy's last_updated five minutes later."""
    rows = load_rows(TOP250)
    base = pd.to_datetime(pd.Series([r["last_updated"] for r in rows]), utc=True)
    out = []
    for k in range(400):
        stamps = (base + pd.Timedelta(minutes=5 * k)).dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
        out.extend(
            {**row, "last_updated": stamp[:-3] + "Z"}
            for row, stamp in zip(rows, stamps, strict=True)
        )
    return out


@pytest.fixture(scope="module")
def frame_100k(rows_100k) -> pd.DataFrame:
    return transform_markets(rows_100k, "usd", datetime(2023, 7, 30, 9, 30, tzinfo=UTC))


def test_transform_handles_100k_rows(rows_100k, frame_100k):
    frame = frame_100k

    assert len(frame) == 100_000
    assert list(frame.columns) == list(CSV_COLUMNS)
    assert frame["current_price"].dtype == "float64"
    assert str(frame["market_cap_rank"].dtype) == "Int64"
    assert str(frame["last_updated"].dt.tz) == "UTC"
    assert not frame.duplicated(["id", "vs_currency", "last_updated"]).any()
    last = frame.iloc[-1]
    assert last["id"] == rows_100k[-1]["id"]
    assert last["last_updated"] == pd.Timestamp(rows_100k[-1]["last_updated"])
    assert frame["roi_currency"].notna().sum() == 51 * 400


def test_csv_round_trip_and_validation_of_100k_rows(tmp_path, frame_100k):
    back = round_trip(frame_100k, tmp_path)

    pd.testing.assert_frame_equal(back, frame_100k, check_dtype=False)
    report = validate_snapshots(back, now=datetime(2023, 7, 30, 9, 30, tzinfo=UTC))
    assert report.passed
    assert report.rejected_count == 0


# a missing pyarrow is a broken install, not a malformed file


def test_without_pyarrow_reading_a_csv_names_the_missing_package(tmp_path, monkeypatch):
    path = write_csv(snapshot(load_rows(TOP50)), tmp_path / "snapshot.csv")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)

    with pytest.raises(MissingPackageError) as info:
        read_snapshot_csv(path)

    message = str(info.value)
    assert "\n" not in message
    assert "pyarrow is not installed" in message
    assert "requirements.txt" in message and "requirements-airflow.txt" in message
    assert "malformed" not in message
    assert not isinstance(info.value, InputFileError)


def test_without_pyarrow_etl_load_exits_1_with_one_line_naming_the_package(tmp_path):
    write_csv(snapshot(load_rows(TOP50)), tmp_path / "crypto_top_50.csv")
    # etl.py as a user runs it, in an interpreter where importing pyarrow fails.
    script = (
        "import runpy, sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.csv'] = None; "
        f"sys.argv = ['etl.py', 'load', '--csv_path=crypto_top_50.csv']; "
        f"runpy.run_path({str(ROOT / 'etl.py')!r}, run_name='__main__')"
    )
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'crypto.db'}", "PAGER": "cat"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert "pyarrow is not installed" in errors[0]
    assert "malformed" not in done.stderr
