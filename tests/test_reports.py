"""The chart commands of etl.py as a user runs them: on the snapshot CSV made from the real top-50
/coins/markets response, on a 10,000-row CSV of 200 snapshots, and on a seeded database (SQLite
and PostgreSQL). Each PNG must exist, decode and have its chart's pixel size."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import TOP50_FETCHED_AT, market_rows
from market_seed import seed_market
from PIL import Image

from crypto_etl.cli import CryptoETLPipeline
from crypto_etl.reports import charts
from crypto_etl.shaping.snapshot_table import transform_markets, write_csv

ROOT = Path(__file__).resolve().parent.parent
ETL = str(ROOT / "etl.py")


def pixel_size(kind: str) -> tuple[int, int]:
    """(width, height) in pixels of a chart of this kind: its size in inches times the DPI."""
    width, height = charts.FIGURE_INCHES[kind]
    return round(width * charts.DPI), round(height * charts.DPI)


WIDE = pixel_size("wide")
SQUARE = pixel_size("square")
CHART_COMMANDS = ("visualize", "candlestick", "correlation")


@pytest.fixture(scope="module")
def top50_csv(tmp_path_factory) -> Path:
    """The snapshot CSV that `etl.py transform` makes of the real top-50 response."""
    path = tmp_path_factory.mktemp("csv") / "crypto_top_50.csv"
    write_csv(transform_markets(market_rows(), "usd", TOP50_FETCHED_AT), path)
    return path


@pytest.fixture(scope="module")
def csv_10k(tmp_path_factory) -> Path:
    """200 snapshots of the same 50 coins, five minutes apart: 10,000 rows."""
    one = transform_markets(market_rows(), "usd", TOP50_FETCHED_AT)
    rng = np.random.default_rng(3)
    frames = []
    for k in range(200):
        step = timedelta(minutes=5 * (k - 199))
        factor = 1 + 0.02 * np.sin(k / 9) + rng.normal(0, 0.002, len(one))
        frames.append(
            one.assign(
                last_updated=one["last_updated"] + step,
                snapshot_at=one["snapshot_at"] + step,
                current_price=one["current_price"] * factor,
                market_cap=one["market_cap"] * factor,
            )
        )
    path = tmp_path_factory.mktemp("csv") / "crypto_10k.csv"
    write_csv(pd.concat(frames, ignore_index=True), path)
    return path


@pytest.fixture
def cli(tmp_path):
    """Runs `python etl.py ...` in a fresh folder; without a database unless one is given.
    `cli.many(*commands)` runs several at once (they are independent; it saves test time)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "DATABASE_"))}
    env.update(PAGER="cat", LOG_LEVEL="INFO", DATABASE_URL=f"sqlite:///{tmp_path}/none/crypto.db")

    def start(args, db_url: str | None = None) -> subprocess.Popen:
        extra = {"DATABASE_URL": db_url} if db_url else {}
        return subprocess.Popen(
            [sys.executable, ETL, *args],
            cwd=tmp_path,
            env={**env, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
        stdout, stderr = proc.communicate(timeout=120)
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)

    def run(*args: str, db_url: str | None = None) -> subprocess.CompletedProcess:
        return finish(start(args, db_url))

    def many(*commands, db_url: str | None = None) -> list[subprocess.CompletedProcess]:
        return [finish(p) for p in [start(args, db_url) for args in commands]]

    run.many = many
    run.cwd = tmp_path
    return run


def assert_png(path: Path, size: tuple[int, int]) -> None:
    assert path.is_file(), path
    with Image.open(path) as image:
        image.load()  # decodes every pixel, not just the header
        assert image.format == "PNG"
        assert image.size == size


def assert_ok(proc: subprocess.CompletedProcess) -> list[str]:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout.splitlines()


def test_visualize_writes_the_market_charts(cli, top50_csv):
    out = assert_ok(cli("visualize", f"--csv_path={top50_csv}", "--output_dir=report"))
    names = ["market_share", "prices", "price_change_24h", "market_cap_vs_volume"]
    assert out == [f"report/{name}.png" for name in names]
    for line in out:
        assert_png(cli.cwd / line, WIDE)
    assert not (cli.cwd / "none").exists(), "a chart command must not create a database"


def test_candlestick_from_the_csv_snapshots(cli, top50_csv):
    proc = cli("candlestick", f"--csv_path={top50_csv}", "--coin_name=BTC", "--save_path=b.png")
    assert assert_ok(proc) == ["b.png"]
    assert "24h candles" in proc.stderr
    assert_png(cli.cwd / "b.png", WIDE)


def test_correlation_without_history_is_the_cap_volume_scatter(cli, top50_csv):
    proc = cli("correlation", f"--csv_path={top50_csv}", "--save_path=c.png")
    assert assert_ok(proc) == ["c.png"]
    assert "market cap vs 24h volume" in proc.stderr
    assert_png(cli.cwd / "c.png", WIDE)


def test_every_command_on_10000_rows(cli, csv_10k):
    csv = f"--csv_path={csv_10k}"
    visualize, candles, correlation = cli.many(
        ["visualize", csv],
        ["candlestick", csv, "--coin_name=Ethereum"],
        ["correlation", csv, "--save_path=corr.png"],
    )
    assert_ok(visualize)
    for name in ("market_share", "prices", "price_change_24h", "market_cap_vs_volume"):
        assert_png(cli.cwd / "charts" / f"{name}.png", WIDE)
    assert assert_ok(candles) == ["ethereum_candlestick.png"]
    assert "newest 120 of 200" in candles.stderr
    assert_png(cli.cwd / "ethereum_candlestick.png", WIDE)
    # 200 snapshots are a history: the CSV alone gives a correlation.
    assert_ok(correlation)
    assert "correlation of 30-minute returns of 10 coins" in correlation.stderr
    assert_png(cli.cwd / "corr.png", SQUARE)


def test_charts_from_a_seeded_database(cli, top50_csv, db_url):
    seed_market(db_url)
    csv = f"--csv_path={top50_csv}"
    btc, sol, correlation = cli.many(
        ["candlestick", csv, "--coin_name=bitcoin", "--save_path=btc.png"],
        ["candlestick", csv, "--coin_name=sol", "--save_path=sol.png"],
        ["correlation", csv, "--save_path=corr.png"],
        db_url=db_url,
    )
    assert_ok(btc)
    assert "CoinGecko 4h candles from the database" in btc.stderr
    assert_png(cli.cwd / "btc.png", WIDE)
    assert_ok(sol)
    assert "candles built from the database's price history" in sol.stderr
    assert_png(cli.cwd / "sol.png", WIDE)
    assert_ok(correlation)
    assert "correlation of daily returns of 10 coins" in correlation.stderr
    assert_png(cli.cwd / "corr.png", SQUARE)


BAD_INPUTS = [
    (["visualize", "--csv_path=missing.csv"], ["missing.csv", "does not exist"]),
    (["candlestick", "--csv_path=empty.csv", "--coin_name=btc"], ["empty.csv is empty"]),
    (["correlation", "--csv_path=header.csv"], ["header.csv has a header but no rows"]),
    (["candlestick", "--csv_path=TOP50", "--coin_name=bitcon"], ["did you mean bitcoin"]),
    (["candlestick", "--csv_path=TOP50", "--coin_name=zzzz"], ["no coin 'zzzz'", "e.g. bitcoin"]),
]


def test_bad_input_is_one_line_and_exit_1(cli, top50_csv):
    (cli.cwd / "empty.csv").write_text("")
    header = transform_markets([], "usd", TOP50_FETCHED_AT).columns
    (cli.cwd / "header.csv").write_text(",".join(header) + "\n")
    commands = [[a.replace("TOP50", str(top50_csv)) for a in args] for args, _ in BAD_INPUTS]
    for proc, (_, needles) in zip(cli.many(*commands), BAD_INPUTS, strict=True):
        assert proc.returncode == 1, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
        for needle in needles:
            assert needle in errors[0]
    assert not list(cli.cwd.glob("*.png"))


def test_each_chart_command_has_help_with_an_example(cli):
    for name in CHART_COMMANDS:
        doc = getattr(CryptoETLPipeline, name).__doc__
        assert doc.strip().splitlines()[0].endswith(".")
        assert f"Example: python etl.py {name} " in doc
    proc = cli("--help")
    listing = proc.stdout + proc.stderr  # fire prints help to stderr when not on a terminal
    for name in CHART_COMMANDS:
        assert name in listing


def test_the_heatmap_and_the_api_compute_one_correlation(cli, top50_csv, sqlite_url):
    """The command line's heatmap and /api/v1/market/correlation use one function with one
    interval rule, so on the same data they give the same interval, coins and matrix."""
    from fastapi.testclient import TestClient

    from crypto_etl.analytics.correlation import returns_correlation
    from crypto_etl.api.app import create_app
    from crypto_etl.reports.inputs import history_points, open_database, read_chart_csv
    from crypto_etl.settings import Settings

    seed_market(sqlite_url)
    proc = cli("correlation", f"--csv_path={top50_csv}", "--save_path=corr.png", db_url=sqlite_url)
    assert_ok(proc)
    assert "correlation of daily returns of 10 coins" in proc.stderr
    table = read_chart_csv(top50_csv)
    wanted = list(table.latest.dropna(subset=["market_cap"]).head(10)["id"])
    points, _ = history_points(open_database(sqlite_url), table, wanted, 30)
    drawn = returns_correlation(points, wanted)
    with TestClient(create_app(Settings(database_url=sqlite_url))) as client:
        params = {"top_n": 10, "days": 30, "end": table.as_of.isoformat()}
        body = client.get("/api/v1/market/correlation", params=params).json()
    assert (body["interval"], body["coins"]) == (drawn.interval, drawn.coins) == ("1d", wanted)
    served = np.array([[np.nan if v is None else v for v in row] for row in body["matrix"]])
    assert served == pytest.approx(drawn.matrix.to_numpy(), nan_ok=True)
