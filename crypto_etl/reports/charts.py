"""PNG charts for reports, drawn with matplotlib (no display needed).

Each function takes chart-ready frames (see crypto_etl.analytics and crypto_etl.reports.inputs),
writes one PNG of a fixed pixel size (FIGURE_INCHES x DPI) and returns its path. Every chart has a
title, a subtitle saying what the data is and when it is from, axis labels with units and
currency, and a legend where colours carry meaning.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: never open a window

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from crypto_etl import formatting as fmt
from crypto_etl.analytics import market

DPI = 150
FIGURE_INCHES = {"wide": (12.0, 7.0), "square": (10.0, 8.5)}
UP, DOWN, NEUTRAL = "#1a9850", "#d73027", "#9e9e9e"
MAX_ANNOTATED_CELLS = 15  # a heatmap larger than this shows colours only


def _figure(kind: str) -> Figure:
    return Figure(figsize=FIGURE_INCHES[kind], dpi=DPI, layout="constrained")


def _titles(fig: Figure, ax, title: str, subtitle: str) -> None:
    fig.suptitle(title, fontsize=15, fontweight="bold")
    ax.set_title(subtitle, fontsize=10, color="#555555")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _utc(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


def _money_axis(vs_currency: str):
    return FuncFormatter(lambda value, _pos: fmt.money(value, vs_currency, digits=3))


def _price_axis(axis):
    """Tick labels with as many decimals as the tick step needs: 110,000 / 2.95 / 0.00001."""

    def label(value: float, _pos) -> str:
        ticks = axis.get_majorticklocs()
        step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value) or 1.0
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        return f"{value:,.{decimals}f}"

    return FuncFormatter(label)


def _log_axis():
    return FuncFormatter(lambda value, _pos: fmt.axis_number(value))


def market_share_chart(
    latest: pd.DataFrame, vs_currency: str, source: str, path: str | Path, top_n: int = 10
) -> Path:
    """Donut of the market cap shares of the `top_n` largest coins and the rest as 'Others'."""
    share = market.market_share(latest.set_index("id")["market_cap"], top_n)
    labels_by_id = {row["id"]: fmt.coin_label(row) for _, row in latest.iterrows()}
    total = float(share["market_cap"].sum())
    fig = _figure("wide")
    ax = fig.add_subplot()
    palette = matplotlib.colormaps["tab20"].colors
    colours = [
        NEUTRAL if coin == market.OTHERS else palette[i % len(palette)]
        for i, coin in enumerate(share["coin_id"])
    ]
    wedges, *_ = ax.pie(
        share["market_cap"],
        colors=colours,
        startangle=90,
        counterclock=False,
        wedgeprops={"width": 0.42, "edgecolor": "white", "linewidth": 1.2},
        autopct=lambda pct: f"{pct:.0f} %" if pct >= 4 else "",
        pctdistance=0.79,
        textprops={"fontsize": 10, "color": "white", "fontweight": "bold"},
    )
    ax.text(0, 0.06, "Total market cap", ha="center", fontsize=11, color="#555555")
    ax.text(0, -0.1, fmt.money(total, vs_currency), ha="center", fontsize=17, fontweight="bold")
    named = share[share["coin_id"] != market.OTHERS]
    rest = int((latest["market_cap"] > 0).sum()) - len(named)

    def name(coin: str) -> str:
        return f"Others ({rest} coins)" if coin == market.OTHERS else labels_by_id[coin]

    legend = [
        f"{name(coin)}   {s * 100:.1f} %   {fmt.money(cap, vs_currency)}"
        for coin, cap, s in share.itertuples(index=False)
    ]
    ax.legend(
        wedges,
        legend,
        title=f"Coin   share   market cap ({fmt.currency_label(vs_currency)})",
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
        fontsize=10,
        title_fontsize=10,
    )
    ax.set_aspect("equal")
    _titles(
        fig,
        ax,
        f"Market share of the top {min(top_n, len(latest))} coins by market cap",
        f"{len(latest)} coins, {source}",
    )
    return _save(fig, path)


def price_chart(
    latest: pd.DataFrame, vs_currency: str, source: str, path: str | Path, top_n: int = 20
) -> Path:
    """Horizontal bars of the price of the `top_n` largest coins, on a log scale (prices run from
    fractions of a cent to tens of thousands)."""
    top = latest.head(top_n).iloc[::-1]
    fig = _figure("wide")
    ax = fig.add_subplot()
    prices = top["current_price"].to_numpy(float)
    y = np.arange(len(top))
    low = 10 ** np.floor(np.log10(prices.min()) - 0.5)
    ax.barh(y, prices - low, left=low, color="#3b75af", height=0.7)
    ax.set_xscale("log")
    ax.set_xlim(low, prices.max() * 60)
    for yi, value in zip(y, prices, strict=True):
        ax.text(value * 1.15, yi, fmt.price(value, vs_currency), va="center", fontsize=9)
    ax.set_yticks(y, [fmt.coin_label(row) for _, row in top.iterrows()], fontsize=9)
    ax.set_xlabel(f"Price ({fmt.currency_label(vs_currency)}, log scale)")
    ax.xaxis.set_major_formatter(_log_axis())
    ax.grid(axis="x", alpha=0.3, which="major")
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    _titles(fig, ax, f"Price of the top {len(top)} coins by market cap", f"Largest first; {source}")
    return _save(fig, path)


def change_chart(latest: pd.DataFrame, source: str, path: str | Path, n: int = 10) -> Path:
    """Diverging bars of the biggest 24h price gains and losses."""
    gainers, losers = market.top_movers(latest, n)
    moves = pd.concat([gainers, losers]).sort_values("price_change_percentage_24h")
    fig = _figure("wide")
    ax = fig.add_subplot()
    change = moves["price_change_percentage_24h"].to_numpy(float)
    y = np.arange(len(moves))
    ax.barh(y, change, color=[UP if c >= 0 else DOWN for c in change], height=0.7)
    ax.axvline(0, color="#333333", linewidth=0.8)
    low = min(float(change.min()) if len(change) else 0.0, 0.0)
    high = max(float(change.max()) if len(change) else 0.0, 0.0)
    span = max(high - low, 0.1)
    ax.set_xlim(low - span * 0.12, high + span * 0.12)
    for yi, value in zip(y, change, strict=True):
        ax.text(
            value + (span * 0.02 if value >= 0 else -span * 0.02),
            yi,
            fmt.percent(value),
            va="center",
            ha="left" if value >= 0 else "right",
            fontsize=9,
        )
    ax.set_yticks(y, [fmt.coin_label(row) for _, row in moves.iterrows()], fontsize=9)
    ax.set_xlabel("Price change over 24 hours (%)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(
        handles=[Patch(color=UP, label="Gain"), Patch(color=DOWN, label="Loss")],
        loc="lower right",
        frameon=False,
    )
    _titles(
        fig,
        ax,
        f"Biggest 24h price moves among {len(latest)} coins",
        f"Top {len(gainers)} gainers and {len(losers)} losers; {source}",
    )
    return _save(fig, path)


def cap_volume_chart(
    latest: pd.DataFrame,
    vs_currency: str,
    source: str,
    path: str | Path,
    title: str = "Market cap vs 24h trading volume (log-log)",
    labelled: int = 10,
) -> Path:
    """Log-log scatter of market cap against 24h volume, with lines of equal turnover
    (volume / market cap) and the largest coins labelled."""
    data = latest.dropna(subset=["market_cap", "total_volume"])
    data = data[(data["market_cap"] > 0) & (data["total_volume"] > 0)]
    fig = _figure("wide")
    ax = fig.add_subplot()
    ax.scatter(data["market_cap"], data["total_volume"], s=36, color="#3b75af", alpha=0.8, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    if not data.empty:
        low = min(data["market_cap"].min(), data["total_volume"].min()) / 3
        high = max(data["market_cap"].max(), data["total_volume"].max()) * 3
        ax.set_xlim(data["market_cap"].min() / 2, data["market_cap"].max() * 2)
        ax.set_ylim(data["total_volume"].min() / 2, data["total_volume"].max() * 2)
        line_x = np.array([low, high])
        for turnover, style in ((1.0, "-"), (0.1, "--"), (0.01, ":")):
            ax.plot(
                line_x,
                line_x * turnover,
                style,
                color="#888888",
                linewidth=0.9,
                zorder=1,
                label=f"24h volume = {turnover:.0%} of market cap",
            )
        for _, row in data.head(labelled).iterrows():
            ax.annotate(
                str(row["symbol"]).upper(),
                (row["market_cap"], row["total_volume"]),
                xytext=(5, 4),
                textcoords="offset points",
                fontsize=9,
            )
        ax.legend(loc="upper left", frameon=False, fontsize=9)
    currency = fmt.currency_label(vs_currency)
    ax.set_xlabel(f"Market cap ({currency}, log scale)")
    ax.set_ylabel(f"24h trading volume ({currency}, log scale)")
    ax.xaxis.set_major_formatter(_money_axis(vs_currency))
    ax.yaxis.set_major_formatter(_money_axis(vs_currency))
    ax.grid(alpha=0.3, which="major")
    _titles(
        fig,
        ax,
        title,
        f"{len(data)} coins, the {min(labelled, len(data))} largest labelled; {source}",
    )
    return _save(fig, path)


def candlestick_chart(
    candles: pd.DataFrame,
    label: str,
    vs_currency: str,
    source: str,
    total: int,
    path: str | Path,
) -> Path:
    """Candles (green when the close is at or above the open, red below) against their close
    time in UTC."""
    fig = _figure("wide")
    ax = fig.add_subplot()
    times = mdates.date2num(candles["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy())
    opens, highs, lows, closes = (
        candles[c].to_numpy(float) for c in ("open", "high", "low", "close")
    )
    gaps = np.diff(times)
    width = float(np.median(gaps)) * 0.7 if len(gaps) else 0.3
    colours = np.where(closes >= opens, UP, DOWN)
    ax.vlines(times, lows, highs, colors=colours, linewidth=1.0, zorder=2)
    body_low = np.minimum(opens, closes)
    body = np.abs(closes - opens)
    # A doji (open == close) still shows as a thin line.
    body = np.maximum(body, (np.nanmax(highs) - np.nanmin(lows)) * 0.002 or 1e-12)
    ax.bar(times, body, bottom=body_low, width=width, color=colours, zorder=3)
    if len(times) == 1:
        ax.set_xlim(times[0] - 1, times[0] + 1)
    ax.xaxis_date()
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.yaxis.set_major_formatter(_price_axis(ax.yaxis))
    ax.set_xlabel("Candle close time (UTC)")
    ax.set_ylabel(f"Price ({fmt.currency_label(vs_currency)})")
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    ax.margins(y=0.05)
    fig.legend(
        handles=[
            Patch(color=UP, label="Close ≥ open"),
            Patch(color=DOWN, label="Close < open"),
            Line2D([], [], color="#555555", linewidth=1, label="Wick: high to low"),
        ],
        loc="outside lower center",
        ncols=3,
        frameon=False,
        fontsize=9,
    )
    shown = len(candles)
    if shown == 1:
        count = f"1 candle, closing {_utc(candles['ts'].iloc[0])}"
    else:
        count = f"{shown} candles" if shown == total else f"newest {shown} of {total} candles"
        count += f", closing {_utc(candles['ts'].iloc[0])} to {_utc(candles['ts'].iloc[-1])}"
    _titles(fig, ax, f"{label} candlestick", f"{source}; {count}")
    return _save(fig, path)


def correlation_chart(
    matrix: pd.DataFrame,
    labels: list[str],
    interval: str,
    observations: int,
    window: str,
    source: str,
    path: str | Path,
) -> Path:
    """Heatmap of a correlation matrix of returns, -1 blue to +1 red, values printed in cells
    when the matrix is small enough to read them."""
    fig = _figure("square")
    ax = fig.add_subplot()
    values = matrix.to_numpy(float)
    cmap = matplotlib.colormaps["RdBu_r"].copy()
    cmap.set_bad("#e0e0e0")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-1, vmax=1)
    n = len(labels)
    ax.set_xticks(range(n), labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels)
    if n <= MAX_ANNOTATED_CELLS:
        size = 10 if n <= 10 else 8
        for i in range(n):
            for j in range(n):
                value = values[i, j]
                text = "n/a" if np.isnan(value) else f"{value:.2f}"
                colour = "white" if not np.isnan(value) and abs(value) > 0.6 else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=size, color=colour)
    words = fmt.interval_words(interval)
    bar = fig.colorbar(image, ax=ax, shrink=0.85)
    bar.set_label(f"Pearson correlation of {words} returns (-1 to +1)")
    ax.set_xlabel("Coin")
    ax.set_ylabel("Coin")
    _titles(
        fig,
        ax,
        f"Correlation of {words} returns: {n} largest coins by market cap",
        f"{window}; {observations} {words} prices from {source}",
    )
    return _save(fig, path)
