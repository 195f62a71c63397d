"""Shaping: CoinGecko's market rows to the typed snapshot table and its CSV form, and the data
quality rules that decide which rows are stored and which are quarantined."""
