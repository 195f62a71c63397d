"""Alerts end to end: `python etl.py run` and `backfill` against the fake CoinGecko, the alert
messages received by real local webhooks (tests/webhook_receiver.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from etl_child import child_runner
from fake_coingecko import FakeCoinGecko
from helpers import etl_env, etl_runner, market_rows, query, scalar
from sqlalchemy import insert
from webhook_receiver import Receiver, Silent

from crypto_etl.storage.engine import make_engine
from crypto_etl.storage.schema import MarketSnapshot

UNAUTHORIZED = json.dumps({"status": {"error_code": 10002, "error_message": "API key missing"}})


def fresh_rows(at: datetime | None = None) -> list[dict]:
    """The recorded top-50 answer as if CoinGecko served it at `at` (default: a minute ago)."""
    at = at or datetime.now(UTC) - timedelta(minutes=1)
    rows = copy.deepcopy(market_rows())
    for row in rows:
        row["last_updated"] = at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return rows


@pytest.fixture
def fake():
    with FakeCoinGecko(fresh_rows()) as server:
        yield server


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def cli(tmp_path, fake, db_url, receiver):
    env = etl_env(
        db_url,
        fake.url,
        tmp_path / "data",
        OHLC_TOP_N="0",
        COINGECKO_MAX_RETRIES="0",
        ALERT_WEBHOOK_URLS=f"json+{receiver.url()}",
        ALERT_WEBHOOK_BACKOFF_SECONDS="0",
        ALERT_FAILED_RUNS_IN_A_ROW="3",
    )
    run = etl_runner(tmp_path, env)
    run.db_url = db_url
    return run


def events(receiver: Receiver) -> list[tuple[str, str]]:
    return [(body["event"], body["condition"]) for body in receiver.accepted]


def test_a_failure_is_told_once_and_its_end_once(cli, fake, receiver, tmp_path):
    fake.fail_next(401, UNAUTHORIZED)
    failed = cli("run", check=False)
    assert failed.returncode == 1
    assert events(receiver) == [("opened", "run_failed:run")]
    message = receiver.accepted[0]
    run_id = scalar(cli.db_url, "SELECT max(id) FROM etl_runs")
    assert message["run_ids"] == [run_id]
    assert f"run {run_id} (run) failed" in message["summary"]
    assert "401" in message["summary"]
    (tmp_path / "message_received.json").write_text(json.dumps(message, indent=2))

    fake.fail_next(401, UNAUTHORIZED)
    cli("run", check=False)  # the same failure again: still open, no message
    assert len(receiver.requests) == 1

    cli("run")
    assert events(receiver) == [("opened", "run_failed:run"), ("resolved", "run_failed:run")]
    resolved = receiver.accepted[1]
    assert resolved["state"] == "resolved" and resolved["alert_id"] == message["alert_id"]
    assert query(cli.db_url, "SELECT state, run_ids FROM alerts")[0][0] == "resolved"
    # The URL (its path is the secret) is in no log line and no table.
    secret = "SECRET-PATH"
    assert secret not in failed.stderr + failed.stdout
    dumped = query(cli.db_url, "SELECT target, message FROM alert_outbox")
    assert secret not in repr(dumped)


def test_a_receiver_answering_500_then_200_gets_the_message(cli, fake, receiver):
    receiver.statuses.extend([500])
    fake.fail_next(401, UNAUTHORIZED)
    cli("run", check=False)
    assert [r["status"] for r in receiver.requests] == [500, 200]
    assert events(receiver) == [("opened", "run_failed:run")]
    assert scalar(cli.db_url, "SELECT attempts FROM alert_outbox") == 2
    assert scalar(cli.db_url, "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NULL") == 0


def test_a_webhook_that_is_down_costs_at_most_the_timeout_and_keeps_the_message(
    cli, fake, receiver
):
    fake.fail_next(401, UNAUTHORIZED)
    started = time.monotonic()
    cli("run", check=False, ALERT_WEBHOOK_URLS="")
    baseline = time.monotonic() - started

    with Silent() as down:
        settings = {
            "ALERT_WEBHOOK_URLS": f"json+{down.url()}",
            "ALERT_WEBHOOK_TIMEOUT_SECONDS": "1",
        }
        fake.fail_next(401, UNAUTHORIZED)
        cli("run", check=False, ALERT_FAILED_RUNS_IN_A_ROW="2", **settings)
        started = time.monotonic()
        fake.fail_next(401, UNAUTHORIZED)
        slow = cli("run", check=False, ALERT_FAILED_RUNS_IN_A_ROW="2", **settings)
        took = time.monotonic() - started
    assert slow.returncode == 1
    # Delivery gave up when the 1 s budget was spent, and the run as a whole took about that much
    # longer than one without webhooks (a loose bound: process start-up varies under load).
    spent = re.search(
        r"webhook 1 \(json, 127\.0\.0\.1\): timed out after 1 attempt\(s\) in ([\d.]+) s",
        slow.stderr,
    )
    assert spent and 0.9 <= float(spent[1]) <= 1.3, slow.stderr
    assert took < baseline + 1.0 + 5.0, (took, baseline)
    assert "SECRET-PATH" not in slow.stderr
    pending = "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NULL"
    assert scalar(cli.db_url, pending) == 1  # failed_streak:run, opened while it was down

    # Back up (the same URL as before is now the live receiver's; the queued message is for the
    # old one): the new webhook gets what opens and resolves from now on.
    cli("run", ALERT_FAILED_RUNS_IN_A_ROW="2")
    assert sorted(events(receiver)) == [
        ("resolved", "failed_streak:run"),
        ("resolved", "run_failed:run"),
    ]


def test_a_queued_message_is_sent_after_the_next_run(cli, fake, receiver):
    receiver.statuses.extend([503] * 4)  # the first run's attempts all fail
    fake.fail_next(401, UNAUTHORIZED)
    cli("run", check=False, ALERT_WEBHOOK_RETRIES="3")
    assert receiver.accepted == []
    assert scalar(cli.db_url, "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NULL") == 1
    cli("run")
    assert events(receiver) == [("opened", "run_failed:run"), ("resolved", "run_failed:run")]


def seed_history(db_url: str, coin_row: dict, points: int = 30) -> None:
    """`points` earlier snapshots of one coin, five minutes apart, ending ten minutes ago, its
    price wiggling by 0.1 %: a history for the anomaly rules to judge against."""
    end = datetime.now(UTC) - timedelta(minutes=10)
    price = coin_row["current_price"]
    supply = coin_row["circulating_supply"]
    rows = []
    for i in range(points):
        p = price * (1 + 0.001 * (1, -1, 2, -2, 0)[i % 5])
        rows.append(
            dict(
                coin_id=coin_row["id"],
                vs_currency="usd",
                last_updated=end - (points - i) * timedelta(minutes=5),
                snapshot_at=end - (points - i) * timedelta(minutes=5),
                current_price=p,
                market_cap=p * supply,
                total_volume=coin_row["total_volume"] * (1 + 0.02 * (i % 3)),
                circulating_supply=supply,
            )
        )
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(insert(MarketSnapshot), rows)
    engine.dispose()


def open_conditions(db_url: str) -> list[str]:
    return [r[0] for r in query(db_url, "SELECT condition FROM alerts WHERE state = 'open'")]


def test_each_condition_opens_and_clears_through_run(cli, fake, receiver):
    # Stale data: CoinGecko serves every row with a last_updated a day old.
    fake.serve_stale(timedelta(days=1))
    cli("run")
    assert open_conditions(cli.db_url) == ["data_stale:usd"]
    fake.serve_normally()
    cli("run")
    assert open_conditions(cli.db_url) == []

    bitcoin = fake.markets[0]
    seed_history(cli.db_url, bitcoin)

    # A price 10x off: price_move and market_cap (the cap no longer fits price x supply).
    fake.markets = fresh_rows(datetime.now(UTC))
    fake.serve_price_off("bitcoin", 10)
    cli("run")
    assert sorted(open_conditions(cli.db_url)) == [
        "anomaly:market_cap:usd:bitcoin",
        "anomaly:price_move:usd:bitcoin",
    ]
    flags = query(cli.db_url, "SELECT rule, coin_id, value, expected FROM anomaly_flags")
    assert sorted(r[0] for r in flags) == ["market_cap", "price_move"]
    move = next(r for r in flags if r[0] == "price_move")
    assert move[2] == pytest.approx(bitcoin["current_price"] * 10)
    assert move[3] == pytest.approx(bitcoin["current_price"], rel=0.01)

    # Served right again, later: both clear; the bad point stays flagged.
    fake.serve_normally()
    fake.markets = fresh_rows(datetime.now(UTC) + timedelta(seconds=1))
    cli("run")
    assert open_conditions(cli.db_url) == []
    assert scalar(cli.db_url, "SELECT count(*) FROM anomaly_flags") == 2

    # A zero market cap.
    fake.markets = fresh_rows(datetime.now(UTC) + timedelta(seconds=2))
    fake.serve_zero_market_cap("bitcoin")
    cli("run")
    assert open_conditions(cli.db_url) == ["anomaly:market_cap:usd:bitcoin"]
    fake.serve_normally()
    fake.markets = fresh_rows(datetime.now(UTC) + timedelta(seconds=3))
    cli("run")
    assert open_conditions(cli.db_url) == []

    # A quarantine rate above 10 %: 10 of 50 rows with a negative price.
    fake.markets = fresh_rows(datetime.now(UTC) + timedelta(seconds=5))
    for row in fake.markets[10:20]:
        fake.serve_changed(row["id"], current_price=-1)
    cli("run")
    assert open_conditions(cli.db_url) == ["quarantine_rate:run"]
    fake.serve_normally()
    fake.markets = fresh_rows(datetime.now(UTC) + timedelta(seconds=6))
    cli("run")
    assert open_conditions(cli.db_url) == []

    # A failed streak (ALERT_FAILED_RUNS_IN_A_ROW=2 here).
    for _ in range(2):
        fake.fail_next(401, UNAUTHORIZED)
        cli("run", check=False, ALERT_FAILED_RUNS_IN_A_ROW="2")
    assert sorted(open_conditions(cli.db_url)) == ["failed_streak:run", "run_failed:run"]
    cli("run", ALERT_FAILED_RUNS_IN_A_ROW="2")
    assert open_conditions(cli.db_url) == []

    opened = [c for e, c in events(receiver) if e == "opened"]
    resolved = [c for e, c in events(receiver) if e == "resolved"]
    assert sorted(opened) == sorted(resolved)  # each told once when it opened, once at its end
    assert len(opened) == len(set(opened)) + 1  # market_cap opened twice (two episodes)


# -- backfill -------------------------------------------------------------------------------------
@pytest.fixture
def history_fake():
    from history_data import NOW, serve_history

    with FakeCoinGecko(fresh_rows(NOW - timedelta(minutes=5))) as server:
        serve_history(server, {"bitcoin": 1.0}, days=40, now=NOW)
        yield server


def test_backfill_failure_and_a_spike_in_history_open_and_clear(
    tmp_path, history_fake, db_url, receiver, etl_children
):
    from history_data import NOW

    env = etl_env(
        db_url,
        history_fake.url,
        tmp_path / "data",
        COINGECKO_MAX_RETRIES="0",
        OHLC_TOP_N="0",
        ALERT_WEBHOOK_URLS=f"slack+{receiver.url()}",
    )
    cli = child_runner(etl_children, tmp_path, env, NOW)  # "now" pinned from outside the product
    failed = cli("backfill", "--coins=no-such-coin", "--days=30", check=False)
    assert failed.returncode == 1
    assert open_conditions(db_url) == ["run_failed:backfill"]
    text = receiver.accepted[0]["text"]
    assert text.startswith(":rotating_light: *Crypto ETL alert opened* `run_failed:backfill`")

    # CoinGecko's history holds one hourly price ten times too high, ten days back.
    spike_at = (NOW - timedelta(days=10)).replace(minute=0)
    spike = int(spike_at.timestamp() * 1000)
    prices = history_fake.charts["bitcoin"]["prices"]
    index = next(i for i, (ms, _) in enumerate(prices) if ms == spike)
    prices[index] = [spike, prices[index][1] * 10]
    cli("backfill", "--coins=bitcoin", "--days=30")
    assert open_conditions(db_url) == ["anomaly:price_move:usd:bitcoin"]
    flags = query(db_url, "SELECT rule, source, observed_at, value FROM anomaly_flags")
    assert {(r[0], r[1]) for r in flags} == {("price_move", "price_history")}
    by_time = {str(r[2])[:16]: r[3] for r in flags}
    flagged_spike = by_time.pop(f"{spike_at:%Y-%m-%d %H:%M}")
    assert abs(flagged_spike - prices[index][1]) < 1e-6 * prices[index][1]
    # The synthesised history repeats one real day; where the day wraps round, the five-minute
    # points of the last day jump 6 % in five minutes: flagged too, three points, then accepted.
    assert len(by_time) == 3 and all(
        t.startswith(f"{NOW - timedelta(days=1):%Y-%m-%d}") for t in by_time
    )
    texts = [body["text"] for body in receiver.accepted]
    assert any("alert resolved* `run_failed:backfill`" in t for t in texts)

    # Two hours later the next backfill brings clean points: the anomaly alert clears.
    later = NOW + timedelta(hours=2)
    from history_data import serve_history

    serve_history(history_fake, {"bitcoin": 1.0}, days=40, now=later)
    cli.now = later
    cli("backfill", "--coins=bitcoin", "--days=30")
    assert open_conditions(db_url) == []
    assert scalar(db_url, "SELECT count(*) FROM anomaly_flags") == 4


# -- the alerts command ---------------------------------------------------------------------------
def test_alerts_lists_checks_staleness_and_sends_tests(cli, fake, receiver, etl_children):
    fake.fail_next(401, UNAUTHORIZED)
    cli("run", check=False)
    out = cli("alerts").stdout
    assert "open alerts (1):" in out and "run_failed:run  [open]" in out
    assert "no anomaly flags" in out
    cli("run")
    assert "no open alerts" in cli("alerts").stdout
    listed = cli("alerts", "--all").stdout
    assert "alerts (1):" in listed and "[resolved" in listed
    assert "no alerts" in cli("alerts", "--all", "--since=2100-01-01T00:00:00Z").stdout

    # No run for three hours: the command itself finds the data stale.
    later = datetime.now(UTC) + timedelta(hours=3)
    out = child_runner(etl_children, cli.cwd, cli.env, later)("alerts").stdout
    assert "data_stale:usd" in out
    assert events(receiver)[-1] == ("opened", "data_stale:usd")

    answers = cli("alerts", "--send_test").stdout
    assert answers.startswith("webhook 1 (json, 127.0.0.1): ok, HTTP 200 after 1 attempt(s)")
    assert receiver.accepted[-1]["event"] == "test"

    with Silent() as closed:
        url = closed.url()
    refused = cli(
        "alerts",
        "--send_test",
        check=False,
        ALERT_WEBHOOK_URLS=f"{receiver.url()},{url}",
        ALERT_WEBHOOK_RETRIES="0",
    )
    assert refused.returncode == 1
    assert "webhook 2 (json, 127.0.0.1): FAILED, could not connect" in refused.stdout
    assert "error: 1 of 2 webhook(s) did not accept the test" in refused.stderr
    assert "SECRET-PATH" not in refused.stdout + refused.stderr

    none = cli("alerts", "--send_test", check=False, ALERT_WEBHOOK_URLS="")
    assert none.returncode == 1 and "ALERT_WEBHOOK_URLS is empty" in none.stderr
    bad = cli("alerts", "--since=yesterday", check=False)
    assert bad.returncode == 2 and "--since must be an ISO 8601 time" in bad.stderr


def test_schedule_judges_the_conditions_on_each_tick(cli, fake, receiver):
    fake.fail_next(401, UNAUTHORIZED)
    out = cli("schedule", "--interval_seconds=0.05", "--max_runs=2")
    assert "after 2 run(s), 1 failed" in out.stdout
    assert events(receiver) == [("opened", "run_failed:run"), ("resolved", "run_failed:run")]
