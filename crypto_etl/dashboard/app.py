"""The Crypto ETL dashboard: the market, one coin, correlations and the pipeline's health, all read
from the REST API (never from the database).

streamlit run dashboard.py --server.port 8501 --server.address 0.0.0.0
Settings: API_BASE_URL (default http://localhost:8000), API_KEY.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from crypto_etl.dashboard import client

PAGES_DIR = Path(__file__).resolve().parent / "pages"


def pages() -> list[st.Page]:
    """The dashboard's pages, in the order of the navigation."""
    return [
        st.Page(
            PAGES_DIR / "market_overview.py",
            title="Market overview",
            icon=":material/public:",
            default=True,
        ),
        st.Page(
            PAGES_DIR / "coin.py",
            title="Coin",
            icon=":material/currency_bitcoin:",
            url_path="coin",
        ),
        st.Page(
            PAGES_DIR / "correlation.py",
            title="Correlation",
            icon=":material/grid_on:",
            url_path="correlation",
        ),
        st.Page(
            PAGES_DIR / "pipeline_health.py",
            title="Pipeline health",
            icon=":material/monitor_heart:",
            url_path="pipeline_health",
        ),
    ]


def main() -> None:
    """One run of the app script: the navigation, the sidebar, then the selected page."""
    st.set_page_config(page_title="Crypto ETL", page_icon=":material/query_stats:", layout="wide")
    page = st.navigation(pages())
    with st.sidebar:
        if st.button(
            "Refresh data",
            icon=":material/refresh:",
            help="Ask the API again instead of using the cache",
        ):
            client.clear_cache()
            st.rerun()
        settings = client.load_api_settings()
        st.caption(
            f"Data from the API at {settings.base_url}, cached for "
            f"{client.CACHE_TTL_SECONDS // 60} min (the pipeline's cadence)."
        )
    page.run()
