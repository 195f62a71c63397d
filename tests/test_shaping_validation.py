"""crypto_etl.shaping.validation: each data quality rule, the per-row verdict and the printed
report.

Tables are the real fixture rows run through transform_markets, with one field changed where a
rule is under test; `now` is injected, never read from the clock.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from crypto_etl.shaping.snapshot_table import read_snapshot_csv, transform_markets, write_csv
from crypto_etl.shaping.validation import (
    NON_NEGATIVE_COLUMNS,
    RuleResult,
    ValidationReport,
    validate_snapshots,
)

DATA = Path(__file__).resolve().parent / "data"
TOP50 = "coins_markets_usd_top50.json"
TOP250 = "coins_markets_usd_250.json"
# Each fixture's fetch time: just after its newest last_updated.
FETCHED_AT = {
    TOP50: datetime(2025, 9, 9, 15, 5, tzinfo=UTC),
    TOP250: datetime(2023, 7, 28, 20, 5, tzinfo=UTC),
}
NOW = FETCHED_AT[TOP50]
RULES = (
    "required_fields",
    "numeric",
    "timestamps",
    "non_negative",
    "high_low",
    "rank",
    "not_future",
    "unique_key",
    "stale",
)
CRITICAL = RULES[:-1]


def load_rows(name: str = TOP50) -> list[dict]:
    """A fresh copy of a fixture's rows (tests change them freely)."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def table(rows: list[dict], name: str = TOP50, vs_currency: str = "usd") -> pd.DataFrame:
    return transform_markets(rows, vs_currency, FETCHED_AT[name])


def validate(frame: pd.DataFrame, now: datetime = NOW, **options) -> ValidationReport:
    return validate_snapshots(frame, now=now, **options)


def rule(report: ValidationReport, name: str) -> RuleResult:
    (found,) = [r for r in report.results if r.rule == name]
    return found


def failing(report: ValidationReport) -> set[str]:
    return {r.rule for r in report.results if not r.passed}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rows_with(changes: dict[int, dict]) -> list[dict]:
    """The first few top-50 rows, with `changes[i]` applied to row i."""
    rows = load_rows()[: max(changes) + 3]
    for i, fields in changes.items():
        rows[i].update(fields)
    return rows


# The fixtures themselves: the prototype's validation failed on its own output.


@pytest.mark.parametrize("name", [TOP50, TOP250])
def test_unmodified_fixture_passes_every_critical_rule(name):
    report = validate(table(load_rows(name), name), now=FETCHED_AT[name])

    assert report.passed
    assert report.rejected_count == 0
    assert report.rows == len(load_rows(name))
    for result in report.results:
        if result.severity == "critical":
            assert result.passed, result
    assert report.rejected_rule.empty
    assert report.rejected_reason.empty


@pytest.mark.parametrize("name", [TOP50, TOP250])
def test_fixture_passes_after_the_csv_round_trip(tmp_path, name):
    path = write_csv(table(load_rows(name), name), tmp_path / "snapshot.csv")

    report = validate(read_snapshot_csv(path), now=FETCHED_AT[name])

    assert report.passed
    assert report.rejected_count == 0


def test_top50_fixture_has_no_warning_either():
    report = validate(table(load_rows()))

    assert failing(report) == set()
    assert report.format().splitlines()[-1] == "PASSED: no critical rule failed."


def test_rules_run_in_a_fixed_order_and_only_stale_is_a_warning():
    report = validate(table(load_rows()))

    assert [r.rule for r in report.results] == list(RULES)
    severities = {r.rule: r.severity for r in report.results}
    assert {k for k, v in severities.items() if v == "critical"} == set(CRITICAL)
    assert severities["stale"] == "warning"


# required_fields


@pytest.mark.parametrize("field", ["id", "symbol", "name", "current_price", "last_updated"])
def test_each_required_field_missing_rejects_the_row(field):
    frame = table(rows_with({1: {field: None}}))

    report = validate(frame)

    assert not report.passed
    assert rule(report, "required_fields").failed == 1
    assert report.rejected_rule.to_dict() == {1: "required_fields"}
    assert report.rejected_reason.to_dict() == {1: f"missing {field}"}


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_text_counts_as_a_missing_required_field(blank):
    report = validate(table(rows_with({0: {"name": blank}})))

    assert report.rejected_rule.to_dict() == {0: "required_fields"}
    assert report.rejected_reason.to_dict() == {0: "missing name"}


def test_several_missing_fields_are_named_together():
    report = validate(table(rows_with({2: {"symbol": None, "current_price": None}})))

    assert report.rejected_reason.to_dict() == {2: "missing symbol, current_price"}


