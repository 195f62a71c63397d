"""Backfill's request economy: a re-run within a granularity's step asks CoinGecko nothing at that
granularity, even when CoinGecko publishes with a lag (so the last stored point is older than a
step). Requests are counted at a fake CoinGecko over real HTTP, on SQLite and PostgreSQL; time is
the `now` the pipeline takes as a parameter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fake_coingecko import FakeCoinGecko
from helpers import query
from history_data import NOW, serve_history

from crypto_etl.coingecko.client import CoinGeckoClient
from crypto_etl.pipeline.backfill import run_backfill
from crypto_etl.settings import Settings
from crypto_etl.storage.engine import make_engine

COINS = {"bitcoin": 1.0, "ethereum": 0.04, "solana": 0.002}
LAG = timedelta(hours=5)  # CoinGecko's newest data is this old: it answers, but with nothing newer
MINUTE = timedelta(minutes=1)
START = NOW - timedelta(days=90)


@pytest.fixture
def backfill_at(db_url):
    """backfill(now) runs the backfill of COINS at `now` against the lagging fake; it returns the
    history requests the fake received."""
    engine = make_engine(db_url)
    with FakeCoinGecko() as fake:
        settings = Settings(
            database_url=db_url,
            coingecko_base_url=fake.url,
            calls_per_minute=1e6,
            max_retries=0,
        )

        def backfill(now, lag=LAG):
            serve_history(fake, COINS, now=now - lag)
            fake.now = now
            fake.requests.clear()
            with CoinGeckoClient(settings) as client:
                report = run_backfill(
                    engine, settings, list(COINS), "usd", 3, START, now, client=client
                )
            assert not report.failed
            return [
                (path.split("/")[3], path.rsplit("/", 1)[1], query_.get("days"))
                for path, query_ in fake.history_requests()
            ]

        backfill.url = db_url
        yield backfill
    engine.dispose()


def kinds(requests) -> list[tuple[str, str | None]]:
    """(range or ohlc, days) of each request, coins left out."""
    return sorted((what, days) for _, what, days in requests)


def test_a_rerun_within_the_step_makes_no_request_even_when_coingecko_lags(backfill_at):
    first = backfill_at(NOW)
    assert len(first) == 3 * 5  # per coin: hourly and 5-minute windows, 30m, 4h and 4d candles

    assert backfill_at(NOW + MINUTE) == []  # a minute later: nothing can be newer
    assert backfill_at(NOW + 2 * MINUTE) == []

    # What stored points alone would ask for (the behaviour before history_fetches): the 5-minute
    # window and the 30-minute and 4-hour candles of each coin, as their last stored point lags.
    saved = query(backfill_at.url, "SELECT * FROM history_fetches")
    query(backfill_at.url, "DELETE FROM history_fetches")
    without_ledger = backfill_at(NOW + 3 * MINUTE)
    assert kinds(without_ledger) == sorted([("ohlc", "1"), ("ohlc", "7"), ("range", None)] * 3)
    assert len(saved) == 3 * 5

    # Past each step, exactly that granularity is asked again, from the last stored point.
    assert kinds(backfill_at(NOW + 9 * MINUTE)) == [("range", None)] * 3  # 5m step
    assert backfill_at(NOW + 10 * MINUTE) == []
    half_hour = kinds(backfill_at(NOW + 34 * MINUTE))
    assert half_hour == sorted([("ohlc", "1"), ("range", None)] * 3)  # 5m and 30m steps
    four_hours = kinds(backfill_at(NOW + 3 * MINUTE + timedelta(hours=4)))
    assert four_hours == sorted([("ohlc", "1"), ("ohlc", "7"), ("range", None)] * 3)


def test_nothing_left_out_is_lost_once_coingecko_catches_up(backfill_at):
    backfill_at(NOW)
    assert backfill_at(NOW + MINUTE) == []
    later = NOW + timedelta(hours=1)
    backfill_at(later, lag=timedelta(0))  # CoinGecko has caught up; the steps have elapsed
    newest = query(
        backfill_at.url,
        "SELECT coin_id, max(ts) FROM price_history GROUP BY coin_id ORDER BY coin_id",
    )
    assert [(coin, str(ts)[:16]) for coin, ts in newest] == [
        (coin, f"{later:%Y-%m-%d %H:%M}") for coin in sorted(COINS)
    ]
    candles = query(
        backfill_at.url,
        "SELECT coin_id, max(ts) FROM ohlc WHERE \"interval\" = '30m' GROUP BY coin_id",
    )
    last_close = later - timedelta(minutes=later.minute % 30)  # the newest closed 30m candle
    assert {str(ts)[:16] for _, ts in candles} == {f"{last_close:%Y-%m-%d %H:%M}"}
