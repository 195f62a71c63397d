"""The backfill library: window planning, parsing, incremental runs, interruption and gaps, against
the fake CoinGecko over HTTP and real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from fake_coingecko import FakeCoinGecko
from history_data import NOW, serve_history
from sqlalchemy import text

from crypto_etl.coingecko.client import CoinGeckoClient
from crypto_etl.coingecko.history import (
    ChartWindow,
    OhlcRequest,
    backfill_start,
    measured_granularity,
    parse_candles,
    parse_chart,
)
from crypto_etl.formatting import duration
from crypto_etl.pipeline.backfill import backfill, refresh_ohlc
from crypto_etl.pipeline.backfill_plan import chart_windows
from crypto_etl.settings import Settings
from crypto_etl.shaping.history_records import PricePoint
from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.gaps import find_gaps
from crypto_etl.storage.history import store_price_points
from crypto_etl.storage.schema import MarketSnapshot

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def window(start: timedelta, end: timedelta, granularity: str) -> ChartWindow:
    return ChartWindow(NOW - start, NOW - end, granularity)


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        # A fresh 90 days: hourly up to a day ago, then 5-minute points.
        ([(90 * DAY, 0 * DAY)], [window(90 * DAY, DAY, "1h"), window(DAY, 0 * DAY, "5m")]),
        # Three hours after the last run: one 5-minute window.
        ([(3 * HOUR, 0 * DAY)], [window(3 * HOUR, 0 * DAY, "5m")]),
        # Two gaps a month apart share one hourly window; one in the last day reaches to now.
        (
            [(40 * DAY, 39 * DAY), (10 * DAY, 9 * DAY), (5 * HOUR, 4 * HOUR)],
            [window(40 * DAY, 9 * DAY, "1h"), window(5 * HOUR, 0 * DAY, "5m")],
        ),
        # Gaps further apart than 90 days are asked for separately.
        (
            [(200 * DAY, 199 * DAY), (20 * DAY, 19 * DAY)],
            [window(200 * DAY, 199 * DAY, "1h"), window(20 * DAY, 19 * DAY, "1h")],
        ),
    ],
)
def test_chart_windows_get_the_finest_points_coingecko_serves(missing, expected):
    stretches = [(NOW - start, NOW - end) for start, end in missing]
    assert chart_windows(stretches, NOW) == expected


def test_a_year_is_asked_for_in_90_day_windows():
    windows = chart_windows([(NOW - 365 * DAY, NOW)], NOW)
    assert [w.granularity for w in windows] == ["1h"] * 5 + ["5m"]
    assert all(w.end - w.start <= 90 * DAY for w in windows)
    assert all(a.end == b.start for a, b in pairwise(windows))  # no hole between windows


def test_keyless_and_demo_plans_start_within_365_days():
    keyless = Settings()
    assert backfill_start(90, NOW, keyless) == (NOW - 90 * DAY, False)
    assert backfill_start(400, NOW, keyless) == (NOW - 365 * DAY + HOUR, True)
    pro = Settings(coingecko_api_plan="pro", coingecko_api_key="k")
    assert backfill_start(400, NOW, pro) == (NOW - 400 * DAY, False)


def test_granularity_is_measured_from_the_answer():
    def times(step: timedelta, n: int = 5) -> list[datetime]:
        return [NOW + i * step for i in range(n)]

    assert measured_granularity(times(timedelta(minutes=5)), "1h") == "5m"
    assert measured_granularity(times(timedelta(minutes=62)), "5m") == "1h"
    assert measured_granularity(times(DAY), "1h") == "1d"
    assert measured_granularity(times(DAY, 2), "1h") == "1h"  # too few points to tell


def test_parsing_skips_malformed_entries_and_open_candles():
    ms = int(NOW.timestamp() * 1000)
    body = {
        "prices": [[ms - 600_000, 1.0], [ms - 300_000, 2.0], ["x", 3.0], [ms, None]],
        "market_caps": [[ms - 300_000, 20.0], [ms, float("nan")]],
        "total_volumes": [[ms - 300_000, 200.0]],
    }
    points = parse_chart(body, ChartWindow(NOW - HOUR, NOW, "5m"))
    assert [(p.ts, p.price, p.market_cap, p.total_volume) for p in points] == [
        (NOW - timedelta(minutes=10), 1.0, None, None),
        (NOW - timedelta(minutes=5), 2.0, 20.0, 200.0),
        (NOW, None, None, None),
    ]
    assert {p.granularity for p in points} == {"5m"}
    candles = [[ms - 1_800_000, 1, 2, 0.5, 1.5], [ms + 1_800_000, 1, 2, 0.5, 1.5], [ms, 1, None]]
    parsed = parse_candles(candles, OhlcRequest("30m", 1, NOW - DAY), NOW)
    assert [(c.ts, c.close) for c in parsed] == [(NOW - timedelta(minutes=30), 1.5)]


# -- against the fake and a real database ------------------------------------------------------
@pytest.fixture
def fake():
    with FakeCoinGecko() as server:
        serve_history(server, {"bitcoin": 1.0, "ethereum": 0.04, "solana": 0.002}, days=45)
        yield server


@pytest.fixture
def settings(fake):
    return Settings(coingecko_base_url=fake.url, calls_per_minute=1e6, max_retries=0)


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(settings):
    with CoinGeckoClient(settings, sleep=lambda seconds: None) as client:
        yield client


def run_backfill(engine, client, settings, coins, days, now=NOW, **kwargs):
    start, _ = backfill_start(days, now, settings)
    return backfill(engine, client, settings, coins, "usd", start, now, **kwargs)


def tables(engine) -> tuple[list, list]:
    with engine.connect() as conn:
        prices = conn.execute(
            text(
                "SELECT coin_id, ts, price, market_cap, total_volume, granularity "
                "FROM price_history ORDER BY coin_id, ts"
            )
        ).all()
        candles = conn.execute(
            text('SELECT coin_id, "interval", ts, close FROM ohlc ORDER BY coin_id, "interval", ts')
        ).all()
    return prices, candles


def test_a_later_run_fetches_only_what_came_since(engine, client, settings, fake):
    run_backfill(engine, client, settings, ["bitcoin"], 5)
    later = NOW + 3 * HOUR
    serve_history(fake, {"bitcoin": 1.0}, days=45, now=later)
    fake.requests.clear()

    report = run_backfill(engine, client, settings, ["bitcoin"], 5, now=later)

    requests = fake.history_requests()
    assert [q for _, q in requests] == [
        {
            "vs_currency": "usd",
            "from": str(int(NOW.timestamp()) + 1),
            "to": str(int(later.timestamp())),
        },
        {"vs_currency": "usd", "days": "1"},  # 30-minute candles; no 4-hour candle closed yet
    ]
    result = report.coins[0]
    assert (result.points_new, result.candles_new) == (36, 6)


def test_asking_for_more_days_fetches_only_the_older_part(engine, client, settings, fake):
    run_backfill(engine, client, settings, ["bitcoin"], 10)
    fake.requests.clear()

    run_backfill(engine, client, settings, ["bitcoin"], 40)

    chart, ohlc = [], []
    for path, query in fake.history_requests():
        (chart if path.endswith("/range") else ohlc).append(query)
    assert len(chart) == 1 and int(chart[0]["from"]) == int((NOW - 40 * DAY).timestamp())
    assert int(chart[0]["to"]) < (NOW - 10 * DAY).timestamp() + 3600
    assert [q["days"] for q in ohlc] == ["30", "90"]  # 4-hour back to 30 days, then 4-day


def test_an_interrupt_is_recorded_and_the_next_run_resumes(engine, client, settings, fake):
    def interrupt_after_bitcoin(result):
        if result.coin_id == "bitcoin":
            raise KeyboardInterrupt

    coins = ["bitcoin", "ethereum", "solana"]
    with pytest.raises(KeyboardInterrupt):
        run_backfill(engine, client, settings, coins, 20, on_coin=interrupt_after_bitcoin)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status, error_message FROM etl_runs")).all() == [
            ("cancelled", "interrupted")
        ]
        assert conn.execute(text("SELECT DISTINCT coin_id FROM ohlc")).all() == [("bitcoin",)]

    fake.requests.clear()
    assert run_backfill(engine, client, settings, coins, 20).status == "success"
    assert not [p for p, _ in fake.history_requests() if "/bitcoin/" in p]
    resumed = tables(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM price_history"))
        conn.execute(text("DELETE FROM ohlc"))
    run_backfill(engine, client, settings, coins, 20)
    assert tables(engine) == resumed


def test_gaps_follow_the_recorded_granularity(engine):
    def points(start: datetime, count: int, step: timedelta, granularity: str) -> list[PricePoint]:
        return [PricePoint(start + i * step, 1.0, None, None, granularity) for i in range(count)]

    hourly = points(NOW - 2 * DAY, 24, HOUR, "1h")  # ends NOW - 1d - 1h
    five_minute = points(NOW - DAY - 30 * timedelta(minutes=1), 12, timedelta(minutes=5), "5m")
    after_a_hole = points(NOW - 12 * HOUR, 12, timedelta(minutes=5), "5m")
    store_price_points(engine, "bitcoin", "usd", hourly + five_minute + after_a_hole, None)

    gaps = find_gaps(engine, "price_history", "usd")

    # hourly -> 5-minute points half an hour later is no gap; the hole of 11h is one.
    assert [(g.coin_id, g.after, g.before, g.expected_seconds) for g in gaps] == [
        ("bitcoin", five_minute[-1].ts, after_a_hole[0].ts, 300)
    ]
    assert duration(gaps[0].missing.total_seconds()) == "11h35m"
    assert find_gaps(engine, "price_history", "usd", ["ethereum"]) == []
    assert find_gaps(engine, "price_history", "usd", since=after_a_hole[0].ts) == []


def test_candles_are_refreshed_only_when_one_is_due(engine, client, settings, fake):
    settings = Settings(
        coingecko_base_url=fake.url, calls_per_minute=1e6, max_retries=0, ohlc_top_n=1
    )
    seen = NOW - HOUR
    with engine.begin() as conn:
        conn.execute(
            MarketSnapshot.__table__.insert(),
            [
                {
                    "coin_id": coin,
                    "vs_currency": "usd",
                    "last_updated": seen,
                    "snapshot_at": seen,
                    "current_price": 1.0,
                    "market_cap_rank": rank,
                }
                for coin, rank in (("ethereum", 2), ("bitcoin", 1))
            ],
        )
    report = refresh_ohlc(engine, client, settings, "usd", NOW)
    assert [c.coin_id for c in report.coins] == ["bitcoin"] and report.status == "success"
    # Ten minutes on no candle has closed; the 45 days served are less than the 90 kept, and
    # that missing past is not asked for again on every run.
    assert refresh_ohlc(engine, client, settings, "usd", NOW + 10 * timedelta(minutes=1)) is None
    with engine.connect() as conn:
        assert conn.execute(text("SELECT command, status FROM etl_runs")).all() == [
            ("ohlc", "success")
        ]
