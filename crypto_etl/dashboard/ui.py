"""What every dashboard page shares: loading from the API with a clear message on failure, frames
from API rows, coin labels and the plotly look."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from crypto_etl import formatting as fmt
from crypto_etl.dashboard import client

T = TypeVar("T")
NO_DATA = (
    "No market data yet: the database is empty. Run the pipeline once "
    "(`python etl.py run`, or start the `app` service) and press **Refresh data**."
)
UP, DOWN = "#1a9850", "#d73027"


def load(fetch: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The API's answer, or a warning on the page and the page stops (never a traceback)."""
    try:
        return fetch(*args, **kwargs)
    except client.ApiProblem as exc:
        if exc.down:
            st.warning(f"**The API is not available.** {exc}", icon=":material/cloud_off:")
        else:
            st.warning(str(exc), icon=":material/warning:")
        st.stop()


def utc(value: str | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value).tz_convert("UTC")


def frame(rows: list[dict[str, Any]], times: tuple[str, ...] = ()) -> pd.DataFrame:
    """API rows as a frame, the named columns as UTC timestamps."""
    data = pd.DataFrame(rows)
    for column in times:
        if column in data:
            data[column] = pd.to_datetime(data[column], utc=True, format="ISO8601")
    return data


def seconds_since(value: str | None) -> float | None:
    return None if value is None else (datetime.now(UTC) - utc(value)).total_seconds()


def currency(rows: list[dict[str, Any]] | pd.DataFrame, default: str = "usd") -> str:
    if isinstance(rows, pd.DataFrame):
        return str(rows["vs_currency"].iloc[0]) if len(rows) else default
    return str(rows[0]["vs_currency"]) if rows else default


def style(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    """Our plotly look: white, a title, tight margins, legend on top."""
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 16}},
        template="plotly_white",
        height=height,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"},
        hoverlabel={"namelength": -1},
    )
    return fig


def show(fig: go.Figure) -> None:
    st.plotly_chart(fig, width="stretch", config={"displaylogo": False})


def age_text(seconds: float | None) -> str:
    return "–" if seconds is None else f"{fmt.duration(seconds)} ago"
