"""The Crypto ETL dashboard: the market, one coin, correlations and the pipeline's health, all read
from the REST API (never from the database).

streamlit run dashboard.py --server.port 8501 --server.address 0.0.0.0
Settings: API_BASE_URL (default http://localhost:8000), API_KEY.
"""

from __future__ import annotations

import streamlit as st

import dashboard_api

st.set_page_config(page_title="Crypto ETL", page_icon=":material/query_stats:", layout="wide")

PAGES = [
    st.Page(
        "dashboard_pages/market_overview.py",
        title="Market overview",
        icon=":material/public:",
        default=True,
    ),
    st.Page(
        "dashboard_pages/coin.py", title="Coin", icon=":material/currency_bitcoin:", url_path="coin"
    ),
    st.Page(
        "dashboard_pages/correlation.py",
        title="Correlation",
        icon=":material/grid_on:",
        url_path="correlation",
    ),
    st.Page(
        "dashboard_pages/pipeline_health.py",
        title="Pipeline health",
        icon=":material/monitor_heart:",
        url_path="pipeline_health",
    ),
]

page = st.navigation(PAGES)

with st.sidebar:
    if st.button(
        "Refresh data",
        icon=":material/refresh:",
        help="Ask the API again instead of using the cache",
    ):
        dashboard_api.clear_cache()
        st.rerun()
    settings = dashboard_api.load_api_settings()
    st.caption(
        f"Data from the API at {settings.base_url}, cached for "
        f"{dashboard_api.CACHE_TTL_SECONDS // 60} min (the pipeline's cadence)."
    )

page.run()