def test_missing_id_is_shown_as_no_id_in_the_examples():
    report = validate(table(rows_with({0: {"id": None}})))

    assert rule(report, "required_fields").examples == ["<no id>"]


def test_missing_required_column_rejects_every_row():
    frame = table(load_rows()[:4]).drop(columns=["vs_currency"])

    report = validate(frame)

    assert rule(report, "required_fields").failed == 4
    assert set(report.rejected_rule) == {"required_fields"}
    assert set(report.rejected_reason) == {"missing vs_currency"}


def test_optional_fields_may_be_missing():
    rows = rows_with({0: {"max_supply": None, "roi": None, "high_24h": None, "image": None}})

    report = validate(table(rows))

    assert report.passed


# numeric


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("current_price", "n/a"),
        ("market_cap", {"value": 1}),
        ("total_volume", "12,5"),
        ("price_change_24h", "--"),
        ("current_price", float("inf")),
        ("ath_change_percentage", float("-inf")),
    ],
)
def test_values_that_are_not_finite_numbers_reject_the_row(field, value):
    report = validate(table(rows_with({1: {field: value}})))

    result = rule(report, "numeric")
    assert result.failed == 1
    assert result.examples == ["ethereum"]
    assert report.rejected_rule.to_dict() == {1: "numeric"}
    assert report.rejected_reason[1].startswith("non-numeric value")


def test_numeric_text_is_a_number():
    report = validate(table(rows_with({1: {"current_price": "4306.28"}})))

    assert report.passed


# timestamps


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("last_updated", "yesterday"),
        ("ath_date", "2025-13-45T00:00:00Z"),
        ("atl_date", "not a date"),
    ],
)
def test_unparseable_timestamps_reject_the_row(field, value):
    report = validate(table(rows_with({0: {field: value}})))

    assert rule(report, "timestamps").failed == 1
    assert report.rejected_rule.to_dict() == {0: "timestamps"}
    assert report.rejected_reason.to_dict() == {0: "unparseable timestamp"}


def test_missing_optional_timestamp_is_fine():
    report = validate(table(rows_with({0: {"ath_date": None, "atl_date": None}})))

    assert report.passed


# non_negative


@pytest.mark.parametrize("field", NON_NEGATIVE_COLUMNS)
def test_negative_price_cap_volume_or_supply_rejects_the_row(field):
    # low_24h and high_24h go down together, so only non_negative is broken.
    change = {"low_24h": -2.0, "high_24h": -1.0} if field in ("low_24h", "high_24h") else {}
    change.setdefault(field, -1.0)

    report = validate(table(rows_with({2: change})))

    assert failing(report) == {"non_negative"}
    assert rule(report, "non_negative").examples == ["ripple"]
    assert report.rejected_reason.to_dict() == {2: "negative price, market cap, volume or supply"}


def test_zero_prices_and_negative_changes_are_fine():
    rows = rows_with(
        {
            0: {"total_volume": 0, "circulating_supply": 0.0},
            1: {"price_change_24h": -51.2, "market_cap_change_percentage_24h": -99.9},
        }
    )

    assert validate(table(rows)).passed


# high_low


def test_high_below_low_rejects_the_row():
    report = validate(table(rows_with({0: {"high_24h": 100.0, "low_24h": 100.5}})))

    assert failing(report) == {"high_low"}
    assert report.rejected_rule.to_dict() == {0: "high_low"}
    assert report.rejected_reason.to_dict() == {0: "high_24h below low_24h"}


@pytest.mark.parametrize(
    "change",
    [
        {"high_24h": 100.0, "low_24h": 100.0},
        {"high_24h": None, "low_24h": 100.0},
        {"high_24h": 100.0, "low_24h": None},
        {"high_24h": None, "low_24h": None},
    ],
)
def test_high_equal_to_low_or_either_missing_is_fine(change):
    assert validate(table(rows_with({0: change}))).passed


# rank


@pytest.mark.parametrize("bad_rank", [0, -1, 1.5])
def test_rank_that_is_not_a_positive_integer_rejects_the_row(bad_rank):
    report = validate(table(rows_with({1: {"market_cap_rank": bad_rank}})))

    assert failing(report) == {"rank"}
    assert report.rejected_rule.to_dict() == {1: "rank"}
    assert report.rejected_reason.to_dict() == {1: "bad market_cap_rank"}


@pytest.mark.parametrize("good_rank", [None, 1, 9999, 7.0])
def test_rank_missing_or_a_positive_whole_number_is_fine(good_rank):
    assert validate(table(rows_with({1: {"market_cap_rank": good_rank}}))).passed


# not_future


