"""`python etl.py partition` and `python etl.py retention` as a user runs them."""

from __future__ import annotations

from alembic import command
from helpers import etl_env, etl_runner
from sqlalchemy import text
from test_etl_cli import assert_one_line_error
from test_storage_partitions import fill_months, new_pg_url  # noqa: F401  (fixture)

from crypto_etl.storage.engine import alembic_config, make_engine
from crypto_etl.storage.partitions import is_partitioned

NO_SOURCE = "http://127.0.0.1:9"  # these commands never call CoinGecko


def cli(tmp_path, url: str):
    return etl_runner(tmp_path, etl_env(url, NO_SOURCE, tmp_path / "data"))


def test_partition_on_sqlite_is_one_line_error(tmp_path):
    run = cli(tmp_path, f"sqlite:///{tmp_path / 'crypto.db'}")
    assert_one_line_error(run("partition", check=False), "need PostgreSQL")
    assert_one_line_error(run("partition", "--list", check=False), "need PostgreSQL")


def test_partition_converts_a_populated_database_once_and_lists_the_months(tmp_path, request):
    url = request.getfixturevalue("new_pg_url")()
    engine = make_engine(url)
    try:
        config = alembic_config(engine)
        command.upgrade(config, "0008")
        fill_months(engine)
        command.upgrade(config, "head")
        run = cli(tmp_path, url)
        listed = run("partition", "--list").stdout
        assert "market_snapshots: a plain table" in listed

        done = run("partition", "--batch_rows=1000").stdout

        assert "market_snapshots: 3,000 rows moved into" in done
        assert "price_history: 5,000 rows moved into" in done
        assert "8,000 rows moved" in done
        assert is_partitioned(engine, "price_history")
        with engine.connect() as conn:
            journal = conn.execute(
                text("SELECT command, status, rows_loaded FROM etl_runs ORDER BY id")
            ).all()
        assert [tuple(r) for r in journal] == [("partition", "success", 8000)]
        again = run("partition").stdout
        assert "market_snapshots: already partitioned, nothing to do" in again
        listed = run("partition", "--list", "--exact").stdout
        assert "price_history_p202601" in listed and "744 rows" in listed
        assert_one_line_error(run("partition", "--batch_rows=0", check=False), "--batch_rows")
    finally:
        engine.dispose()


def test_retention_needs_a_window_and_a_known_mode(tmp_path):
    run = cli(tmp_path, f"sqlite:///{tmp_path / 'crypto.db'}")
    assert_one_line_error(run("retention", check=False), "RETENTION_DAYS")
    assert_one_line_error(run("retention", "--days=30", "--mode=weekly", check=False), "--mode")
    done = run("retention", "--days=30", "--dry_run").stdout
    assert "dry run" in done and "market_snapshots: would remove 0 rows" in done
    done = run("retention", RETENTION_DAYS="30", RETENTION_MODE="hourly").stdout
    assert "(hourly, 30 days" in done


def test_rollup_status_and_rebuild_on_sqlite(tmp_path, sqlite_url):
    run = cli(tmp_path, sqlite_url)
    assert "history_hourly: 0 rows, complete" in run("rollup").stdout
    assert "0 hours of 0 coins rebuilt" in run("rollup", "--rebuild").stdout
    assert_one_line_error(run("rollup", "--rebuild=yes", check=False), "--rebuild takes no value")


def test_rollup_on_an_unreachable_database_is_one_line(tmp_path):
    run = cli(tmp_path, "postgresql://nobody@127.0.0.1:1/none")
    for args in (("rollup",), ("rollup", "--rebuild")):
        assert_one_line_error(run(*args, check=False), "cannot reach the database", "127.0.0.1:1")
