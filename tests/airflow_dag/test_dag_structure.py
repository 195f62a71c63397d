"""The DAG file imports cleanly in Airflow and is what the README says it is: its tasks, their
order, the mapped backfill, the schedule, and the retries and timeouts Airflow applies."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from conftest import ROOT

pytestmark = [pytest.mark.airflow, pytest.mark.usefixtures("airflow_home")]
DAGS = ROOT / "deploy" / "airflow" / "dags"

DAG_ID = "crypto_etl"
UPSTREAM = {
    "snapshot": set(),
    "refresh_ohlc": {"snapshot"},
    "list_backfill_coins": {"refresh_ohlc"},
    "backfill_coin": {"list_backfill_coins"},
    "detect_gaps": {"backfill_coin"},
    "evaluate_alerts": {"detect_gaps"},
}


@pytest.fixture(scope="module")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags[DAG_ID]


def test_the_dag_folder_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {DAG_ID}


def test_tasks_and_their_order_are_the_documented_ones(dag):
    assert {task.task_id: task.upstream_task_ids for task in dag.tasks} == UPSTREAM


def test_the_backfill_is_one_mapped_task_per_coin_the_listing_returns(dag):
    backfill = dag.get_task("backfill_coin")
    assert backfill.is_mapped
    (expanded,) = backfill.op_kwargs_expand_input.value.items()
    assert expanded[0] == "coin_id"
    assert expanded[1].operator.task_id == "list_backfill_coins"  # the coins come from that task
    assert not any(dag.get_task(t).is_mapped for t in UPSTREAM if t != "backfill_coin")


def test_it_runs_every_five_minutes_one_run_at_a_time_without_catching_up(dag):
    assert dag.schedule == timedelta(minutes=5)
    assert dag.catchup is False
    assert dag.max_active_runs == 1


def test_retries_and_timeouts_are_airflows(dag):
    for task in dag.tasks:
        assert task.retries == 3, task.task_id
        assert task.retry_delay == timedelta(minutes=1), task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.max_retry_delay == timedelta(minutes=10), task.task_id
        expected = timedelta(minutes=30 if task.task_id == "backfill_coin" else 10)
        assert task.execution_timeout == expected, task.task_id


def test_gaps_and_alerts_run_however_the_backfill_ended(dag):
    rules = {task.task_id: str(task.trigger_rule.value) for task in dag.tasks}
    assert rules == {task: "all_success" for task in UPSTREAM} | {
        "detect_gaps": "all_done",
        "evaluate_alerts": "all_done",
    }


def test_the_tasks_call_the_package_and_never_shell_out(dag):
    source = (DAGS / "crypto_etl_dag.py").read_text()
    assert "subprocess" not in source and "BashOperator" not in source
    assert "etl.py" not in source
    assert {type(task).__name__ for task in dag.tasks} <= {
        "_PythonDecoratedOperator",
        "DecoratedMappedOperator",
    }


def test_parsing_the_dag_file_imports_none_of_the_pipeline(airflow_home):
    # Airflow parses DAG files every few seconds: the package is imported when a task runs.
    script = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "print(sorted(m for m in ('crypto_etl', 'pandas') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(DAGS / "crypto_etl_dag.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
