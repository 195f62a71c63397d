"""Arguments are checked before any work: every command given a bad argument exits 2 with exactly
one line on stderr, without touching the network or the database (both point at closed ports
here: had the command reached either, it would fail differently, with exit 1)."""

from __future__ import annotations

import pytest
from etl_child import child_runner
from helpers import etl_env

CLOSED_DATABASE = "postgresql://nobody@127.0.0.1:1/none"
CLOSED_COINGECKO = "http://127.0.0.1:1"

BAD = [
    (("extract", "--top_n=0"), "--top_n must be a whole number >= 1, got 0"),
    (("extract", "--save_path="), "--save_path needs a file path"),
    (("transform", "--snapshot_at=yesterday"), "--snapshot_at must be an ISO 8601 time"),
    (("transform", "--vs_currency=us$"), "--vs_currency must be a currency code"),
    (("validate", "--csv_path"), "--csv_path needs a file path"),
    (("load", "--csv_path="), "--csv_path needs a file path"),
    (("run", "--top_n=0"), "--top_n must be a whole number >= 1"),
    (("run", "--vs_currency=u s d"), "--vs_currency must be a currency code"),
    (("run", "--topn=5"), "run: unknown argument --topn (it takes: --top_n, --vs_currency)"),
    (("run", "50", "usd", "more"), "run: 3 value(s) given without a --name"),
    (("schedule", "--top_n=0", "--max_runs=3"), "--top_n must be a whole number >= 1, got 0"),
    (("schedule", "--top_n=0"), "--top_n must be a whole number >= 1, got 0"),
    (("schedule", "--interval_seconds=0"), "--interval_seconds must be > 0"),
    (("schedule", "--max_runs=0"), "--max_runs must be a whole number >= 1"),
    (("schedule", "--vs_currency=?"), "--vs_currency must be a currency code"),
    (("backfill", "--days=0"), "--days must be a whole number >= 1"),
    (("backfill", "--coins"), "--coins needs coin ids"),
    (("backfill", "--coins=bit/coin"), "is not a CoinGecko coin id"),
    (("backfill", "--top_n=-1"), "--top_n must be a whole number >= 1"),
    (("gaps", "--interval_seconds=-1"), "--interval_seconds must be a whole number >= 1"),
    (("gaps", "--days=0"), "--days must be a whole number >= 1"),
    (("init_db", "--force"), "init_db: unknown argument --force (it takes: none)"),
    (("visualize", "--output_dir="), "--output_dir needs a file path"),
    (("candlestick",), "--coin_name needs a coin id, symbol or name"),
    (("correlation", "--top_n=1"), "--top_n must be at least 2"),
    (("correlation", "--days=0"), "--days must be a whole number >= 1"),
    (("nosuch",), "unknown command 'nosuch'"),
]


@pytest.fixture(scope="module")
def cli(etl_children, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("args")
    env = etl_env(CLOSED_DATABASE, CLOSED_COINGECKO, cwd / "data")
    return child_runner(etl_children, cwd, env, None)


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_argument_is_one_line_and_exit_2_before_any_work(cli, args, message):
    proc = cli(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert proc.stdout == ""


def test_help_wins_over_the_other_arguments(cli):
    """`run --top_n=3 --help` shows run's help; it does not run first."""
    proc = cli("run", "--top_n=3", "--help", check=False)
    assert proc.returncode == 0
    assert "Example: python etl.py run" in proc.stdout + proc.stderr
    assert "database" not in proc.stderr
