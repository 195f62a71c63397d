"""Run `etl.py` or the `airflow` command line with the product's clock pinned, outside the
product (as tests/etl_child.py does for its children), so that two runs against one fake CoinGecko
ask for the same history windows and get the same rows:

    python tests/airflow_dag/pinned_clock.py 2025-10-28T08:10:00+00:00 etl run
    python tests/airflow_dag/pinned_clock.py 2025-10-28T08:10:00+00:00 airflow dags test crypto_etl

`airflow dags test` runs every task in this process, so the pin holds for the whole DAG.
"""

from __future__ import annotations

import runpy
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def main() -> None:
    now = datetime.fromisoformat(sys.argv[1])
    if now.tzinfo is None:
        raise SystemExit("the pinned time needs a UTC offset")
    import crypto_etl.clock

    # Before any other product module is imported: they take `utcnow` from crypto_etl.clock.
    crypto_etl.clock.utcnow = lambda: now
    program, args = sys.argv[2], sys.argv[3:]
    if program == "etl":
        sys.argv = ["etl.py", *args]
        runpy.run_path(str(ROOT / "etl.py"), run_name="__main__")
    elif program == "airflow":
        from airflow.__main__ import main as airflow_main

        sys.argv = ["airflow", *args]
        sys.exit(airflow_main())
    else:
        raise SystemExit(f"unknown program {program!r}: etl or airflow")


if __name__ == "__main__":
    main()
