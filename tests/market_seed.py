"""A database with a market history to chart: the real top-50 /coins/markets response as the newest
snapshot, hourly snapshots of the largest coins before it, daily backfilled prices, CoinGecko
candles of bitcoin and ethereum, and a few pipeline runs (one failed, one with rejected rows).

Prices before the newest snapshot follow a seeded random walk with a common market factor, so
coins correlate as real ones do and every run of the tests sees the same numbers.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
from helpers import market_rows
from sqlalchemy import insert, select

from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.rollup import rebuild
from crypto_etl.storage.schema import (
    Alert,
    AnomalyFlag,
    Coin,
    EtlRun,
    MarketSnapshot,
    Ohlc,
    PriceHistory,
    RejectedRow,
)

SNAPSHOT_FIELDS = [c.key for c in MarketSnapshot.__table__.columns]


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def newest_update(rows: list[dict]) -> datetime:
    return max(_time(row["last_updated"]) for row in rows)


def _walk(rng: np.random.Generator, market: np.ndarray, beta: float, noise: float) -> np.ndarray:
    """Price factors ending at 1.0: a walk driven by the market factor plus the coin's own noise."""
    steps = beta * market + rng.normal(0, noise, len(market))
    levels = np.exp(np.cumsum(steps))
    return levels / levels[-1]


def seed_market(
    url: str,
    anchor: datetime | None = None,
    history_coins: int = 10,
    hours: int = 240,
    days: int = 60,
) -> dict:
    """Fill the database at `url`; the newest snapshot is moved to `anchor` (default: the
    fixture's own time). Returns what was written, by table, for assertions."""
    rows = market_rows()
    shift = (anchor - newest_update(rows)) if anchor else timedelta(0)
    anchor = newest_update(rows) + shift
    rng = np.random.default_rng(7)
    runs = []
    for k in range(12):
        started = anchor - timedelta(minutes=5 * (11 - k), seconds=40)
        status = "failed" if k == 8 else "partial" if k == 10 else "success"
        runs.append(
            dict(
                command="run",
                status=status,
                started_at=started,
                finished_at=started + timedelta(seconds=9 + k % 4),
                vs_currency="usd",
                rows_extracted=0 if status == "failed" else 50,
                rows_loaded=0 if status == "failed" else 50 if k == 11 else 48,
                rows_rejected=2 if status == "partial" else 0,
                rows_skipped=0,
                source="coingecko /coins/markets",
                error_message="CoinGecko kept answering 429 after 5 retries"
                if status == "failed"
                else None,
            )
        )
    coins, snapshots = [], []
    for row in rows:
        updated = _time(row["last_updated"]) + shift
        coins.append(
            dict(
                id=row["id"],
                symbol=row["symbol"],
                name=row["name"],
                image=row["image"],
                first_seen_at=anchor - timedelta(days=days),
                last_seen_at=updated,
            )
        )
        roi = row.get("roi") or {}
        snapshot = {k: row.get(k) for k in SNAPSHOT_FIELDS if k in row}
        snapshot.update(
            coin_id=row["id"],
            vs_currency="usd",
            last_updated=updated,
            snapshot_at=anchor,
            ath_date=_time(row["ath_date"]),
            atl_date=_time(row["atl_date"]),
            roi_times=roi.get("times"),
            roi_currency=roi.get("currency"),
            roi_percentage=roi.get("percentage"),
            run_id=12,
        )
        for key in SNAPSHOT_FIELDS:
            value = snapshot.get(key)
            if isinstance(value, int) and key not in ("market_cap_rank", "run_id"):
                snapshot[key] = float(value)
            snapshot.setdefault(key, None)
        snapshots.append(snapshot)
    largest = sorted(snapshots, key=lambda s: -(s["market_cap"] or 0))[:history_coins]
    hourly_market = rng.normal(0, 0.006, hours + 1)
    daily_market = rng.normal(0, 0.025, days + 1)
    history, candles = [], []
    for i, latest in enumerate(largest):
        stable = latest["current_price"] and abs(latest["current_price"] - 1) < 0.02
        beta, noise = (0.0, 0.0004) if stable else (1.0 + 0.1 * (i % 3), 0.004)
        hourly = _walk(rng, hourly_market, beta, noise)
        for h in range(1, hours + 1):
            factor = float(hourly[-1 - h])
            snapshots.append(
                {
                    **latest,
                    "last_updated": latest["last_updated"] - timedelta(hours=h),
                    "snapshot_at": anchor - timedelta(hours=h),
                    "current_price": latest["current_price"] * factor,
                    "market_cap": (latest["market_cap"] or 0) * factor,
                    "total_volume": (latest["total_volume"] or 0) * (0.8 + 0.4 * rng.random()),
                    "run_id": None,
                }
            )
        # Daily backfill before the hourly snapshots, joining them where they begin.
        daily = _walk(rng, daily_market, beta, noise * 6) * float(hourly[0])
        day0 = anchor.replace(hour=0, minute=0, second=0, microsecond=0)
        first_hourly = hours // 24 + 1
        for d in range(first_hourly, days + 1):
            factor = float(daily[-1 - (d - first_hourly)])
            history.append(
                dict(
                    coin_id=latest["coin_id"],
                    vs_currency="usd",
                    ts=day0 - timedelta(days=d),
                    price=latest["current_price"] * factor,
                    market_cap=(latest["market_cap"] or 0) * factor,
                    total_volume=(latest["total_volume"] or 0) * (0.7 + 0.6 * rng.random()),
                    granularity="1d",
                    run_id=None,
                )
            )
        if latest["coin_id"] in ("bitcoin", "ethereum"):
            # CoinGecko's 4h candles over the hourly path: open, extremes and close of 4 hours.
            path = latest["current_price"] * hourly
            for k in range(hours // 4):
                chunk = path[4 * k : 4 * k + 5]
                open_, close = float(chunk[0]), float(chunk[-1])
                wick = latest["current_price"] * 0.002 * rng.random()
                candles.append(
                    dict(
                        coin_id=latest["coin_id"],
                        vs_currency="usd",
                        interval="4h",
                        ts=latest["last_updated"] - timedelta(hours=hours - 4 * (k + 1)),
                        open=open_,
                        high=float(chunk.max()) + wick,
                        low=float(chunk.min()) - wick,
                        close=close,
                        run_id=None,
                    )
                )
    rejected = [
        dict(
            run_id=11,
            coin_id=coin,
            vs_currency="usd",
            rule=rule,
            reason=reason,
            raw=json.dumps({"id": coin}),
            row_hash=f"{k:064x}",
            rejected_at=runs[10]["finished_at"],
        )
        for k, (coin, rule, reason) in enumerate(
            [
                ("pepe", "non_negative", "current_price is negative (-0.00001)"),
                ("dai", "high_low", "high_24h 0.99 is below low_24h 1.01"),
            ]
        )
    ]
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(EtlRun), runs)
            conn.execute(insert(Coin), coins)
            conn.execute(insert(MarketSnapshot), snapshots)
            conn.execute(insert(PriceHistory), history)
            conn.execute(insert(Ohlc), candles)
            conn.execute(insert(RejectedRow), rejected)
        rebuild(engine)  # rows written by hand: the hourly rollup follows them
    finally:
        engine.dispose()
    return {
        "anchor": anchor,
        "history_coins": [s["coin_id"] for s in largest],
        "snapshots": len(snapshots),
        "price_history": len(history),
        "ohlc": len(candles),
    }


