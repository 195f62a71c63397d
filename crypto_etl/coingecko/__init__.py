"""The data source: CoinGecko's API v3 (the HTTP client) and the parsing of its answers."""
