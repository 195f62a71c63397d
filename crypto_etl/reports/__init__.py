"""Reports: the PNG charts of the command line (`visualize`, `candlestick`, `correlation`): what
they read from the snapshot CSV and the database, and their matplotlib renderers."""
