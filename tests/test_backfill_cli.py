"""End-to-end: `python etl.py backfill` and `gaps`, and candles kept current by `run` and
`schedule`, as a user runs them, against a fake CoinGecko over HTTP, on SQLite and PostgreSQL.

"Now" is pinned (by the harness that runs the commands, tests/etl_child.py, and `now` in the
fake), so every window and every due candle is known in advance; retries are off and pacing is
instant, so nothing sleeps.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from etl_child import ChildResult, child_runner
from fake_coingecko import FakeCoinGecko
from helpers import TOP50_FETCHED_AT, etl_env, market_rows, query, shifted
from history_data import NOW, serve_history

ROOT = Path(__file__).resolve().parent.parent
ETL = str(ROOT / "etl.py")
COINS = {"bitcoin": 1.0, "ethereum": 0.04, "solana": 0.002}
PRICE_ROWS = "SELECT coin_id, ts, price, market_cap, total_volume, granularity FROM price_history"
OHLC_ROWS = 'SELECT coin_id, "interval", ts, open, high, low, close FROM ohlc'


@pytest.fixture
def fake():
    # The markets as of just before NOW, so the top coins count as current.
    minutes = int((NOW - TOP50_FETCHED_AT).total_seconds() // 60) - 5
    with FakeCoinGecko(shifted(market_rows(), minutes)) as server:
        serve_history(server, COINS)
        yield server


@pytest.fixture
def cli(tmp_path, fake, db_url, etl_children):
    """Runs `etl.py ...` at NOW in a fresh working directory against the fake CoinGecko."""
    env = etl_env(db_url, fake.url, tmp_path / "data", COINGECKO_MAX_RETRIES="0")
    run = child_runner(etl_children, tmp_path, env, NOW)
    run.db_url = db_url
    return run


def counts(url: str) -> dict[str, list[tuple]]:
    return {
        "price_history": query(
            url,
            "SELECT coin_id, granularity, count(*) FROM price_history GROUP BY coin_id, "
            "granularity ORDER BY coin_id, granularity",
        ),
        "ohlc": query(
            url,
            'SELECT coin_id, "interval", count(*) FROM ohlc GROUP BY coin_id, "interval" '
            'ORDER BY coin_id, "interval"',
        ),
    }


def history_tables(url: str) -> tuple[list[tuple], list[tuple]]:
    """Both history tables in full, without the run ids (which differ between runs)."""
    prices = query(url, PRICE_ROWS + " ORDER BY coin_id, ts")
    candles = query(url, OHLC_ROWS + ' ORDER BY coin_id, "interval", ts')
    return prices, candles


def sql_time(url: str, moment: datetime) -> str:
    """A UTC time literal as each database stores it (SQLite: text without an offset)."""
    text_form = f"{moment:%Y-%m-%d %H:%M:%S}"
    return f"'{text_form}+00'" if url.startswith("postgresql") else f"'{text_form}'"


def error_lines(proc: ChildResult) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


# 90 days: the last day in 5-minute points, 89 days hourly; candles: 30m for a day, 4h for 30
# days, 4d for 90 days (CoinGecko's grids, see history_data).
EXPECTED_90_DAYS = {
    "price_history": [("1h", 2136), ("5m", 289)],
    "ohlc": [("30m", 48), ("4d", 23), ("4h", 180)],
}


def test_backfill_90_days_then_rerun_adds_nothing_and_fetches_nothing(cli, fake):
    out = cli("backfill", "--coins=bitcoin,ethereum,solana", "--days=90").stdout
    assert "backfill run 1 success: 3 of 3 coins (usd)" in out
    assert "price_history: 7275 points received, 7275 new" in out
    assert "ohlc: 753 candles received, 753 new" in out
    found = counts(cli.db_url)
    for table, expected in EXPECTED_90_DAYS.items():
        assert found[table] == [(coin, *row) for coin in sorted(COINS) for row in expected]
    # Per coin: one hourly and one 5-minute chart window, one ohlc request per interval.
    assert len(fake.history_requests()) == 3 * 5
    before = history_tables(cli.db_url)

    fake.requests.clear()
    out = cli("backfill", "--coins=bitcoin,ethereum,solana", "--days=90").stdout
    assert "0 points received, 0 new" in out and "0 candles received, 0 new" in out
    assert fake.history_requests() == []
    assert history_tables(cli.db_url) == before
    assert query(cli.db_url, "SELECT command, status, rows_loaded FROM etl_runs ORDER BY id") == [
        ("backfill", "success", 7275 + 753),
        ("backfill", "success", 0),
    ]


def test_without_coins_it_takes_the_current_top_coins(cli, fake):
    serve_history(fake, {"bitcoin": 1.0, "ethereum": 0.04}, days=10)
    cli("backfill", "--days=2", TOP_N="2")
    assert [r[0] for r in query(cli.db_url, "SELECT DISTINCT coin_id FROM ohlc ORDER BY 1")] == [
        "bitcoin",
        "ethereum",
    ]
    # One coin as a single value, the ids in any case and with repeats.
    cli("backfill", "--coins=Bitcoin", "--days=3", TOP_N="2")
    cli("backfill", "--coins=bitcoin,BITCOIN", "--days=3", TOP_N="2")
    assert query(cli.db_url, "SELECT count(*) FROM etl_runs WHERE status = 'success'") == [(3,)]


def test_failing_coins_leave_the_others_stored_are_listed_and_exit_non_zero(cli, fake):
    fake.fail_coins["ethereum"] = (503, '{"error": "upstream down"}')  # a 5xx that does not clear
    proc = cli("backfill", "--coins=bitcoin,no-such-coin,ethereum,solana", "--days=5", check=False)
    assert proc.returncode == 1
    assert "failed coins (2):" in proc.stdout
    assert "no-such-coin: CoinGecko found nothing" in proc.stdout
    assert "ethereum: CoinGecko failed GET /coins/ethereum/market_chart/range with HTTP 503" in (
        proc.stdout
    )
    errors = error_lines(proc)
    assert len(errors) == 1 and "2 of 4 coins failed (no-such-coin, ethereum)" in errors[0]
    assert "Traceback" not in proc.stderr
    stored = query(cli.db_url, "SELECT DISTINCT coin_id FROM price_history ORDER BY 1")
    assert stored == [("bitcoin",), ("solana",)]
    status, message = query(cli.db_url, "SELECT status, error_message FROM etl_runs")[0]
    assert status == "partial" and "no-such-coin" in message and "ethereum" in message

    del fake.fail_coins["ethereum"]  # the outage is over: a re-run fetches only ethereum
    fake.requests.clear()
    cli("backfill", "--coins=bitcoin,ethereum,solana", "--days=5")
    assert {p.split("/")[4] for p, _ in fake.history_requests()} == {"ethereum"}
    assert len(query(cli.db_url, "SELECT DISTINCT coin_id FROM ohlc")) == 3


def test_an_interrupted_backfill_resumes_to_the_same_tables(cli, fake):
    args = ("backfill", "--coins=bitcoin,ethereum,solana", "--days=40")
    # Killed just before ethereum's candles commit (the second coin's candles are written, not
    # committed): bitcoin is whole, ethereum has prices only.
    proc = cli(*args, check=False, kill_at="write:ohlc.done#2")
    assert proc.returncode == -signal.SIGKILL
    assert query(cli.db_url, "SELECT DISTINCT coin_id FROM ohlc") == [("bitcoin",)]
    assert query(cli.db_url, "SELECT DISTINCT coin_id FROM price_history ORDER BY 1") == [
        ("bitcoin",),
        ("ethereum",),
    ]

    fake.requests.clear()
    cli(*args)
    resumed = fake.history_requests()
    assert not [p for p, _ in resumed if "/bitcoin/" in p]  # nothing fetched twice
    assert not [p for p, _ in resumed if "/ethereum/market_chart" in p]
    interrupted_then_resumed = history_tables(cli.db_url)

    query(cli.db_url, "DELETE FROM price_history")
    query(cli.db_url, "DELETE FROM ohlc")
    cli(*args)
    assert history_tables(cli.db_url) == interrupted_then_resumed
    statuses = query(cli.db_url, "SELECT status, error_message FROM etl_runs ORDER BY id")
    assert [s for s, _ in statuses] == ["abandoned", "success", "success"]  # closed by the next
    assert statuses[0][1].startswith("process gone: pid ")


def test_days_beyond_365_on_a_keyless_plan_fetch_what_is_allowed(cli, fake):
    serve_history(fake, {"bitcoin": 1.0}, days=420)
    proc = cli("backfill", "--coins=bitcoin", "--days=400")
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "365 days" in warning[0] and "--days=400" in warning[0]
    assert "backfill run 1 success" in proc.stdout
    first, points = query(cli.db_url, "SELECT min(ts), count(*) FROM price_history")[0]
    oldest_allowed = NOW - timedelta(days=365)
    # From an hour inside the limit (CoinGecko's clock may run ahead): the first full hour after.
    assert str(first)[:16] == "2024-10-28 10:00"
    assert points == 289 + 364 * 24 - 1  # the last day in 5-minute points, the rest hourly
    # Hourly windows of at most 90 days, none reaching past what the plan serves.
    starts = [int(q["from"]) for p, q in fake.history_requests() if p.endswith("/range")]
    assert len(starts) == 6 and min(starts) >= oldest_allowed.timestamp()
    assert ("/api/v3/coins/bitcoin/ohlc", {"vs_currency": "usd", "days": "365"}) in [
        (p, q) for p, q in fake.history_requests()
    ]

    # A pro key reaches further back: the rest of the 400 days is fetched, nothing twice.
    fake.requests.clear()
    proc = cli(
        "backfill", "--coins=bitcoin", "--days=400", COINGECKO_API_PLAN="pro", COINGECKO_API_KEY="k"
    )
    assert "warning:" not in proc.stderr
    assert str(query(cli.db_url, "SELECT min(ts) FROM price_history")[0][0])[:10] == str(
        (NOW - timedelta(days=400)).date()
    )
    days = [q.get("days") for p, q in fake.history_requests() if p.endswith("/ohlc")]
    assert days == ["max"]


def test_a_request_beyond_the_plan_is_a_clear_failure_not_a_crash(cli, fake):
    fake.keyless_history_days = 30  # CoinGecko's limit tighter than ours: a 10012 answer
    proc = cli("backfill", "--coins=bitcoin", "--days=60", check=False)
    assert proc.returncode == 1
    assert "keyless and demo plans reach 365 days of history" in proc.stdout
    assert "Traceback" not in proc.stderr and len(error_lines(proc)) == 1


def test_gaps_are_listed_and_backfill_fills_them(cli, fake):
    cli("backfill", "--coins=bitcoin,ethereum", "--days=30")
    out = cli("gaps", "--coins=bitcoin,ethereum").stdout
    assert out.startswith("no gaps in market_snapshots or price_history")
    complete = history_tables(cli.db_url)
    # Ten hours of bitcoin's hourly points lost ten days ago; an hour of snapshots missing.
    lost_from, lost_to = NOW - timedelta(days=10, hours=10), NOW - timedelta(days=10)
    query(
        cli.db_url,
        f"DELETE FROM price_history WHERE coin_id = 'bitcoin' "
        f"AND ts > {sql_time(cli.db_url, lost_from)} AND ts < {sql_time(cli.db_url, lost_to)}",
    )
    cli("run", "--top_n=2", OHLC_TOP_N="0")
    query(
        cli.db_url,
        "UPDATE market_snapshots SET last_updated = last_updated - interval '65 minutes'"
        if cli.db_url.startswith("postgresql")
        else "UPDATE market_snapshots SET last_updated = datetime(last_updated, '-65 minutes')",
    )
    cli("run", "--top_n=2", OHLC_TOP_N="0")  # the same rows again, 65 minutes later

    out = cli("gaps").stdout
    lines = out.splitlines()
    header = "table coin currency after (UTC) before (UTC) missing every"
    assert lines[0].split() == header.split()
    snapshot_rows = [line for line in lines if line.startswith("market_snapshots")]
    assert len(snapshot_rows) == 2  # bitcoin and ethereum, one stretch each
    assert all("1h05m" in line and "covered in price_history" in line for line in snapshot_rows)
    price_rows = [line for line in lines if line.startswith("price_history")]
    assert len(price_rows) == 1
    # Hourly points from 23:00 to 08:00 are gone: nothing stored between 22:00 and 09:00.
    gap = "bitcoin usd 2025-10-17 22:00 2025-10-18 09:00"
    assert price_rows[0].split()[1:7] == gap.split()
    assert "11h (~10 pts)" in price_rows[0] and "backfill fills it" in price_rows[0]
    assert "3 gap(s) in 2 coin(s)" in lines[-1]
    assert "python etl.py backfill --coins=bitcoin,ethereum" in lines[-1]

    fake.requests.clear()
    cli("backfill", "--coins=bitcoin,ethereum", "--days=30")
    after, before = datetime(2025, 10, 17, 22, tzinfo=UTC), datetime(2025, 10, 18, 9, tzinfo=UTC)
    assert [q for p, q in fake.history_requests()] == [
        {
            "vs_currency": "usd",
            "from": str(int(after.timestamp()) + 1),
            "to": str(int(before.timestamp()) - 1),
        }
    ]
    assert history_tables(cli.db_url) == complete
    lines = cli("gaps", "--days=30").stdout.splitlines()
    assert not [line for line in lines if line.startswith("price_history")]
    assert len([line for line in lines if line.startswith("market_snapshots")]) == 2


def test_run_and_schedule_keep_candles_of_the_top_coins_current(cli, fake):
    out = cli("run", "--top_n=10", OHLC_TOP_N="2").stdout
    assert "ohlc run 2 success: 2 coin(s), 502 new candles" in out
    assert counts(cli.db_url)["ohlc"] == [
        (coin, *row) for coin in ("bitcoin", "ethereum") for row in EXPECTED_90_DAYS["ohlc"]
    ]
    runs = query(cli.db_url, "SELECT command, status FROM etl_runs ORDER BY id")
    assert runs == [("run", "success"), ("ohlc", "success")]

    fake.requests.clear()  # a run five minutes later: no candle has closed since
    out = cli("run", "--top_n=10", OHLC_TOP_N="2").stdout
    assert fake.history_requests() == [] and "ohlc" not in out

    # An hour later, under the scheduler: the two 30-minute candles closed since are fetched,
    # with one request per coin; ethereum's fails, which does not fail the snapshot run.
    later = NOW + timedelta(hours=1)
    serve_history(fake, COINS, now=later)
    fake.fail_coins["ethereum"] = (500, '{"error": "boom"}')
    fake.requests.clear()
    cli.now = later
    proc = cli("schedule", "--interval_seconds=300", "--max_runs=1", "--top_n=10", OHLC_TOP_N="2")
    assert "after 1 run(s), 0 failed" in proc.stdout
    assert [q["days"] for p, q in fake.history_requests()] == ["1", "1"]
    assert query(cli.db_url, "SELECT count(*) FROM ohlc WHERE coin_id = 'bitcoin'") == [(253,)]
    runs = query(cli.db_url, "SELECT command, status FROM etl_runs ORDER BY id")
    assert runs[-2:] == [("run", "success"), ("ohlc", "partial")]


def test_bad_arguments_are_one_line_errors(cli):
    for args, needle in [
        (("backfill", "--coins"), "--coins needs coin ids"),
        (("backfill", "--coins=bitcoin", "--days=0"), "--days"),
        (("gaps", "--interval_seconds=-1"), "--interval_seconds"),
    ]:
        proc = cli(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        errors = error_lines(proc)
        assert len(errors) == 1 and needle in errors[0], proc.stderr
