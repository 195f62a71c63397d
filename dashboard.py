"""The dashboard's entry point for Streamlit: `streamlit run dashboard.py --server.port 8501`.

Streamlit runs this script on every interaction; the app and its pages are crypto_etl.dashboard.
"""

from crypto_etl.dashboard.app import main

main()
