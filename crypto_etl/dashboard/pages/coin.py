"""One coin: key figures, price history with moving averages, candlesticks and volume."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from crypto_etl import formatting as fmt
from crypto_etl.dashboard import client as api
from crypto_etl.dashboard.ui import DOWN, NO_DATA, UP, frame, load, show, style, utc

# Window -> (length, history interval, candle interval): a few hundred points at most.
WINDOWS = {
    "24h": (pd.Timedelta(days=1), "raw", "1h"),
    "7d": (pd.Timedelta(days=7), "1h", "4h"),
    "30d": (pd.Timedelta(days=30), "1h", "4h"),
    "90d": (pd.Timedelta(days=90), "1d", "1d"),
    "1y": (pd.Timedelta(days=365), "1d", "4d"),
}
CANDLE_SOURCES = {
    "ohlc": "CoinGecko's own candles",
    "history": "built from the stored price history",
    "snapshot_24h": "one 24h candle per snapshot",
}


def flagged_points(coin_id: str, points: pd.DataFrame, period: dict[str, str]) -> pd.DataFrame:
    """The coin's flagged values in the window, placed on the price line: a flagged price at its
    own value, a flagged market cap or volume at the price of that moment."""
    body = load(api.anomalies, coin_id, since=period["start"], until=period["end"])
    flags = frame(body["data"], times=("observed_at",))
    if flags.empty:
        return flags
    flags = flags.sort_values("observed_at")
    line = points[["ts", "price"]].dropna().sort_values("ts")
    placed = pd.merge_asof(flags, line, left_on="observed_at", right_on="ts", direction="nearest")
    is_price = placed["rule"].eq("price_move")
    placed["y"] = placed["value"].where(is_price, placed["price"])
    placed["note"] = [
        f"{row.rule}: {fmt.compact(row.value)} where {fmt.compact(row.expected)} was expected "
        f"(score {row.score:.3g}, run {row.run_id})"
        for row in placed.itertuples()
    ]
    return placed


st.title("Coin")
listing = load(api.cryptos, limit=250)
if not listing["data"]:
    st.info(NO_DATA, icon=":material/info:")
    st.stop()

labels = {row["coin_id"]: fmt.coin_label(row) for row in listing["data"]}
ids = list(labels)
wanted = st.query_params.get("coin", "bitcoin")
pick, span = st.columns([3, 2])
coin_id = pick.selectbox(
    "Coin",
    ids,
    index=ids.index(wanted) if wanted in ids else 0,
    format_func=labels.get,
)
st.query_params["coin"] = coin_id
window = span.segmented_control("Window", list(WINDOWS), default="30d") or "30d"

detail = load(api.coin, coin_id)
vs = detail["vs_currency"]
cur = fmt.currency_label(vs)

figures = st.columns(6)
figures[0].metric(
    f"Price ({cur})",
    fmt.price(detail["current_price"], vs),
    delta=fmt.percent(detail["price_change_percentage_24h"]),
    help="Change over 24 hours",
)
figures[1].metric(
    f"Market cap ({cur})",
    fmt.money(detail["market_cap"], vs),
    help=f"Rank {detail['market_cap_rank']} by market cap",
)
figures[2].metric(f"24h volume ({cur})", fmt.money(detail["total_volume"], vs))
figures[3].metric(
    f"All-time high ({cur})",
    fmt.price(detail["ath"], vs),
    delta=fmt.percent(detail["ath_change_percentage"]),
    delta_color="off",
    help=f"Reached {detail['ath_date'] or 'at an unknown date'}; delta: the price now against it",
)
figures[4].metric(
    f"All-time low ({cur})",
    fmt.price(detail["atl"], vs),
    delta=fmt.percent(detail["atl_change_percentage"]),
    delta_color="off",
    help=f"Reached {detail['atl_date'] or 'at an unknown date'}; delta: the price now against it",
)
supply = fmt.compact(detail["circulating_supply"])
cap = detail["max_supply"]
figures[5].metric(
    "Circulating supply",
    supply,
    help=f"Total supply {fmt.compact(detail['total_supply'])}; "
    f"maximum supply {'unlimited' if cap is None else fmt.compact(cap)}",
)

length, history_interval, candle_interval = WINDOWS[window]
end = utc(detail["last_updated"])
start = end - length
period = {"start": start.isoformat(), "end": end.isoformat()}
st.caption(
    f"{labels[coin_id]}, {window} up to its newest update "
    f"({end:%Y-%m-%d %H:%M} UTC); prices in {cur}."
)

history = load(api.history, coin_id, interval=history_interval, **period)
points = frame(history["data"], times=("ts",))
if len(points) < 2:
    st.info(
        f"No price history for {labels[coin_id]} in this window yet: the pipeline adds a point "
        "every run, and the history backfill adds older prices. Try a longer window.",
        icon=":material/info:",
    )
else:
    # One ma_<N> column per moving-average window the API computed.
    windows = sorted(int(c[3:]) for c in points.columns if c.startswith("ma_") and c[3:].isdigit())
    averages = pd.DataFrame({str(n): points[f"ma_{n}"] for n in windows}, index=points.index)
    price = go.Figure()
    price.add_trace(
        go.Scatter(x=points["ts"], y=points["price"], name="Price", line={"color": "#3b75af"})
    )
    for column, colour in zip(averages.columns, ("#f28e2b", "#8c564b"), strict=False):
        price.add_trace(
            go.Scatter(
                x=points["ts"],
                y=averages[column],
                name=f"{column}-point moving average",
                line={"color": colour, "width": 1.5, "dash": "dot"},
            )
        )
    flagged = flagged_points(coin_id, points, period)
    if not flagged.empty:
        price.add_trace(
            go.Scatter(
                x=flagged["observed_at"],
                y=flagged["y"],
                mode="markers",
                name="Flagged value",
                marker={"symbol": "x-thin-open", "size": 14, "color": DOWN, "line": {"width": 3}},
                text=flagged["note"],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    price.update_xaxes(
        rangeselector={
            "buttons": [
                {"count": 1, "label": "1d", "step": "day", "stepmode": "backward"},
                {"count": 7, "label": "7d", "step": "day", "stepmode": "backward"},
                {"count": 1, "label": "1m", "step": "month", "stepmode": "backward"},
                {"step": "all", "label": "all"},
            ]
        },
        title_text="Time (UTC)",
    )
    price.update_yaxes(title_text=f"Price ({cur})")
    show(style(price, f"{labels[coin_id]} price", height=460))

candles_body = load(api.ohlc, coin_id, interval=candle_interval, **period)
candles = frame(candles_body["data"], times=("ts",))
if candles.empty:
    st.info(f"No candles for {labels[coin_id]} in this window yet.", icon=":material/info:")
else:
    chart = go.Figure(
        go.Candlestick(
            x=candles["ts"],
            open=candles["open"],
            high=candles["high"],
            low=candles["low"],
            close=candles["close"],
            name=f"{candles_body['interval']} candles",
            increasing_line_color=UP,
            decreasing_line_color=DOWN,
        )
    )
    chart.update_xaxes(rangeslider_visible=False, title_text="Candle close time (UTC)")
    chart.update_yaxes(title_text=f"Price ({cur})")
    source = CANDLE_SOURCES.get(candles_body["source"], candles_body["source"])
    show(
        style(
            chart,
            f"{labels[coin_id]} {candles_body['interval']} candles ({source})",
            height=460,
        )
    )

if len(points) >= 2 and points["total_volume"].notna().any():
    volume = go.Figure(
        go.Scatter(
            x=points["ts"],
            y=points["total_volume"],
            mode="lines",
            fill="tozeroy",
            line={"color": "#7f7f7f"},
            name="Volume",
        )
    )
    volume.update_xaxes(title_text="Time (UTC)")
    volume.update_yaxes(title_text=f"24h trading volume ({cur})")
    show(style(volume, f"{labels[coin_id]} trading volume (rolling 24h)", height=320))
