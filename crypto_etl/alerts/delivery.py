"""Webhook delivery: each message POSTed as a Slack incoming-webhook body or as plain JSON, with a
timeout and retries with backoff, all within one time budget so that a webhook that is down never
holds up the pipeline; what was not accepted stays in the outbox for the next attempt.

ALERT_WEBHOOK_URLS entries: `slack+https://...` (Slack body), `json+https://...` (plain JSON), or a
bare URL: Slack when its host is hooks.slack.com, plain JSON otherwise. A webhook URL carries its
secret in the path or query: it is never logged, stored or shown; a webhook is named by its
position and host ("webhook 1 (slack, hooks.slack.com)") and stored by a fingerprint (a hash).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from crypto_etl.clock import utcnow

log = logging.getLogger(__name__)
FORMATS = ("slack", "json")
SLACK_HOSTS = ("hooks.slack.com",)
SOURCE = "crypto-etl"
DIGEST_AFTER = 5  # more messages than this owed to one webhook go as one digest
DIGEST_LINES = 20  # alerts a Slack digest lists one by one


@dataclass(frozen=True)
class Webhook:
    number: int
    url: str = field(repr=False)
    format: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()[:32]

    @property
    def label(self) -> str:
        """How the webhook is named in logs and output: never its URL."""
        return f"webhook {self.number} ({self.format}, {urlsplit(self.url).hostname})"


def webhooks(entries: Sequence[str]) -> list[Webhook]:
    """The ALERT_WEBHOOK_URLS entries (checked by the settings) as webhooks."""
    out = []
    for number, entry in enumerate(entries, 1):
        prefix, _, rest = entry.partition("+")
        if prefix in FORMATS:
            out.append(Webhook(number, rest, prefix))
        else:
            host = urlsplit(entry).hostname or ""
            out.append(Webhook(number, entry, "slack" if host in SLACK_HOSTS else "json"))
    return out


# -- message bodies ------------------------------------------------------------------------------
def _slack_text(message: dict[str, Any]) -> str:
    event = message.get("event")
    if event == "test":
        return f":test_tube: *Crypto ETL test message* {message['summary']}"
    head = (
        f":rotating_light: *Crypto ETL alert opened* `{message['condition']}`"
        if event == "opened"
        else f":white_check_mark: *Crypto ETL alert resolved* `{message['condition']}`"
    )
    lines = [head, message["summary"]]
    extra = []
    if message.get("run_ids"):
        extra.append("runs " + ", ".join(str(r) for r in message["run_ids"]))
    if message.get("coin_ids"):
        extra.append("coins " + ", ".join(message["coin_ids"]))
    extra.append(f"alert {message['alert_id']}, open since {message['opened_at']}")
    if message.get("resolved_at"):
        extra.append(f"resolved {message['resolved_at']}")
    lines.append("_" + "; ".join(extra) + "_")
    return "\n".join(lines)


def render_digest(
    messages: Sequence[dict[str, Any]], fmt: str, sent_at: datetime
) -> dict[str, Any]:
    """Many messages as one body: Slack gets a count and one line per alert (the first
    DIGEST_LINES), plain JSON gets every message under `messages`."""
    opened = sum(1 for m in messages if m.get("event") == "opened")
    resolved = sum(1 for m in messages if m.get("event") == "resolved")
    if fmt == "slack":
        lines = [f":rotating_light: *Crypto ETL: {opened} alert(s) opened, {resolved} resolved*"]
        for message in messages[:DIGEST_LINES]:
            mark = "opened" if message.get("event") == "opened" else "resolved"
            lines.append(f"• {mark} `{message['condition']}`: {message['summary']}")
        if len(messages) > DIGEST_LINES:
            lines.append(f"_… and {len(messages) - DIGEST_LINES} more: python etl.py alerts_")
        return {"text": "\n".join(lines)}
    return {
        "source": SOURCE,
        "event": "digest",
        "opened": opened,
        "resolved": resolved,
        "messages": list(messages),
        "sent_at": sent_at.isoformat(),
    }


def render(message: dict[str, Any], fmt: str, sent_at: datetime) -> dict[str, Any]:
    """The body a webhook of format `fmt` receives."""
    if fmt == "slack":
        return {"text": _slack_text(message)}
    return {"source": SOURCE, **message, "sent_at": sent_at.isoformat()}


def sample_message(now: datetime) -> dict[str, Any]:
    return {
        "event": "test",
        "alert_id": None,
        "condition": "test",
        "kind": "test",
        "state": "test",
        "summary": f"sent by `python etl.py alerts --send_test` at {now:%Y-%m-%d %H:%M:%S} UTC",
        "opened_at": now.isoformat(),
        "resolved_at": None,
        "run_ids": [],
        "coin_ids": [],
        "details": {},
    }


# -- sending -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    ok: bool
    detail: str  # "HTTP 200", "timed out", "could not connect": never the URL
    attempts: int
    seconds: float
    permanent: bool = False  # a 4xx other than 408/429: retrying now will not help


class Budget:
    """The time one delivery pass may take, on an injectable monotonic clock."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.deadline = clock() + seconds

    def left(self) -> float:
        return self.deadline - self.clock()