@pytest.mark.parametrize(
    ("ahead", "rejected"),
    [
        (timedelta(0), False),
        (timedelta(minutes=4, seconds=59), False),
        (timedelta(minutes=5), False),
        (timedelta(minutes=5, milliseconds=1), True),
        (timedelta(days=1), True),
    ],
)
def test_last_updated_ahead_of_now_beyond_the_default_tolerance(ahead, rejected):
    now = datetime(2025, 9, 9, 16, 0, tzinfo=UTC)
    frame = table(rows_with({0: {"last_updated": iso(now + ahead)}}))

    report = validate(frame, now=now)

    assert (rule(report, "not_future").failed == 1) is rejected
    if rejected:
        assert report.rejected_rule.to_dict() == {0: "not_future"}
        assert report.rejected_reason.to_dict() == {0: "last_updated ahead"}
    else:
        assert report.passed


def test_future_tolerance_can_be_changed():
    now = datetime(2025, 9, 9, 16, 0, tzinfo=UTC)
    frame = table(rows_with({0: {"last_updated": iso(now + timedelta(seconds=1))}}))

    strict = validate(frame, now=now, future_tolerance=timedelta(0))
    lenient = validate(frame, now=now, future_tolerance=timedelta(hours=1))

    assert rule(strict, "not_future").failed == 1
    assert lenient.passed


def test_now_in_another_timezone_is_the_same_instant():
    now_utc = datetime(2025, 9, 9, 16, 0, tzinfo=UTC)
    now_cest = now_utc.astimezone(timezone(timedelta(hours=2)))
    frame = table(rows_with({0: {"last_updated": iso(now_utc + timedelta(minutes=6))}}))

    assert rule(validate(frame, now=now_cest), "not_future").failed == 1
    assert validate(frame, now=now_cest + timedelta(minutes=1)).passed


# unique_key


def test_duplicate_key_keeps_the_first_copy_and_rejects_later_ones():
    rows = load_rows()[:3]
    rows += [dict(rows[0]), dict(rows[0])]

    report = validate(table(rows))

    result = rule(report, "unique_key")
    assert result.failed == 2
    assert result.examples == ["bitcoin"]
    assert report.rejected_rule.to_dict() == {3: "unique_key", 4: "unique_key"}
    assert report.rejected_reason.to_dict() == {3: "duplicate key", 4: "duplicate key"}
    assert report.valid_mask(pd.RangeIndex(5)).tolist() == [True, True, True, False, False]


def test_duplicate_of_an_invalid_row_does_not_reject_the_valid_copy():
    rows = load_rows()[:2]
    invalid = {**rows[0], "current_price": -5}
    rows = [invalid, *rows]  # the invalid copy comes first

    report = validate(table(rows))

    assert rule(report, "unique_key").failed == 0
    assert report.rejected_rule.to_dict() == {0: "non_negative"}
    assert report.valid_mask(pd.RangeIndex(3)).tolist() == [False, True, True]


def test_invalid_later_copy_is_rejected_for_its_own_rule():
    rows = load_rows()[:2]
    rows.append({**rows[0], "high_24h": 1.0, "low_24h": 2.0})

    report = validate(table(rows))

    assert report.rejected_rule.to_dict() == {2: "high_low"}
    assert report.rejected_reason.to_dict() == {2: "high_24h below low_24h"}


@pytest.mark.parametrize(
    "change",
    [
        {"last_updated": "2025-09-09T15:02:51.244Z"},  # one millisecond later
        {"id": "bitcoin-wrapped"},
    ],
)
def test_rows_differing_in_one_key_part_are_not_duplicates(change):
    rows = load_rows()[:2]
    rows.append({**rows[0], **change})

    assert validate(table(rows)).passed


def test_rows_differing_only_in_vs_currency_are_not_duplicates():
    rows = load_rows()[:2]
    frame = pd.concat([table(rows), table(rows, vs_currency="eur")], ignore_index=True)

    assert validate(frame).passed


def test_same_instant_written_with_an_offset_is_a_duplicate():
    rows = load_rows()[:2]
    rows.append({**rows[0], "last_updated": "2025-09-09T17:02:51.243+02:00"})

    report = validate(table(rows))

    assert report.rejected_rule.to_dict() == {2: "unique_key"}


# stale (a warning)


def test_stale_row_in_the_250_fixture_is_a_warning_only():
    report = validate(table(load_rows(TOP250), TOP250), now=FETCHED_AT[TOP250])

    stale = rule(report, "stale")
    assert stale.severity == "warning"
    assert stale.failed == 1
    assert stale.examples == ["gains-farm"]
    assert report.passed
    assert report.rejected_count == 0
    assert failing(report) == {"stale"}


