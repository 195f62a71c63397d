"""Write a large, realistic snapshot CSV for the load benchmark.

The 250 real rows of tests/data/coins_markets_usd_250.json are repeated as successive snapshots five
minutes apart, with prices and volumes drifting a little, so every row has its own key.

    python bench/make_snapshots_csv.py --rows 1000000 --out bench/out/snapshots_1m.csv
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from crypto_etl.shaping.snapshot_table import transform_markets, write_csv

ROOT = Path(__file__).resolve().parent.parent

FIXTURE = ROOT / "tests" / "data" / "coins_markets_usd_250.json"
DRIFTING = ("current_price", "market_cap", "total_volume", "high_24h", "low_24h")


def make_frame(rows: int, seed: int = 7) -> pd.DataFrame:
    raw = json.loads(FIXTURE.read_text())
    base = transform_markets(raw, "usd", datetime(2023, 7, 28, 20, 10, tzinfo=UTC))
    snapshots = -(-rows // len(base))
    rng = np.random.default_rng(seed)
    frame = pd.concat([base] * snapshots, ignore_index=True).iloc[:rows].copy()
    step = np.repeat(np.arange(snapshots), len(base))[:rows]
    offset = pd.to_timedelta(step * 300, unit="s")
    frame["last_updated"] = frame["last_updated"] + offset
    frame["snapshot_at"] = frame["snapshot_at"] + offset
    factor = 1 + rng.normal(0, 0.002, size=rows)
    for col in DRIFTING:
        frame[col] = frame[col] * factor
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "snapshots_1m.csv")
    args = parser.parse_args()
    write_csv(make_frame(args.rows), args.out)
    print(f"wrote {args.rows} rows to {args.out}")


if __name__ == "__main__":
    main()
