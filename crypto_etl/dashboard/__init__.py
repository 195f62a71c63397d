"""The Streamlit dashboard: the app and its pages, the UI helpers they share, and the client of the
REST API, its only data source (it never reads the database)."""
