"""Anomaly-rule benchmark (a script, not a test): the cost of judging new points.

Every new point of a run, a load or a backfill is judged by the anomaly rules
(crypto_etl.alerts.anomalies.scan): a price move and a volume jump each scored by a robust z-score
against the coin's last ALERT_HISTORY_WINDOW (288) accepted values. This times scan() on
synthetic coins (heavy-tailed 5-minute returns, a wandering volume, a few planted outliers so that
flags and their rejection from the baseline are exercised), twice in the same run:
- `sorted window`: the rules as they are (anomalies.Baseline: the window kept sorted, order
  statistics, the MAD only where the floor does not settle the point);
- `sort per point`: the former way, robust_z on the whole window for every point (np.median of
  the window and of its deviations), put in place of Baseline for that pass.
Both must raise the same flags with the same scores; the script stops if they do not. Prints and
writes bench/results/alerts.md.

    python bench/bench_alerts.py                       # 250 coins x 4,000 new points
    python bench/bench_alerts.py --coins 50 --points 1000
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from crypto_etl.alerts import anomalies
from crypto_etl.alerts.anomalies import Point, RuleParams, robust_z, scan

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)


class SortPerPoint:
    """The former baseline: a window of the last `size` values, robust_z on all of it per point."""

    def __init__(self, size: int) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._values)

    def append(self, value: float) -> None:
        self._values.append(value)

    def outlier(self, value: float, floor: float, limit: float) -> tuple[float, float] | None:
        z, median = robust_z(value, self._values, floor)
        return (z, median) if abs(z) > limit else None


def coin_points(rng: np.random.Generator, total: int) -> list[Point]:
    """One coin's series: Student-t (3) 5-minute log returns of about 0.2 %, a wandering 24 h
    volume, a market cap of price x supply, and about one planted outlier per 1,000 points (a
    price 10x off, a volume 20x)."""
    returns = rng.standard_t(3, total) * 0.002
    price = 100.0 * np.exp(np.cumsum(returns))
    volume = np.exp(20 + np.cumsum(rng.normal(0, 0.02, total)))
    price[rng.random(total) < 0.0005] *= 10
    volume[rng.random(total) < 0.0005] *= 20
    supply = 1e7
    return [
        Point(START + i * STEP, float(p), float(p) * supply, float(v), supply)
        for i, (p, v) in enumerate(zip(price, volume, strict=True))
    ]


def timed_scans(series: list[list[Point]], window: int, params: RuleParams) -> tuple[float, list]:
    began = time.perf_counter()
    verdicts = [scan(points, window, params) for points in series]
    return time.perf_counter() - began, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=250)
    parser.add_argument("--points", type=int, default=4000, help="new points per coin")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "alerts.md")
    args = parser.parse_args()

    params = RuleParams()
    rng = np.random.default_rng(args.seed)
    series = [coin_points(rng, params.window + args.points) for _ in range(args.coins)]
    judged = args.coins * args.points

    sorted_s, sorted_verdicts = timed_scans(series, params.window, params)
    kept = anomalies.Baseline
    anomalies.Baseline = SortPerPoint  # type: ignore[misc, assignment]
    try:
        former_s, former_verdicts = timed_scans(series, params.window, params)
    finally:
        anomalies.Baseline = kept  # type: ignore[misc]
    if [v.flags for v in sorted_verdicts] != [v.flags for v in former_verdicts]:
        raise SystemExit("the two ways raised different flags")
    flags = sum(len(v.flags) for v in sorted_verdicts)

    lines = [
        "# Anomaly-rule benchmark",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python bench/bench_alerts.py"
        f" --coins {args.coins} --points {args.points}`: scan() of {args.coins} synthetic coins,"
        f" each {params.window} stored points then {args.points:,} new ones"
        f" ({judged:,} judged points, {flags:,} flags, the same in both passes).",
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy"
        f" {np.__version__}; load average after the run"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "",
        "| baseline | seconds | us per judged point |",
        "|---|---:|---:|",
        f"| sort per point (robust_z, the former way) | {former_s:.2f} |"
        f" {former_s / judged * 1e6:.1f} |",
        f"| sorted window (anomalies.Baseline) | {sorted_s:.2f} | {sorted_s / judged * 1e6:.1f} |",
        "",
        f"The sorted window is {former_s / sorted_s:.1f} times faster.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
