"""Small builders shared by the tests: market rows from the real fixtures, shifted in time, and
`python etl.py ...` run as a user runs it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
ETL = str(Path(__file__).resolve().parent.parent / "etl.py")
TOP50_FETCHED_AT = datetime(2025, 9, 9, 15, 5, tzinfo=UTC)
ROWS250_FETCHED_AT = datetime(2023, 7, 28, 20, 10, tzinfo=UTC)


def market_rows(name: str = "coins_markets_usd_top50.json") -> list[dict]:
    return json.loads((DATA / name).read_text())


def shifted(rows: list[dict], minutes: int, price_factor: float = 1.0) -> list[dict]:
    """A later snapshot of the same coins: last_updated moved on, prices scaled."""
    out = copy.deepcopy(rows)
    for row in out:
        when = datetime.fromisoformat(row["last_updated"].replace("Z", "+00:00"))
        row["last_updated"] = (when + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        if isinstance(row.get("current_price"), int | float):
            row["current_price"] = row["current_price"] * price_factor
    return out


def etl_env(db_url: str, coingecko_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    """This process's environment without CoinGecko, PostgreSQL, pipeline, run lease, alert or
    fault settings, then the database, the fake CoinGecko (instant pacing), the data folder and
    `settings`."""
    dropped = ("COINGECKO_", "POSTGRES_", "CRYPTO_ETL_", "TOP_N", "OHLC_TOP_N", "RUN_", "ALERT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(
        PAGER="cat",
        DATABASE_URL=db_url,
        COINGECKO_BASE_URL=coingecko_url,
        COINGECKO_CALLS_PER_MINUTE="1000000",
        DATA_DIR=str(data_dir),
        LOG_LEVEL="INFO",
    )
    env.update(settings)
    return env


def etl_runner(cwd: Path, env: dict[str, str]):
    """A function running `python etl.py *args` in `cwd` with `env` (plus per-call settings);
    a non-zero exit fails the test unless check=False."""

    def run(*args: str, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, ETL, *args],
            cwd=cwd,
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    run.env = env
    run.cwd = cwd
    return run


def query(url: str, sql: str) -> list[tuple]:
    """Run one statement on a fresh engine; the rows it returns, if any."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def scalar(url: str, sql: str):
    return query(url, sql)[0][0]


def head_revision() -> str:
    """The newest migration's revision id, read from the package's migrations."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from crypto_etl.storage.engine import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


@contextmanager
def fake_with_history(coins: dict[str, float]) -> Iterator:
    """A fake CoinGecko serving the top-50 markets as of just before history_data.NOW (so the top
    coins count as current) and the history of `coins` (id -> value scale) up to NOW."""
    from fake_coingecko import FakeCoinGecko
    from history_data import NOW, serve_history

    minutes = int((NOW - TOP50_FETCHED_AT).total_seconds() // 60) - 5
    with FakeCoinGecko(shifted(market_rows(), minutes)) as server:
        serve_history(server, coins)
        yield server
