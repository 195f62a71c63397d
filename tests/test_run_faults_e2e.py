"""End-to-end: `python etl.py run --top_n=600` against a fake CoinGecko over real HTTP that
misbehaves on every other request, cycling through every transient fault (a body cut short, a 200
that is not JSON, a connection reset mid-body, 5xx, 429 in its three forms with `retry-after` in
seconds or as an HTTP-date, an answer held past the timeout). Every fault is retried: all 600
coins are stored, and the tables are the same as after a run against a well-behaved fake.

Retry waits are a setting (COINGECKO_RETRY_WAIT_MIN/MAX_SECONDS=0) and the fake's `retry-after`
values are 0 or a date in the past, so nothing sleeps; only the two timeout faults wait for the
client's 0.5 s timeout.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from fake_coingecko import FAULT_KINDS, FakeCoinGecko
from helpers import etl_env, etl_runner, market_rows, query
from history_data import serve_history

TOP_N = 600
OHLC_TOP_N = 5
SNAPSHOT_COLUMNS = "coin_id, vs_currency, last_updated, current_price, market_cap, market_cap_rank"
OHLC_COLUMNS = 'coin_id, "interval", ts, open, high, low, close'


def six_hundred_coins(now: datetime) -> list[dict]:
    """600 distinct coins made from the 250 recorded ones, ranked, updated just now."""
    base = market_rows("coins_markets_usd_250.json")
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    rows = []
    for number in range(TOP_N):
        row = copy.deepcopy(base[number % len(base)])
        copy_no = number // len(base)
        if copy_no:
            row["id"] = f"{row['id']}-copy{copy_no}"
            row["symbol"] = f"{row['symbol']}{copy_no}"
        row["market_cap_rank"] = number + 1
        row["last_updated"] = stamp
        rows.append(row)
    return rows


def serve(fake: FakeCoinGecko, rows: list[dict], now: datetime) -> None:
    fake.markets = rows
    serve_history(
        fake, {row["id"]: 1.0 / (i + 1) for i, row in enumerate(rows[:OHLC_TOP_N])}, now=now
    )


def _plain(value):
    """A stored value as both backends can be compared: times as UTC text to the second."""
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == " ":
        return value[:19]  # SQLite's text form of a UTC time
    return value


def tables(url: str) -> tuple[list[tuple], list[tuple]]:
    snapshots = query(url, f"SELECT {SNAPSHOT_COLUMNS} FROM market_snapshots")
    candles = query(url, f"SELECT {OHLC_COLUMNS} FROM ohlc")
    return tuple(sorted(tuple(map(_plain, row)) for row in rows) for rows in (snapshots, candles))


def test_a_top_600_run_survives_a_fault_on_every_other_request(tmp_path, db_url):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = six_hundred_coins(now)
    settings = {
        "OHLC_TOP_N": str(OHLC_TOP_N),
        "COINGECKO_MAX_RETRIES": "2",
        "COINGECKO_RETRY_WAIT_MIN_SECONDS": "0",
        "COINGECKO_RETRY_WAIT_MAX_SECONDS": "0",
        "HTTP_TIMEOUT_SECONDS": "0.5",
    }

    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    with FakeCoinGecko() as clean:  # the reference: the same data, no fault
        serve(clean, rows, now)
        env = etl_env(reference, clean.url, tmp_path / "clean", **settings)
        etl_runner(tmp_path, env)("run", f"--top_n={TOP_N}")

    with FakeCoinGecko() as fake:
        serve(fake, rows, now)
        fake.misbehave_every_other = True
        env = etl_env(db_url, fake.url, tmp_path / "data", **settings)
        proc = etl_runner(tmp_path, env)("run", f"--top_n={TOP_N}")

    # 3 pages of markets and 3 candle requests for each of the 5 top coins, each after a fault.
    assert len(fake.requests) == 2 * (3 + 3 * OHLC_TOP_N)
    assert len(fake.faults) == 3 + 3 * OHLC_TOP_N
    assert set(fake.faults) == set(FAULT_KINDS)
    retries = [line for line in proc.stderr.splitlines() if "retry 1 of 2" in line]
    assert len(retries) == len(fake.faults), proc.stderr
    assert "run 1 success: 600 extracted, 600 loaded" in proc.stdout
    assert "ohlc run 2 success: 5 coin(s)" in proc.stdout

    snapshots, candles = tables(db_url)
    assert len(snapshots) == TOP_N == len({row[0] for row in snapshots})
    assert (snapshots, candles) == tables(reference)
    assert query(db_url, "SELECT command, status FROM etl_runs ORDER BY id") == [
        ("run", "success"),
        ("ohlc", "success"),
    ]
