"""Webhook delivery against real local receivers: formats, retries with injected waits, the time
budget, and webhook URLs never shown."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from webhook_receiver import Receiver, Silent

from crypto_etl.alerts.delivery import (
    Budget,
    deliver,
    render,
    sample_message,
    send,
    webhooks,
)
from crypto_etl.errors import ConfigError
from crypto_etl.settings import load_settings

NOW = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
MESSAGE = {
    "event": "opened",
    "alert_id": 7,
    "condition": "run_failed:run",
    "kind": "run_failed",
    "state": "open",
    "summary": "run 12 (run) failed: CoinGecko refused the API key (401)",
    "opened_at": NOW.isoformat(),
    "resolved_at": None,
    "run_ids": [12],
    "coin_ids": [],
    "details": {"run_id": 12},
}


def test_formats_by_prefix_and_host():
    hooks = webhooks(
        [
            "slack+https://example.org/a",
            "json+https://hooks.slack.com/b",
            "https://hooks.slack.com/services/T/B/X",
            "http://127.0.0.1:9/c",
        ]
    )
    assert [h.format for h in hooks] == ["slack", "json", "slack", "json"]
    assert hooks[2].label == "webhook 3 (slack, hooks.slack.com)"
    assert "services" not in repr(hooks[2]) and "services" not in hooks[2].label
    slack = render(MESSAGE, "slack", NOW)
    assert list(slack) == ["text"]
    assert "*Crypto ETL alert opened* `run_failed:run`" in slack["text"]
    assert "runs 12" in slack["text"]
    plain = render(MESSAGE, "json", NOW)
    assert plain["source"] == "crypto-etl" and plain["run_ids"] == [12]
    assert plain["sent_at"] == NOW.isoformat()


def test_settings_check_urls_without_echoing_them():
    with pytest.raises(ConfigError) as caught:
        load_settings({"ALERT_WEBHOOK_URLS": "https://ok.example/x, ftp://secret-token@x"})
    assert "entry 2" in str(caught.value) and "secret-token" not in str(caught.value)
    settings = load_settings({"ALERT_WEBHOOK_URLS": "slack+https://hooks.slack.com/T/SECRET"})
    assert "SECRET" not in repr(settings)


def test_retries_with_backoff_until_accepted():
    waits: list[float] = []
    with Receiver([500, 503]) as receiver:
        hook = webhooks([receiver.url()])[0]
        answer = send(hook, {"x": 1}, 3, 0.5, Budget(10), waits.append)
    assert answer.ok and answer.attempts == 3 and answer.detail == "HTTP 200"
    assert waits == [0.5, 1.0]
    assert [r["status"] for r in receiver.requests] == [500, 503, 200]


def test_a_client_error_is_not_retried_now():
    with Receiver([404]) as receiver:
        answer = send(webhooks([receiver.url()])[0], {}, 3, 0, Budget(10), lambda s: None)
    assert not answer.ok and answer.permanent and answer.attempts == 1


def test_a_silent_webhook_costs_the_budget_once_and_keeps_its_messages():
    recorded = []
    with Silent() as down, Receiver() as up:
        hooks = webhooks([down.url(), up.url()])
        messages = [
            SimpleNamespace(target=hooks[0].fingerprint, message=MESSAGE),
            SimpleNamespace(target=hooks[0].fingerprint, message=MESSAGE),
            SimpleNamespace(target=hooks[1].fingerprint, message=MESSAGE),
        ]
        started = time.monotonic()
        report = deliver(
            hooks,
            messages,
            lambda m, attempts, error: recorded.append((m.target, attempts, error)),
            retries=3,
            backoff_seconds=0.05,
            budget=Budget(0.5),
            wait=lambda s: None,
        )
        took = time.monotonic() - started
    assert took < 0.9
    assert report.pending == 3  # the silent one's two, and the one the budget left no time for
    assert len(report.failed) == 1
    assert report.failed[0].startswith("webhook 1 (json, 127.0.0.1): timed out after 1 attempt(s)")
    assert recorded == [(hooks[0].fingerprint, 1, "timed out")]


def test_a_refused_connection_is_quick():
    with Silent() as closed:
        url = closed.url()
    waits: list[float] = []
    answer = send(webhooks([url])[0], {}, 2, 0.1, Budget(5), waits.append)
    assert not answer.ok and answer.detail == "could not connect" and answer.attempts == 3
    assert waits == [0.1, 0.2]


def test_sample_message_renders():
    assert "test message" in render(sample_message(NOW), "slack", NOW)["text"]


def test_many_messages_go_as_one_digest_per_webhook():
    recorded = []
    many = [
        {**MESSAGE, "alert_id": n, "condition": f"anomaly:price_move:usd:coin-{n}"}
        for n in range(30)
    ]
    with Receiver() as slack, Receiver() as plain:
        hooks = webhooks([f"slack+{slack.url()}", f"json+{plain.url()}"])
        queued = [SimpleNamespace(target=h.fingerprint, message=m) for m in many for h in hooks]
        report = deliver(
            hooks,
            queued,
            lambda m, attempts, error: recorded.append(error),
            retries=0,
            backoff_seconds=0,
            budget=Budget(10),
        )
    assert report.delivered == 60 and report.pending == 0
    assert recorded == [None] * 60
    assert len(slack.requests) == 1 and len(plain.requests) == 1
    text = slack.accepted[0]["text"]
    assert text.startswith(":rotating_light: *Crypto ETL: 30 alert(s) opened, 0 resolved*")
    assert text.count("\n• opened `anomaly:price_move:usd:coin-") == 20
    assert text.endswith("_… and 10 more: python etl.py alerts_")
    digest = plain.accepted[0]
    assert digest["event"] == "digest" and len(digest["messages"]) == 30


def test_a_few_messages_go_one_by_one():
    with Receiver() as receiver:
        hooks = webhooks([receiver.url()])
        queued = [SimpleNamespace(target=hooks[0].fingerprint, message=MESSAGE)] * 5
        report = deliver(hooks, queued, lambda *a: None, 0, 0, Budget(10))
    assert report.delivered == 5 and len(receiver.requests) == 5
