"""The chart commands of the command line, each in one call: read the snapshot CSV (and the
database's history when there is one), compute with crypto_etl.analytics, draw with
crypto_etl.reports.charts, and return what was written."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from crypto_etl import formatting as fmt
from crypto_etl.analytics.correlation import returns_correlation
from crypto_etl.errors import InputFileError
from crypto_etl.reports import charts
from crypto_etl.reports.inputs import (
    SnapshotTable,
    coin_candles,
    find_coin,
    history_points,
    open_database,
    read_chart_csv,
)

log = logging.getLogger(__name__)


def csv_source(table: SnapshotTable) -> str:
    """Where a chart's data comes from, for its subtitle."""
    when = table.as_of.strftime("%Y-%m-%d %H:%M UTC")
    snapshots = f"{table.snapshots} snapshots" if table.snapshots > 1 else "1 snapshot"
    return f"newest of {snapshots} in {table.path.name}, CoinGecko data as of {when}"


def market_charts(csv_path: Path, output_dir: Path) -> list[Path]:
    """Market share, price, 24h move and market cap vs volume charts of a CSV's newest snapshot
    of each coin; returns the PNGs written."""
    table = read_chart_csv(csv_path)
    latest, currency = table.latest, table.vs_currency
    source = csv_source(table)
    return [
        charts.market_share_chart(latest, currency, source, output_dir / "market_share.png"),
        charts.price_chart(latest, currency, source, output_dir / "prices.png"),
        charts.change_chart(latest, source, output_dir / "price_change_24h.png"),
        charts.cap_volume_chart(latest, currency, source, output_dir / "market_cap_vs_volume.png"),
    ]


@dataclass(frozen=True)
class CandlestickChart:
    path: Path
    coin_id: str
    shown: int  # candles drawn
    total: int  # candles available
    source: str


def candlestick(
    csv_path: Path, coin_name: str, save_path: Path | None, database_url: str
) -> CandlestickChart:
    """One coin's candles as a PNG (default path `<coin id>_candlestick.png`), from the best
    source there is (reports.inputs.coin_candles). `coin_name` is an id, symbol or name."""
    table = read_chart_csv(csv_path)
    coin = find_coin(table, coin_name)
    target = save_path or Path(f"{coin['id']}_candlestick.png")
    candles = coin_candles(open_database(database_url), table, coin)
    if candles.frame.empty:
        raise InputFileError(
            f"no candles for {coin['id']}: the database has no history of it and its rows in "
            f"{table.path} lack current_price, price_change_24h, high_24h or low_24h"
        )
    charts.candlestick_chart(
        candles.frame,
        fmt.coin_label(coin),
        table.vs_currency,
        candles.source,
        candles.total,
        target,
    )
    chart = CandlestickChart(target, coin["id"], len(candles.frame), candles.total, candles.source)
    shown = (
        f"{chart.shown}" if chart.shown == chart.total else f"newest {chart.shown} of {chart.total}"
    )
    log.info("candlestick of %s: %s candles, %s", chart.coin_id, shown, chart.source)
    return chart


def correlation_heatmap(
    csv_path: Path, save_path: Path, top_n: int, days: int, database_url: str
) -> Path:
    """A heatmap of the correlation of returns (crypto_etl.analytics.correlation, interval auto)
    of the `top_n` largest coins over the `days` before the CSV's newest snapshot, from the
    database's history merged with the CSV's snapshots. Without enough history it draws market cap
    against 24h volume instead, and its title says so."""
    table = read_chart_csv(csv_path)
    latest = table.latest.dropna(subset=["market_cap"]).head(top_n)
    wanted = list(latest["id"])
    points, source = history_points(open_database(database_url), table, wanted, days)
    found = returns_correlation(points, wanted)
    if not found.usable:
        log.info("no price history for a correlation: drawing market cap vs 24h volume")
        return charts.cap_volume_chart(
            table.latest,
            table.vs_currency,
            csv_source(table),
            save_path,
            title="No price history for a correlation: market cap vs 24h volume (log-log)",
        )
    coins = found.coins
    labels_by_id = dict(zip(latest["id"], latest["symbol"].str.upper(), strict=True))
    start = min(points[c]["ts"].min() for c in coins)
    end = max(points[c]["ts"].max() for c in coins)
    window = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    left_out = len(latest) - len(coins)
    if left_out:
        window += f" ({left_out} coins with too little history left out)"
    log.info(
        "correlation of %s returns of %d coins from %s",
        fmt.interval_words(found.interval),
        len(coins),
        source,
    )
    return charts.correlation_chart(
        found.matrix.loc[coins, coins],
        [labels_by_id[c] for c in coins],
        found.interval,
        found.observations,
        window,
        source,
        save_path,
    )
