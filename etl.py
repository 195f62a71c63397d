"""Crypto ETL command line: CoinGecko market data into a database, with its full history.

    python etl.py --help
    python etl.py run

The design card's entry point, kept at the repository root so that `python etl.py ...` works as
documented; the commands themselves are crypto_etl.cli.
"""

from crypto_etl.cli import main

if __name__ == "__main__":
    main()
