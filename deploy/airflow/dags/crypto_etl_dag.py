"""The crypto ETL on Apache Airflow 3 (README: Apache Airflow).

Every five minutes: a snapshot run, then the candles of the top coins kept current, then the
history backfill as one mapped task per coin that has history due (so the workers share it and a
coin that fails is retried alone), then gap detection and the alert evaluation, which run however
the backfill ended. The steps are the package's own functions (crypto_etl.orchestration); this
file only names the run and finds the settings. Retries and timeouts are Airflow's
(`default_args` and the task arguments below).

Settings: the database from the Airflow connection `crypto_etl_db`, the CoinGecko key from the
Airflow variable `coingecko_api_key`; without them, and for everything else, our environment
variables (DATABASE_URL, COINGECKO_API_KEY, TOP_N, ...; README: Configuration) on the worker. The
CoinGecko calls per minute are one budget shared through the database by every task.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import ModuleType

from airflow.sdk import BaseHook, TriggerRule, Variable, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowNotFoundException

DAG_ID = "crypto_etl"
DATABASE_CONN_ID = "crypto_etl_db"
COINGECKO_KEY_VARIABLE = "coingecko_api_key"

DEFAULT_ARGS = {
    "owner": "crypto-etl",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(minutes=10),
}
BACKFILL_TIMEOUT = timedelta(minutes=30)  # one coin: 90 days of history at the plan's pace


def _steps() -> ModuleType:
    """The package's task bodies, imported when a task runs: parsing this file (which Airflow does
    every few seconds) stays free of pandas and the pipeline."""
    from crypto_etl import orchestration

    return orchestration


def _settings():
    """This task's settings (crypto_etl.settings.Settings): the environment, the Airflow connection
    and variable over it, and this task run's name for etl_runs."""
    from crypto_etl.settings import load_settings

    orchestration = _steps()
    ti = get_current_context()["ti"]
    run = orchestration.orchestrator_run_id(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
    try:
        database_uri = BaseHook.get_connection(DATABASE_CONN_ID).get_uri()
    except AirflowNotFoundException:
        database_uri = None  # DATABASE_URL (or POSTGRES_*) on the worker
    api_key = Variable.get(COINGECKO_KEY_VARIABLE, default=None)
    return orchestration.task_settings(load_settings(dotenv=False), run, database_uri, api_key)


@dag(
    dag_id=DAG_ID,
    schedule=timedelta(minutes=5),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["crypto-etl"],
    doc_md=__doc__,
)
def crypto_etl():
    @task
    def snapshot() -> dict:
        return _steps().snapshot_task(_settings())

    @task
    def refresh_ohlc() -> dict:
        return _steps().ohlc_task(_settings())

    @task
    def list_backfill_coins() -> list[str]:
        return _steps().coins_to_backfill(_settings())

    @task(execution_timeout=BACKFILL_TIMEOUT)
    def backfill_coin(coin_id: str) -> dict:
        return _steps().backfill_coin_task(_settings(), coin_id)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def detect_gaps() -> dict:
        return _steps().gaps_task(_settings())

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def evaluate_alerts() -> dict:
        return _steps().alerts_task(_settings())

    coins = list_backfill_coins()
    filled = backfill_coin.expand(coin_id=coins)
    snapshot() >> refresh_ohlc() >> coins
    filled >> detect_gaps() >> evaluate_alerts()


crypto_etl()
