"""The dashboard's pages: Streamlit scripts that `st.navigation` runs (see
crypto_etl.dashboard.app); they are never imported."""
