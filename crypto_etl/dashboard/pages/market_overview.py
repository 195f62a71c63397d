"""Market overview: key figures, market share, top movers, prices and a searchable table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from crypto_etl import formatting as fmt
from crypto_etl.analytics import market
from crypto_etl.dashboard import client as api
from crypto_etl.dashboard.ui import (
    DOWN,
    NO_DATA,
    UP,
    frame,
    load,
    seconds_since,
    show,
    style,
)

TOP_N = 10
MOVERS = 5
PRICE_BARS = 20

st.title("Market overview")
summary = load(api.market_summary, top_n=TOP_N)
listing = load(api.cryptos, limit=250)
if summary["coins"] == 0 or not listing["data"]:
    st.info(NO_DATA, icon=":material/info:")
    st.stop()

coins = frame(listing["data"], times=("last_updated",))
vs = summary["vs_currency"]
cur = fmt.currency_label(vs)
shares = {row["coin_id"]: row for row in summary["dominance"]}
bitcoin = shares.get("bitcoin")
age = seconds_since(summary["as_of"])

figures = st.columns(4)
figures[0].metric(f"Total market cap ({cur})", fmt.money(summary["total_market_cap"], vs))
figures[1].metric(f"24h volume ({cur})", fmt.money(summary["total_volume"], vs))
figures[2].metric(
    "Bitcoin dominance",
    "–" if bitcoin is None else f"{bitcoin['share'] * 100:.1f} %",
    help="Bitcoin's share of the total market cap of the tracked coins",
)
figures[3].metric(
    "Age of the data",
    fmt.duration(age),
    help=f"Newest CoinGecko update: {summary['as_of']}",
)
st.caption(
    f"Totals over the {summary['coins']} coins the pipeline tracks (not the whole crypto market); "
    f"prices in {cur}."
)

left, right = st.columns(2)
with left:
    names = {row["coin_id"]: fmt.coin_label(row) for row in listing["data"]}
    others = summary["coins"] - (len(summary["dominance"]) - (market.OTHERS in shares))
    labels = [
        f"Others ({others} coins)"
        if row["coin_id"] == market.OTHERS
        else names.get(row["coin_id"], row["name"] or row["coin_id"])
        for row in summary["dominance"]
    ]
    pie = go.Figure(
        go.Pie(
            labels=labels,
            values=[row["market_cap"] for row in summary["dominance"]],
            hole=0.55,
            sort=False,
            direction="clockwise",
            textinfo="percent",
            textposition="inside",
            insidetextorientation="horizontal",
            hovertemplate=f"%{{label}}<br>%{{value:,.0f}} {cur}<br>%{{percent}}<extra></extra>",
        )
    )
    pie.add_annotation(
        text=f"Total<br><b>{fmt.money(summary['total_market_cap'], vs)}</b>",
        showarrow=False,
        font={"size": 16},
    )
    style(pie, f"Market share: top {TOP_N} coins by market cap", height=440)
    pie.update_layout(legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 0.5})
    show(pie)

with right:
    gainers, losers = market.top_movers(coins, MOVERS)
    movers = pd.concat([gainers, losers]).sort_values("price_change_percentage_24h", kind="stable")
    change = movers["price_change_percentage_24h"].to_numpy(float)
    bars = go.Figure(
        go.Bar(
            x=change,
            y=[fmt.coin_label(row) for _, row in movers.iterrows()],
            orientation="h",
            marker_color=np.where(change >= 0, UP, DOWN),
            text=[fmt.percent(c) for c in change],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:+.2f} %<extra></extra>",
        )
    )
    low, high = min(change.min(initial=0), 0), max(change.max(initial=0), 0)
    pad = (high - low or 1) * 0.22
    bars.update_xaxes(
        title_text="Price change over 24 hours (%)", zeroline=True, range=[low - pad, high + pad]
    )
    show(style(bars, f"Top {MOVERS} gainers and losers (24h)", height=440))

top = coins.head(PRICE_BARS)
prices = go.Figure(
    go.Bar(
        x=[fmt.coin_label(row) for _, row in top.iterrows()],
        y=top["current_price"],
        text=[fmt.price(p, vs) for p in top["current_price"]],
        textposition="outside",
        cliponaxis=False,
        marker_color="#3b75af",
        hovertemplate=f"%{{x}}<br>%{{y:,.6g}} {cur}<extra></extra>",
    )
)
prices.update_yaxes(type="log", title_text=f"Price ({cur}, log scale)")
prices.update_xaxes(tickangle=-35)
show(style(prices, f"Price of the top {len(top)} coins by market cap", height=460))

st.subheader("All coins")
query = st.text_input("Search by name, symbol or id", placeholder="e.g. bitcoin, eth, sol")
table = coins
if query.strip():
    needle = query.strip().lower()
    hit = (
        coins["name"].str.lower().str.contains(needle, regex=False)
        | coins["symbol"].str.lower().str.contains(needle, regex=False)
        | coins["coin_id"].str.lower().str.contains(needle, regex=False)
    )
    table = coins[hit]
if table.empty:
    st.info(f"No coin matches “{query}”.")
else:
    columns = {
        "market_cap_rank": st.column_config.NumberColumn("Rank", format="%d"),
        "name": st.column_config.TextColumn("Name"),
        "symbol": st.column_config.TextColumn("Symbol"),
        "current_price": st.column_config.NumberColumn(f"Price ({cur})", format="%.6g"),
        "price_change_percentage_24h": st.column_config.NumberColumn(
            "24h change (%)", format="%+.2f"
        ),
        "market_cap": st.column_config.NumberColumn(f"Market cap ({cur})", format="compact"),
        "total_volume": st.column_config.NumberColumn(f"24h volume ({cur})", format="compact"),
        "circulating_supply": st.column_config.NumberColumn("Circulating supply", format="compact"),
        "last_updated": st.column_config.DatetimeColumn("Updated (UTC)", format="YYYY-MM-DD HH:mm"),
    }
    st.dataframe(
        table[list(columns)],
        column_config=columns,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(table), 560),
    )
    st.caption(f"{len(table)} of {len(coins)} coins; click a column header to sort.")