def seed_alerts(url: str, anchor: datetime) -> dict:
    """Alerts and a flagged value on top of `seed_market(url, anchor)`: an open anomaly alert, a
    resolved run alert, and bitcoin's snapshot of a day before `anchor` flagged as a price move
    (the price then is in the hourly history the coin page charts)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            btc = conn.execute(
                select(MarketSnapshot.last_updated, MarketSnapshot.current_price)
                .where(MarketSnapshot.coin_id == "bitcoin")
                .order_by(MarketSnapshot.last_updated.desc())
                .offset(24)
                .limit(1)
            ).one()
            failed_at = anchor - timedelta(minutes=20)
            conn.execute(
                insert(Alert),
                [
                    dict(
                        condition="run_failed:backfill",
                        kind="run_failed",
                        state="resolved",
                        summary="run 3 (backfill) failed: CoinGecko answered 404",
                        opened_at=failed_at - timedelta(hours=2),
                        last_seen_at=failed_at - timedelta(hours=1),
                        resolved_at=failed_at - timedelta(hours=1),
                        details={},
                        run_ids=[3],
                        coin_ids=[],
                    ),
                    dict(
                        condition="anomaly:price_move:usd:bitcoin",
                        kind="anomaly",
                        state="open",
                        summary="bitcoin (usd): 1 price_move flag(s) in run 9",
                        opened_at=failed_at,
                        last_seen_at=anchor,
                        resolved_at=None,
                        details={"rule": "price_move"},
                        run_ids=[9],
                        coin_ids=["bitcoin"],
                    ),
                ],
            )
            conn.execute(
                insert(AnomalyFlag),
                [
                    dict(
                        rule="price_move",
                        source="market_snapshots",
                        coin_id="bitcoin",
                        vs_currency="usd",
                        observed_at=btc.last_updated,
                        value=btc.current_price,
                        expected=btc.current_price * 0.9,
                        score=14.2,
                        run_id=9,
                        created_at=anchor,
                    )
                ],
            )
    finally:
        engine.dispose()
    return {"flagged_at": btc.last_updated, "flagged_price": btc.current_price}
