"""Correlation: how the returns of the largest coins move together over a chosen window."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from crypto_etl import formatting as fmt
from crypto_etl.dashboard import client as api
from crypto_etl.dashboard.ui import NO_DATA, load, show, style, utc

WINDOWS_DAYS = {"7 days": 7, "30 days": 30, "90 days": 90, "1 year": 365}
# "Auto" is the API's default and the command line's rule (crypto_etl.analytics.correlation): the
# coarsest interval that gives enough prices in the window.
INTERVALS = {"Auto": "auto", "Daily returns": "1d", "Hourly returns": "1h"}

st.title("Correlation")
st.caption(
    "Pearson correlation of the price returns of the largest coins: +1 they move together, "
    "0 unrelated, -1 opposite."
)
controls = st.columns(3)
top_n = controls[0].slider("Coins (largest by market cap)", 2, 25, 10)
window = controls[1].selectbox("Window", list(WINDOWS_DAYS), index=1)
returns = controls[2].radio("Returns", list(INTERVALS), horizontal=True)

listing = load(api.cryptos, limit=250)
if not listing["data"]:
    st.info(NO_DATA, icon=":material/info:")
    st.stop()
symbols = {row["coin_id"]: str(row["symbol"]).upper() for row in listing["data"]}
body = load(api.correlation, top_n=top_n, days=WINDOWS_DAYS[window], interval=INTERVALS[returns])
matrix = np.array(
    [[np.nan if v is None else v for v in row] for row in body["matrix"]], dtype=float
)
known = matrix[~np.eye(len(matrix), dtype=bool)] if len(matrix) else matrix
words = f"{fmt.interval_words(body['interval'])} returns"
if len(body["coins"]) < 2 or np.isnan(known).all():
    st.info(
        f"Not enough price history for a correlation of {words} over {window}: each coin needs "
        "at least 4 prices and each pair at least 3 common returns. Try a longer window or "
        "hourly returns, or let the pipeline collect more snapshots.",
        icon=":material/info:",
    )
    st.stop()

labels = [symbols.get(coin, coin) for coin in body["coins"]]
text = [["n/a" if np.isnan(v) else f"{v:.2f}" for v in row] for row in matrix]
heatmap = go.Figure(
    go.Heatmap(
        z=matrix,
        x=labels,
        y=labels,
        zmin=-1,
        zmax=1,
        colorscale="RdBu",
        reversescale=True,
        text=text,
        texttemplate="%{text}" if len(labels) <= 15 else None,
        hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>",
        colorbar={"title": {"text": "Correlation"}},
    )
)
heatmap.update_yaxes(autorange="reversed", scaleanchor="x")
heatmap.update_xaxes(tickangle=-45)
start, end = utc(body["start"]), utc(body["end"])
show(
    style(
        heatmap,
        f"Correlation of {words}: {len(labels)} largest coins by market cap",
        height=640,
    )
)
st.caption(
    f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, {body['observations']} price points "
    f"per coin at most; {body['vs_currency'].upper()} prices. Coins with fewer than 4 prices in "
    "the window are left out; n/a: fewer than 3 common returns."
)
