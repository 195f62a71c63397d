"""Loading snapshots on SQLite and PostgreSQL: history, idempotency, quarantine, atomicity."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from helpers import TOP50_FETCHED_AT, market_rows, shifted
from sqlalchemy import text

from crypto_etl.errors import InputFileError
from crypto_etl.shaping.snapshot_table import transform_markets, write_csv
from crypto_etl.storage import snapshots as store
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.snapshots import load_snapshot_csv

NOW = TOP50_FETCHED_AT + timedelta(minutes=30)


def write_snapshot(tmp_path, rows, name="snap.csv", fetched_at=TOP50_FETCHED_AT):
    return write_csv(transform_markets(rows, "usd", fetched_at), tmp_path / name)


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("market_snapshots", "coins", "rejected_rows")
        }


def table(engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_load_stores_every_valid_row_with_its_values(engine, tmp_path):
    path = write_snapshot(tmp_path, market_rows())
    result, report = load_snapshot_csv(engine, path, None, NOW)
    assert (result.rows_in, result.loaded, result.skipped, result.rejected) == (50, 50, 0, 0)
    assert report.passed
    assert counts(engine) == {"market_snapshots": 50, "coins": 50, "rejected_rows": 0}
    (btc,) = table(
        engine,
        "SELECT current_price, market_cap_rank, roi_times, vs_currency FROM market_snapshots "
        "WHERE coin_id = 'bitcoin'",
    )
    assert btc == (111688.0, 1, None, "usd")
    (coin,) = table(engine, "SELECT symbol, name FROM coins WHERE id = 'ethereum'")
    assert coin == ("eth", "Ethereum")


def test_loading_the_same_file_twice_adds_nothing(engine, tmp_path):
    rows = market_rows()
    rows[3]["current_price"] = -1  # one quarantined row, to check the quarantine is idempotent
    path = write_snapshot(tmp_path, rows)
    load_snapshot_csv(engine, path, None, NOW)
    before = counts(engine)
    again, _ = load_snapshot_csv(engine, path, None, NOW)
    assert (again.loaded, again.skipped, again.rejected) == (0, 49, 1)
    assert counts(engine) == before == {"market_snapshots": 49, "coins": 49, "rejected_rows": 1}


def test_a_new_snapshot_adds_a_row_per_coin(engine, tmp_path):
    first = market_rows()
    load_snapshot_csv(engine, write_snapshot(tmp_path, first, "a.csv"), None, NOW)
    later = shifted(first, minutes=5, price_factor=1.01)
    result, _ = load_snapshot_csv(
        engine, write_snapshot(tmp_path, later, "b.csv"), None, NOW + timedelta(minutes=5)
    )
    assert result.loaded == 50
    per_coin = table(
        engine,
        "SELECT coin_id, count(*) FROM market_snapshots GROUP BY coin_id HAVING count(*) = 2",
    )
    assert len(per_coin) == 50
    prices = table(
        engine,
        "SELECT current_price FROM market_snapshots WHERE coin_id = 'bitcoin' "
        "ORDER BY last_updated",
    )
    assert [p[0] for p in prices] == [111688.0, pytest.approx(111688 * 1.01)]


def test_older_data_never_overwrites_newer(engine, tmp_path):
    rows = market_rows()
    newer = shifted(rows, minutes=60)
    newer[0]["name"] = "Bitcoin (renamed)"
    later = NOW + timedelta(hours=2)
    load_snapshot_csv(engine, write_snapshot(tmp_path, newer, "new.csv"), None, later)
    load_snapshot_csv(engine, write_snapshot(tmp_path, rows, "old.csv"), None, later)
    (coin,) = table(
        engine, "SELECT name, first_seen_at, last_seen_at FROM coins WHERE id='bitcoin'"
    )
    assert coin[0] == "Bitcoin (renamed)"
    assert coin[1] < coin[2]
    assert counts(engine)["market_snapshots"] == 100


def test_bad_rows_are_quarantined_with_their_reason_and_good_rows_loaded(engine, tmp_path):
    rows = market_rows()
    rows[1]["current_price"] = -5
    rows[2]["high_24h"], rows[2]["low_24h"] = 1.0, 2.0
    rows[3]["market_cap_rank"] = 0
    del rows[4]["symbol"]
    rows.append(dict(rows[0]))  # an exact duplicate key
    path = write_snapshot(tmp_path, rows)
    result, _ = load_snapshot_csv(engine, path, None, NOW)
    assert (result.loaded, result.rejected) == (46, 5)
    quarantined = dict(
        table(engine, "SELECT coin_id, rule FROM rejected_rows ORDER BY coin_id, rule")
    )
    assert quarantined == {
        rows[1]["id"]: "non_negative",
        rows[2]["id"]: "high_low",
        rows[3]["id"]: "rank",
        rows[4]["id"]: "required_fields",
        "bitcoin": "unique_key",
    }
    (raw,) = table(engine, f"SELECT raw, reason FROM rejected_rows WHERE coin_id='{rows[1]['id']}'")
    assert json.loads(raw[0])["current_price"] == -5
    assert "negative" in raw[1]
    assert counts(engine)["market_snapshots"] == 46


def test_unparseable_values_are_quarantined_not_fatal(engine, tmp_path):
    path = write_snapshot(tmp_path, market_rows())
    content = path.read_text().splitlines()
    content[1] = content[1].replace("111688.0", "not-a-number", 1)
    content[2] = content[2].replace("2025-09-09T", "yesterday-", 1)
    path.write_text("\n".join(content) + "\n")
    result, _ = load_snapshot_csv(engine, path, None, NOW)
    assert (result.loaded, result.rejected) == (48, 2)
    assert sorted(r[0] for r in table(engine, "SELECT rule FROM rejected_rows")) == [
        "numeric",
        "timestamps",
    ]


def test_a_load_that_fails_midway_leaves_nothing_behind(engine, tmp_path, monkeypatch):
    load_snapshot_csv(engine, write_snapshot(tmp_path, market_rows(), "a.csv"), None, NOW)
    before = counts(engine)
    rows = shifted(market_rows(), minutes=5)
    rows[0]["current_price"] = -1

    def explode(conn, records):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "quarantine", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        load_snapshot_csv(engine, write_snapshot(tmp_path, rows, "b.csv"), None, NOW)
    assert counts(engine) == before


def test_malformed_csv_is_refused_before_anything_is_written(engine, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,price\nbitcoin,1\n")
    with pytest.raises(InputFileError, match="missing columns"):
        load_snapshot_csv(engine, bad, None, NOW)
    with pytest.raises(InputFileError, match="does not exist"):
        load_snapshot_csv(engine, tmp_path / "nope.csv", None, NOW)
    assert counts(engine) == {"market_snapshots": 0, "coins": 0, "rejected_rows": 0}
