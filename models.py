"""The database schema, under the file name the design card gives it.

The tables are defined in crypto_etl.storage.schema, inside the package, because the installed
package must carry its schema and migrations (an installed worker migrates without this
repository). This module only re-exports them, so that `models.py` still answers "where is the
schema?" for anyone reading the repository; the product's own code never imports it.
"""

from crypto_etl.storage.schema import (
    Base,
    Coin,
    EtlRun,
    HistoryFetch,
    MarketSnapshot,
    Ohlc,
    PriceHistory,
    RejectedRow,
    UTCDateTime,
)

__all__ = [
    "Base",
    "Coin",
    "EtlRun",
    "HistoryFetch",
    "MarketSnapshot",
    "Ohlc",
    "PriceHistory",
    "RejectedRow",
    "UTCDateTime",
]
