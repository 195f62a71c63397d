"""The chart-data functions on small frames whose answers can be worked out by hand, and on the real
250-coin /coins/markets response."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import DATA

from crypto_etl.analytics import candles as candle_math
from crypto_etl.analytics import correlation, market, series
from crypto_etl.analytics.freshness import TableAge, table_age


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def points(rows: list[tuple[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": [ts(t) for t, _ in rows],
            "price": [p for _, p in rows],
            "market_cap": [p * 10 for _, p in rows],
            "total_volume": [p * 2 for _, p in rows],
        }
    )


@pytest.fixture(scope="module")
def markets() -> pd.DataFrame:
    return pd.DataFrame(json.loads((DATA / "coins_markets_usd_250.json").read_text()))


def test_market_share_top_n_and_others_sum_to_one(markets):
    caps = markets.set_index("id")["market_cap"]
    share = market.market_share(caps, top_n=5)
    assert list(share["coin_id"][:2]) == ["bitcoin", "ethereum"]
    assert share["coin_id"].iloc[-1] == market.OTHERS
    assert len(share) == 6
    assert share["share"].sum() == pytest.approx(1.0)
    assert share["market_cap"].sum() == pytest.approx(caps.sum())
    btc = share.loc[share["coin_id"] == "bitcoin", "share"].item()
    assert btc == pytest.approx(569778313238 / caps.sum())


def test_market_share_without_rest_has_no_others_row():
    share = market.market_share(pd.Series({"a": 3.0, "b": 1.0, "c": None}), top_n=5)
    assert list(share["coin_id"]) == ["a", "b"]
    assert list(share["share"]) == [0.75, 0.25]


def test_market_share_of_nothing_is_empty():
    share = market.market_share(pd.Series(dtype="float64"), top_n=3)
    assert share.empty


def test_returns_simple_and_log():
    prices = pd.Series([100.0, 110.0, 99.0])
    simple = series.returns(prices)
    assert math.isnan(simple.iloc[0])
    assert simple.iloc[1:].tolist() == pytest.approx([0.1, -0.1])
    log = series.returns(prices, log=True)
    assert log.iloc[1] == pytest.approx(math.log(1.1))


def test_returns_do_not_fill_gaps():
    simple = series.returns(pd.Series([1.0, None, 2.0]))
    assert simple.isna().tolist() == [True, True, True]


def test_moving_averages_wait_for_a_full_window():
    ma = series.moving_averages(pd.Series([1.0, 2.0, 3.0, 4.0]), [2, 3])
    assert list(ma.columns) == ["ma_2", "ma_3"]
    assert ma["ma_2"].tolist()[1:] == [1.5, 2.5, 3.5]
    assert ma["ma_3"].isna().tolist() == [True, True, False, False]
    assert ma["ma_3"].iloc[3] == 3.0


def test_resample_keeps_last_point_per_bucket_labelled_by_start():
    raw = points(
        [
            ("2024-01-01T00:00:10", 1.0),
            ("2024-01-01T00:59:00", 2.0),
            ("2024-01-01T02:30:00", 3.0),
        ]
    )
    hourly = series.resample_points(raw, "1h")
    assert hourly["ts"].tolist() == [ts("2024-01-01T00:00"), ts("2024-01-01T02:00")]
    assert hourly["price"].tolist() == [2.0, 3.0]
    assert hourly["market_cap"].tolist() == [20.0, 30.0]


def test_resample_raw_is_identity_and_unknown_interval_is_refused():
    raw = points([("2024-01-01T00:00", 1.0)])
    assert series.resample_points(raw, "raw").equals(raw)
    with pytest.raises(ValueError, match="unknown interval"):
        series.resample_points(raw, "7m")


def test_combine_points_prefers_first_source_and_sorts():
    snapshots = points([("2024-01-01T01:00", 10.0), ("2024-01-01T00:00", 9.0)])
    history = points([("2024-01-01T00:00", 1.0), ("2024-01-01T00:30", 2.0)])
    combined = series.combine_points(snapshots, history)
    assert combined["price"].tolist() == [9.0, 2.0, 10.0]
    assert series.combine_points(series.empty_points()).empty


def test_history_features_columns_and_values():
    raw = points([(f"2024-01-0{d}T12:00", float(d)) for d in range(1, 6)])
    frame = series.history_features(raw, "1d", [2])
    assert list(frame.columns) == [
        "ts",
        "price",
        "market_cap",
        "total_volume",
        "simple_return",
        "log_return",
        "ma_2",
    ]
    assert frame["ts"].iloc[0] == ts("2024-01-01")
    assert frame["simple_return"].iloc[1] == pytest.approx(1.0)
    assert frame["ma_2"].iloc[4] == pytest.approx(4.5)


def test_correlation_matrix_of_returns():
    index = pd.date_range("2024-01-01", periods=6, freq="1D", tz="UTC")
    a = pd.Series([1.0, 2.0, 1.5, 3.0, 2.0, 4.0], index=index)
    wide = pd.DataFrame({"a": a, "b": a * 3, "c": 10 - a})
    corr = correlation.correlation_matrix(wide)
    assert corr.loc["a", "b"] == pytest.approx(1.0)
    assert corr.loc["a", "c"] < 0
    assert np.diag(corr.to_numpy()) == pytest.approx([1.0, 1.0, 1.0])


def test_correlation_needs_enough_common_returns():
    index = pd.date_range("2024-01-01", periods=3, freq="1D", tz="UTC")
    wide = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, None, 2.0]}, index=index)
    assert math.isnan(correlation.correlation_matrix(wide).loc["a", "b"])


def test_wide_prices_aligns_coins_on_one_grid():
    wide = series.wide_prices(
        {
            "a": points([("2024-01-01T00:10", 1.0), ("2024-01-01T01:10", 2.0)]),
            "b": points([("2024-01-01T01:20", 5.0)]),
        },
        "1h",
    )
    assert list(wide.columns) == ["a", "b"]
    assert len(wide) == 2
    assert math.isnan(wide["b"].iloc[0])
    assert series.wide_prices({}, "1h").empty


def test_candles_from_points_close_at_bucket_end():
    raw = points(
        [
            ("2024-01-01T00:10", 5.0),
            ("2024-01-01T00:20", 7.0),
            ("2024-01-01T00:30", 4.0),
            ("2024-01-01T00:40", 6.0),
        ]
    )
    candles = candle_math.candles_from_points(raw, "30m")
    assert list(candles.columns) == list(series.CANDLE_COLUMNS)
    assert candles["ts"].tolist() == [ts("2024-01-01T00:30"), ts("2024-01-01T01:00")]
    first = candles.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (5.0, 7.0, 4.0, 4.0)
    assert candles.iloc[1]["open"] == 6.0
    assert candle_math.candles_from_points(series.empty_points(), "1h").empty


def test_candles_from_snapshots_use_the_24h_figures(markets):
    candles = candle_math.candles_from_snapshots(markets)
    btc = markets.iloc[0]
    first = candles.loc[candles["ts"] == ts(btc["last_updated"])].iloc[0]
    assert first["open"] == pytest.approx(29309 - 143.86)
    assert (first["high"], first["low"], first["close"]) == (29507, 29119, 29309)
    # the stale gains-farm row lacks its 24h figures and gives no candle
    assert len(candles) == len(markets) - 1
    assert candles["ts"].is_monotonic_increasing
    assert candle_math.candles_from_snapshots(pd.DataFrame()).empty


def test_auto_interval_follows_coingecko_granularity():
    assert series.auto_interval(timedelta(hours=24)) == "raw"
    assert series.auto_interval(timedelta(days=30)) == "1h"
    assert series.auto_interval(timedelta(days=90)) == "1h"
    assert series.auto_interval(timedelta(days=91)) == "1d"


def test_interval_rule():
    assert series.interval_rule("4h") == "4h"
    with pytest.raises(ValueError):
        series.interval_rule("raw")


def test_latest_per_coin_keeps_the_newest_row_largest_first():
    rows = pd.DataFrame(
        {
            "id": ["a", "b", "a", "b"],
            "last_updated": [
                ts("2025-01-01"),
                ts("2025-01-02"),
                ts("2025-01-03"),
                ts("2025-01-01"),
            ],
            "market_cap": [1.0, 5.0, 9.0, 7.0],
        }
    )
    latest = market.latest_per_coin(rows)
    assert list(latest["id"]) == ["a", "b"]
    assert list(latest["market_cap"]) == [9.0, 5.0]


def test_top_movers_never_lists_a_coin_twice():
    rows = pd.DataFrame({"id": list("abc"), "price_change_percentage_24h": [3.0, -1.0, None]})
    gainers, losers = market.top_movers(rows, 2)
    assert list(gainers["id"]) == ["a", "b"]
    assert losers.empty


def test_candle_interval_wants_several_points_per_candle():
    hourly = pd.Series(pd.date_range("2025-01-01", periods=48, freq="1h", tz="UTC"))
    assert candle_math.candle_interval(hourly, max_candles=120) == "4h"
    daily = pd.Series(pd.date_range("2025-01-01", periods=60, freq="1D", tz="UTC"))
    assert candle_math.candle_interval(daily, max_candles=120) == "4d"


def test_returns_correlation_picks_the_coarsest_interval_with_enough_prices():
    grid = pd.date_range("2025-01-01", periods=30, freq="1h", tz="UTC")
    walk = np.cumprod(1 + np.sin(np.arange(30)) / 100)
    by_coin = {
        coin: pd.DataFrame(
            {"ts": grid, "price": walk * k, "market_cap": walk, "total_volume": walk}
        )
        for coin, k in (("a", 1.0), ("b", 2.0))
    }
    found = correlation.returns_correlation(by_coin)
    assert (found.interval, found.observations, found.usable) == ("1h", 30, True)
    assert found.matrix.loc["a", "b"] == pytest.approx(1.0)
    assert not correlation.returns_correlation({"a": by_coin["a"]}).usable


def test_market_totals_over_each_coins_newest_row():
    latest = pd.DataFrame(
        {
            "coin_id": ["bitcoin", "ethereum", "dust"],
            "market_cap": [600.0, 300.0, None],
            "total_volume": [20.0, None, 1.0],
            "last_updated": pd.to_datetime(
                ["2025-09-09T15:00Z", "2025-09-09T15:02Z", "2025-09-09T14:00Z"], utc=True
            ),
        }
    )
    totals = market.market_totals(latest, top_n=1)
    assert (totals.coins, totals.total_market_cap, totals.total_volume) == (3, 900.0, 21.0)
    assert totals.as_of == datetime(2025, 9, 9, 15, 2, tzinfo=UTC)
    assert list(totals.dominance["coin_id"]) == ["bitcoin", market.OTHERS]
    assert list(totals.dominance["share"]) == pytest.approx([2 / 3, 1 / 3])
    empty = market.market_totals(latest.iloc[:0], top_n=1)
    assert (empty.coins, empty.total_market_cap, empty.as_of) == (0, 0.0, None)


def test_a_scheduled_table_is_fresh_within_two_cadences():
    now = datetime(2025, 9, 9, 12, tzinfo=UTC)
    fresh = table_age(now - timedelta(seconds=599), now, 300, scheduled=True)
    assert (fresh.age_seconds, fresh.max_age_seconds, fresh.fresh) == (599.0, 600, True)
    assert table_age(now - timedelta(seconds=601), now, 300, scheduled=True).fresh is False
    assert table_age(None, now, 300, scheduled=True) == TableAge(None, 600, False)
    assert table_age(now, now, 300, scheduled=False) == TableAge(0.0, None, None)


def test_a_fixed_correlation_interval_is_used_as_it_is_and_sparse_coins_are_left_out():
    grid = pd.date_range("2025-01-01", periods=30, freq="1h", tz="UTC")
    walk = np.cumprod(1 + np.sin(np.arange(30)) / 100)
    frame = pd.DataFrame({"ts": grid, "price": walk, "market_cap": walk, "total_volume": walk})
    by_coin = {"a": frame, "b": frame.assign(price=walk * 2), "c": frame.iloc[:3]}
    found = correlation.returns_correlation(by_coin, ["c", "b", "a"], interval="4h")
    assert (found.interval, found.coins, found.observations) == ("4h", ["b", "a"], 8)
    assert found.matrix.loc["a", "b"] == pytest.approx(1.0)
