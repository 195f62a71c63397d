"""Analytics: pure pandas functions over market data, shared by the API, the reports and the
dashboard. They take and return DataFrames with UTC timestamps and never touch a database or the
network."""
