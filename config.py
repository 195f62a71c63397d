"""The settings, under the file name the design card gives them.

Every setting is read and checked in crypto_etl.settings, inside the package, because the installed
package must carry them (an installed worker runs without this repository). This module only
re-exports them, so that `config.py` still answers "which settings are there?" for anyone reading
the repository; the product's own code never imports it. `.env.example` documents each variable.
"""

from crypto_etl.settings import Settings, database_url_from, load_settings

__all__ = ["Settings", "database_url_from", "load_settings"]