@contextlib.contextmanager
def _quiet_connection_logs() -> Iterator[None]:
    """urllib3 logs request paths at DEBUG: a webhook's path is its secret."""
    logger = logging.getLogger("urllib3.connectionpool")
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _post_once(
    http: requests.Session, url: str, body: dict, timeout: float
) -> tuple[bool, str, bool]:
    try:
        response = http.post(url, json=body, timeout=timeout)
    except requests.Timeout:
        return False, "timed out", False
    except requests.ConnectionError:
        return False, "could not connect", False
    except requests.RequestException as exc:
        return False, type(exc).__name__, False
    status = response.status_code
    permanent = 400 <= status < 500 and status not in (408, 429)
    return 200 <= status < 300, f"HTTP {status}", permanent


def send(
    hook: Webhook,
    body: dict[str, Any],
    retries: int,
    backoff_seconds: float,
    budget: Budget,
    wait: Callable[[float], None] = time.sleep,
    http: requests.Session | None = None,
) -> Answer:
    """POST `body` to `hook`: retried with doubling backoff after a failure that may pass, each
    attempt's timeout and each wait cut to what is left of `budget`."""
    started = budget.clock()
    attempts = 0
    detail = "no time left"
    permanent = False
    with _quiet_connection_logs(), contextlib.ExitStack() as stack:
        session = http or stack.enter_context(requests.Session())
        for attempt in range(retries + 1):
            if attempt:
                pause = backoff_seconds * 2 ** (attempt - 1)
                if budget.left() <= pause:
                    break
                wait(pause)
            left = budget.left()
            if left <= 0:
                break
            attempts += 1
            ok, detail, permanent = _post_once(session, hook.url, body, left)
            if ok:
                return Answer(True, detail, attempts, budget.clock() - started)
            if permanent:
                break
    return Answer(False, detail, attempts, budget.clock() - started, permanent)


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: list[str] = field(default_factory=list)  # one line per webhook that failed
    pending: int = 0  # messages left in the outbox


def _batches(messages: Sequence[Any]) -> list[list[Any]]:
    """One message per batch, or all in one digest when more than DIGEST_AFTER are owed."""
    if len(messages) > DIGEST_AFTER:
        return [list(messages)]
    return [[message] for message in messages]


def deliver(
    hooks: Sequence[Webhook],
    messages: Sequence[Any],
    record: Callable[[Any, int, str | None], None],
    retries: int,
    backoff_seconds: float,
    budget: Budget,
    wait: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = utcnow,
) -> DeliveryReport:
    """Send the pending outbox messages (oldest first) to their webhooks: one POST each, or one
    digest per webhook when more than DIGEST_AFTER are owed to it (a glitch that flags every coin
    must not flood a channel). A webhook that fails is not tried again in this pass (its messages
    wait for the next); `record(message, attempts, error)` notes each outcome."""
    by_fingerprint = {hook.fingerprint: hook for hook in hooks}
    owed: dict[str, list[Any]] = {}
    for message in messages:
        owed.setdefault(message.target, []).append(message)
    report = DeliveryReport()
    for target, queue in owed.items():
        hook = by_fingerprint.get(target)
        if hook is None:
            report.pending += len(queue)
            continue
        batches = _batches(queue)
        for number, batch in enumerate(batches):
            if budget.left() <= 0:
                report.pending += sum(len(b) for b in batches[number:])
                break
            contents = [message.message for message in batch]
            body = (
                render(contents[0], hook.format, now())
                if len(contents) == 1
                else render_digest(contents, hook.format, now())
            )
            answer = send(hook, body, retries, backoff_seconds, budget, wait)
            for message in batch:
                record(message, answer.attempts, None if answer.ok else answer.detail)
            if answer.ok:
                report.delivered += len(batch)
                continue
            report.pending += sum(len(b) for b in batches[number:])
            report.failed.append(
                f"{hook.label}: {answer.detail} after {answer.attempts} attempt(s) "
                f"in {answer.seconds:.2f} s"
            )
            break
    return report
