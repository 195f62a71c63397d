"""The anomaly rules and the alert conditions as pure functions, and how many flags each rule
raises on real CoinGecko answers (tests/data) with synthesised history (tests/alert_data.py)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from alert_data import recorded_rows, synthesised_history
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_etl.alerts import anomalies
from crypto_etl.alerts.anomalies import Baseline, Point, RuleParams, robust_z, scan
from crypto_etl.alerts.conditions import (
    Evaluation,
    Finding,
    RunFact,
    anomaly_conditions,
    run_conditions,
    staleness,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
STABLE = ("usdt", "usdc", "dai", "tusd", "busd", "usdp")


def series(prices, volumes=None, step=timedelta(minutes=5)) -> list[Point]:
    volumes = volumes or [1e6] * len(prices)
    return [
        Point(T0 + i * step, p, p * 1000, v, 1000.0)
        for i, (p, v) in enumerate(zip(prices, volumes, strict=True))
    ]


def wiggle(n: int, base: float = 100.0, size: float = 0.001) -> list[float]:
    """A price that moves up and down by `size` in a fixed pattern."""
    pattern = (1, -1, 2, -2, 1, 0, -1)
    out, price = [], base
    for i in range(n):
        price *= 1 + size * pattern[i % len(pattern)]
        out.append(price)
    return out


def test_robust_z_ignores_the_outliers_in_its_baseline():
    baseline = [0.001, -0.001, 0.002, -0.002, 0.0, 5.0, -7.0]  # two wild values among them
    z, median = robust_z(0.0015, baseline, floor=1e-9)
    assert median == 0.0
    assert abs(z) < 1.5  # a standard deviation would have been dragged to ~4


def _sliding_checks(values, size: int, floor: float) -> None:
    """Baseline(size) fed `values` one by one gives robust_z's numbers on its last `size` values
    at every step, bit for bit."""
    kept = Baseline(size)
    for i, value in enumerate(values):
        if len(kept):
            window = values[max(0, i - size) : i]
            assert len(kept) == len(window)
            z, median = robust_z(value, window, floor)
            assert kept.z(value, floor) == (z, median), (i, window)
            assert kept.median() == median
            for limit in (0.5, 3.0, 12.0):
                expected = (z, median) if abs(z) > limit else None
                assert kept.outlier(value, floor, limit) == expected
        kept.append(value)


@pytest.mark.parametrize("seed", range(4))
def test_the_sorted_baseline_gives_robust_zs_numbers(seed):
    rng = np.random.default_rng(seed)
    returns = (rng.standard_t(2, 3000) * 0.01).tolist()  # heavy tails, as crypto returns
    rounded = np.round(rng.normal(0, 1, 3000), 1).tolist()  # many ties, at the median too
    flat = [0.0] * 200 + [1e-9] * 3 + [0.0] * 100  # a stablecoin: the MAD is its floor
    for values, size in ((returns, 288), (rounded, 288), (rounded, 7), (flat, 50)):
        _sliding_checks(values, size, floor=0.002)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.sampled_from([0.0, 1.0]),
        min_size=2,
        max_size=60,
    ),
    size=st.integers(min_value=1, max_value=12),
)
def test_the_sorted_baseline_matches_robust_z_on_any_values(values, size):
    _sliding_checks(values, size, floor=1e-12)


def test_a_ten_fold_price_is_one_flag_not_two():
    prices = wiggle(60)
    prices[50] *= 10
    verdict = scan(series(prices), 40, RuleParams())
    moves = [f for f in verdict.flags if f.rule == "price_move"]
    assert [f.observed_at for f in moves] == [T0 + 50 * timedelta(minutes=5)]
    assert moves[0].expected == pytest.approx(prices[49], rel=0.01)
    assert moves[0].score > 100
    assert "price_move" in verdict.judged


def test_a_lasting_new_level_is_accepted_after_three_points():
    prices = wiggle(40) + [p * 10 for p in wiggle(10, base=wiggle(40)[-1])]
    verdict = scan(series(prices), 30, RuleParams())
    flagged = [f.observed_at for f in verdict.flags if f.rule == "price_move"]
    assert len(flagged) == anomalies.LEVEL_SHIFT_POINTS


def test_little_history_is_not_judged():
    prices = wiggle(10)
    prices[-1] *= 10
    verdict = scan(series(prices), 9, RuleParams(min_history=24))
    assert verdict.flags == [] and "price_move" not in verdict.judged


def test_points_flagged_before_stay_out_of_the_baseline():
    prices = wiggle(60)
    prices[45] *= 10  # stored earlier, flagged then
    bad = T0 + 45 * timedelta(minutes=5)
    clean = scan(series(prices), 50, RuleParams(), {"price_move": {bad}})
    assert [f for f in clean.flags if f.rule == "price_move"] == []
    # Without the earlier flag the jump back from the bad point would be judged a new move.
    assert scan(series(prices), 46, RuleParams()).flags


def test_stablecoin_floor_keeps_wobbles_quiet_and_catches_a_depeg():
    prices = [1.0 + 0.0001 * ((i % 3) - 1) for i in range(60)]
    for factor, flagged in ((1.003, False), (1.05, True)):
        moved = [*prices[:-1], prices[-1] * factor]
        verdict = scan(series(moved), 59, RuleParams())
        assert bool([f for f in verdict.flags if f.rule == "price_move"]) is flagged


def test_volume_jump_and_market_cap_rules():
    prices = wiggle(40)
    volumes = [1e6 * (1 + 0.05 * (i % 4)) for i in range(40)]
    volumes[-1] = 4e7
    points = series(prices, volumes)
    points[-1] = dataclasses.replace(points[-1], market_cap=0.0)
    verdict = scan(points, 39, RuleParams())
    assert Counter(f.rule for f in verdict.flags) == {"volume_jump": 1, "market_cap": 1}
    cap = next(f for f in verdict.flags if f.rule == "market_cap")
    assert cap.value == 0 and cap.score == pytest.approx(1.0)


def count_flags(name: str, fault=None, whole_day: bool = False) -> Counter:
    counts: Counter = Counter()
    for row in recorded_rows(name):
        points = synthesised_history(row)
        if fault:
            points[-1] = fault(points[-1])
        start = 0 if whole_day else len(points) - 1
        counts.update(flag.rule for flag in scan(points, start, RuleParams()).flags)
    return counts


@pytest.mark.parametrize(
    ("name", "coins"),
    [("coins_markets_usd_250.json", 250), ("coins_markets_usd_top50.json", 50)],
)
def test_flag_counts_on_real_data(name, coins):
    """README: Alerts and anomaly flags, flag counts. The recorded rows themselves and a whole
    synthesised day of 5-minute snapshots of every coin raise no flag; a served fault is caught
    in every coin it can be judged in (market_cap needs a circulating supply)."""
    assert len(recorded_rows(name)) == coins
    assert count_flags(name) == Counter()
    assert count_flags(name, whole_day=True) == Counter()
    with_supply = sum(1 for row in recorded_rows(name) if row.get("circulating_supply"))
    tenfold = count_flags(name, lambda p: dataclasses.replace(p, price=p.price * 10))
    assert tenfold["price_move"] == coins
    assert count_flags(name, lambda p: dataclasses.replace(p, market_cap=0.0)) == {
        "market_cap": with_supply
    }
    assert count_flags(name, lambda p: dataclasses.replace(p, volume=p.volume * 20)) == {
        "volume_jump": coins
    }


def test_stablecoins_on_real_data_need_the_floor(monkeypatch):
    rows = [r for r in recorded_rows("coins_markets_usd_250.json") if r["symbol"] in STABLE]
    assert len(rows) == 6

    def flagged(factor: float) -> int:
        total = 0
        for row in rows:
            points = synthesised_history(row)
            points[-1] = dataclasses.replace(points[-1], price=points[-1].price * factor)
            total += any(
                f.rule == "price_move" for f in scan(points, len(points) - 1, RuleParams()).flags
            )
        return total

    assert flagged(1.005) == 0 and flagged(1.05) == 6
    monkeypatch.setattr(anomalies, "PRICE_MAD_FLOOR", 0.0)
    assert flagged(1.002) == 6  # without the floor a 0.2 % wobble flags every stablecoin


def run(id_, status, command="run", extracted=50, rejected=0, error=None) -> RunFact:
    return RunFact(id_, command, status, T0, extracted, rejected, error)


def test_run_conditions():
    quiet = run_conditions("run", [run(3, "success"), run(2, "failed")], 3, 0.1)
    assert quiet.judged == {"run_failed:run", "failed_streak:run", "quarantine_rate:run"}
    assert quiet.findings == {}

    failing = [run(5, "failed", error="boom"), run(4, "cancelled"), run(3, "failed")]
    failing += [run(2, "abandoned"), run(1, "success")]
    found = run_conditions("run", failing, 3, 0.1).findings
    assert found["run_failed:run"].run_ids == (5,)
    assert "boom" in found["run_failed:run"].summary
    assert found["failed_streak:run"].run_ids == (2, 3, 5)

    rate = run_conditions("load", [run(7, "partial", "load", 10, 2)], 3, 0.1).findings
    assert rate["quarantine_rate:load"].details["rate"] == pytest.approx(0.2)
    backfill = run_conditions("backfill", [run(8, "failed", "backfill")], 3, 0.1)
    assert "quarantine_rate:backfill" not in backfill.judged


def test_staleness_and_anomaly_keys():
    assert staleness("usd", None, T0, 60).judged == set()
    stale = staleness("usd", T0 - timedelta(hours=2), T0, 3600)
    assert "2h" in stale.findings["data_stale:usd"].summary.replace(" ", "")
    assert staleness("usd", T0 - timedelta(minutes=5), T0, 3600).findings == {}
    flag = anomalies.Flag("price_move", T0, 10.0, 1.0, 50.0)
    out = anomaly_conditions(
        "bitcoin", "usd", frozenset({"price_move", "market_cap"}), [flag], 9, "x"
    )
    assert out.judged == {"anomaly:price_move:usd:bitcoin", "anomaly:market_cap:usd:bitcoin"}
    assert list(out.findings) == ["anomaly:price_move:usd:bitcoin"]


def test_a_later_verdict_replaces_an_earlier_one():
    first = Evaluation()
    first.add("k", Finding("k", "anomaly", "bad"))
    later = Evaluation()
    later.add("k", None)
    first.merge(later)
    assert first.judged == {"k"} and first.findings == {}