def test_stale_without_snapshot_at_compares_with_the_newest_row():
    frame = table(load_rows(TOP250), TOP250).drop(columns=["snapshot_at"])

    report = validate(frame, now=FETCHED_AT[TOP250])

    assert rule(report, "stale").examples == ["gains-farm"]
    assert report.passed


def test_stale_after_can_be_changed():
    frame = table(load_rows(TOP250), TOP250)

    lenient = validate(frame, now=FETCHED_AT[TOP250], stale_after=timedelta(days=3))
    strict = validate(frame, now=FETCHED_AT[TOP250], stale_after=timedelta(minutes=3))

    assert rule(lenient, "stale").passed
    assert rule(lenient, "stale").description == "last_updated within 3d of the fetch"
    assert rule(strict, "stale").failed > 1
    assert rule(strict, "stale").description == "last_updated within 3m of the fetch"
    assert strict.passed


def test_stale_row_that_is_also_invalid_is_rejected_only_for_the_critical_rule():
    rows = load_rows(TOP250)
    i = next(i for i, r in enumerate(rows) if r["id"] == "gains-farm")
    rows[i]["current_price"] = -1

    report = validate(table(rows, TOP250), now=FETCHED_AT[TOP250])

    assert report.rejected_rule.to_dict() == {i: "non_negative"}
    assert "stale" not in report.rejected_reason[i]


# The report


def test_rule_results_count_rows_and_show_up_to_five_distinct_ids():
    rows = load_rows()[:8]
    for row in rows[:7]:
        row["total_volume"] = -1

    report = validate(table(rows))

    result = rule(report, "non_negative")
    assert result.failed == 7
    assert not result.passed
    assert result.examples == [r["id"] for r in rows[:5]]
    assert report.rejected_count == 7


def test_row_breaking_several_rules_names_the_first_and_lists_every_reason():
    rows = rows_with({0: {"name": None, "current_price": -3, "high_24h": 1.0, "low_24h": 2.0}})

    report = validate(table(rows))

    assert report.rejected_rule.to_dict() == {0: "required_fields"}
    assert report.rejected_reason.to_dict() == {
        0: "missing name; negative price, market cap, volume or supply; high_24h below low_24h"
    }


def test_rejections_are_keyed_by_the_frame_index_labels():
    frame = table(rows_with({1: {"market_cap_rank": 0}}))
    frame.index = pd.Index([10, 20, 30, 40], name="row")

    report = validate(frame)

    assert report.rejected_rule.to_dict() == {20: "rank"}
    assert report.valid_mask(frame.index).tolist() == [True, False, True, True]


def test_empty_table_passes():
    report = validate(table([]))

    assert report.rows == 0
    assert report.passed
    assert report.rejected_count == 0
    assert all(r.failed == 0 for r in report.results)


def test_format_of_a_clean_table():
    text = validate(table(load_rows())).format()

    lines = text.splitlines()
    assert lines[0] == f"Checked 50 rows against {len(RULES)} rules."
    assert len(lines) == len(RULES) + 2
    for name, line in zip(RULES, lines[1:-1], strict=True):
        assert line.startswith("  [ok  ] " + name)
    assert lines[-1] == "PASSED: no critical rule failed."


def test_format_shows_fail_and_warn_lines_with_counts_and_examples():
    rows = load_rows(TOP250)
    rows[0]["current_price"] = -1  # bitcoin
    rows[1]["market_cap_rank"] = 0  # ethereum
    rows.append(dict(rows[5]))

    report = validate(table(rows, TOP250), now=FETCHED_AT[TOP250])
    lines = report.format().splitlines()

    by_rule = {line.split("]")[1].split()[0]: line for line in lines[1:-1]}
    assert by_rule["non_negative"].startswith("  [FAIL] non_negative")
    assert by_rule["non_negative"].endswith(": 1 row(s), e.g. bitcoin")
    assert by_rule["rank"].startswith("  [FAIL] rank")
    assert by_rule["rank"].endswith(": 1 row(s), e.g. ethereum")
    assert by_rule["unique_key"].endswith(f": 1 row(s), e.g. {rows[5]['id']}")
    assert by_rule["stale"].startswith("  [warn] stale")
    assert by_rule["stale"].endswith(": 1 row(s), e.g. gains-farm")
    assert by_rule["required_fields"].startswith("  [ok  ] ")
    assert "row(s)" not in by_rule["required_fields"]
    assert lines[0] == "Checked 251 rows against 9 rules."
    assert lines[-1] == (
        "FAILED: 3 row(s) break a critical rule and would be quarantined; 248 row(s) are valid."
    )
