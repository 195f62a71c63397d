"""Every transient CoinGecko failure is retried with the same backoff and `retry-after` rules, never
fatal on the first try: a 200 whose body is cut short or not JSON, a connection reset mid-body,
5xx, 429 in every form, timeouts. requests-mock answers; time is fake, so nothing sleeps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from crypto_etl.coingecko.client import CoinGeckoClient
from crypto_etl.errors import CoinGeckoError, RateLimitError
from crypto_etl.settings import PUBLIC_BASE_URL, Settings, load_settings

MARKETS = f"{PUBLIC_BASE_URL}/coins/markets"
ROWS = [{"id": "bitcoin", "symbol": "btc", "name": "Bitcoin", "current_price": 1.0}]
WALL = datetime(2025, 10, 28, 8, 0, tzinfo=UTC)
RATE_LIMIT_JSON = {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit"}}
RATE_LIMIT_HTML = "<html><head><title>429 Too Many Requests</title></head></html>"
SETTINGS = Settings(calls_per_minute=6e6, max_retries=3, http_timeout_seconds=7.0)
BACKOFF = [2.0, 4.0, 8.0]  # COINGECKO_RETRY_WAIT_MIN_SECONDS=2 doubling, no jitter


class Waits:
    """The client's sleeps, recorded; its clock moves only when it sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def retry_waits(self) -> list[float]:
        return [s for s in self.sleeps if s > 0.001]  # pacing waits are tiny at 6e6 calls/min


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def client(waits):
    def make(**changes) -> CoinGeckoClient:
        return CoinGeckoClient(
            replace(SETTINGS, **changes),
            sleep=waits.sleep,
            clock=lambda: waits.now,
            jitter=lambda: 0.0,
            wall_clock=lambda: WALL,
        )

    return make


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


FAULTS = {
    "200 with a body cut short": {"text": '[{"id": "bitcoin", "symb'},
    "200 with an HTML page": {
        "text": "<html><body>502 Bad Gateway (from the proxy)</body></html>",
        "headers": {"content-type": "text/html"},
    },
    "200 with an empty body": {"text": ""},
    "connection reset mid-body": {
        "exc": requests.exceptions.ChunkedEncodingError(
            "Connection broken: ConnectionResetError(104, 'Connection reset by peer')"
        )
    },
    "connection reset before an answer": {
        "exc": requests.exceptions.ConnectionError("Connection reset by peer")
    },
    "HTTP 500": {"status_code": 500, "text": "Internal Server Error"},
    "HTTP 502": {"status_code": 502, "text": "<html>bad gateway</html>"},
    "HTTP 503 with JSON": {"status_code": 503, "json": {"error": "service unavailable"}},
    "HTTP 504": {"status_code": 504},
    "HTTP 429 with a JSON body": {"status_code": 429, "json": RATE_LIMIT_JSON},
    "HTTP 429 with an HTML page": {
        "status_code": 429,
        "text": RATE_LIMIT_HTML,
        "headers": {"content-type": "text/html"},
    },
    "200 with a 429 status body": {"json": RATE_LIMIT_JSON},
    "connect timeout": {"exc": requests.exceptions.ConnectTimeout},
    "read timeout": {"exc": requests.exceptions.ReadTimeout},
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_transient_failure_is_retried_with_the_same_backoff(
    requests_mock, client, waits, fault
):
    requests_mock.get(MARKETS, [FAULTS[fault]] * 3 + [{"json": ROWS}])

    assert client().fetch_markets(1, "usd") == ROWS

    assert requests_mock.call_count == 4
    assert waits.retry_waits() == pytest.approx(BACKOFF)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failure_that_persists_ends_in_one_line_after_the_retries(requests_mock, client, fault):
    requests_mock.get(MARKETS, [FAULTS[fault]] * 10)

    with pytest.raises(CoinGeckoError) as info:
        client().fetch_markets(1, "usd")

    message = str(info.value)
    assert "\n" not in message and message
    assert requests_mock.call_count == SETTINGS.max_retries + 1
    if "429" in fault:
        assert isinstance(info.value, RateLimitError)
    else:
        assert "after 3 retries" in message or message.startswith("cannot reach CoinGecko")


RETRY_AFTER = [
    ("seconds", "30", 30.0),
    ("HTTP-date 45 s ahead", http_date(WALL + timedelta(seconds=45)), 45.0),
    ("HTTP-date in the past", http_date(WALL - timedelta(minutes=5)), 2.0),
    ("unreadable", "soon", 2.0),
    ("a day in seconds, capped", "86400", 300.0),
]


@pytest.mark.parametrize(
    "answer",
    [
        {"status_code": 429, "json": RATE_LIMIT_JSON},
        {"status_code": 429, "text": RATE_LIMIT_HTML, "headers": {"content-type": "text/html"}},
        {"json": RATE_LIMIT_JSON},
        {"status_code": 503, "text": "down for maintenance"},
        {"text": "<html>maintenance</html>", "headers": {"content-type": "text/html"}},
    ],
    ids=["429 JSON", "429 HTML", "200 with 429 body", "503", "200 HTML"],
)
@pytest.mark.parametrize(
    ("header", "value", "expected"), RETRY_AFTER, ids=[r[0] for r in RETRY_AFTER]
)
def test_retry_after_in_seconds_or_http_date_is_never_cut_short(
    requests_mock, client, waits, answer, header, value, expected
):
    headers = {**answer.get("headers", {}), "retry-after": value}
    requests_mock.get(MARKETS, [{**answer, "headers": headers}, {"json": ROWS}])

    assert client().fetch_markets(1, "usd") == ROWS

    assert waits.retry_waits() == pytest.approx([expected])  # the backoff is 2 s


def test_the_wait_settings_bound_the_backoff(requests_mock, client, waits):
    requests_mock.get(MARKETS, [{"status_code": 503}] * 5 + [{"json": ROWS}])

    c = client(max_retries=5, retry_wait_min_seconds=3.0, retry_wait_max_seconds=10.0)
    assert c.fetch_markets(1, "usd") == ROWS

    assert waits.retry_waits() == pytest.approx([3.0, 6.0, 10.0, 10.0, 10.0])


def test_zero_wait_retries_at_once_but_still_honours_retry_after(requests_mock, client, waits):
    requests_mock.get(
        MARKETS,
        [
            {"status_code": 502},
            {"status_code": 429, "headers": {"retry-after": "7"}},
            {"text": "not json"},
            {"json": ROWS},
        ],
    )

    c = client(retry_wait_min_seconds=0.0, retry_wait_max_seconds=0.0)
    assert c.fetch_markets(1, "usd") == ROWS

    assert waits.retry_waits() == pytest.approx([7.0])


def test_jitter_adds_at_most_a_second_and_never_more_than_the_backoff(requests_mock, waits):
    requests_mock.get(MARKETS, [{"status_code": 500}] * 2 + [{"json": ROWS}])
    settings = replace(SETTINGS, retry_wait_min_seconds=0.5)
    c = CoinGeckoClient(settings, sleep=waits.sleep, clock=lambda: waits.now, jitter=lambda: 1.0)

    c.fetch_markets(1, "usd")

    assert waits.retry_waits() == pytest.approx([0.5 + 0.5, 1.0 + 1.0])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COINGECKO_RETRY_WAIT_MIN_SECONDS": "-1"}, "COINGECKO_RETRY_WAIT_MIN_SECONDS"),
        ({"COINGECKO_RETRY_WAIT_MAX_SECONDS": "x"}, "COINGECKO_RETRY_WAIT_MAX_SECONDS"),
        (
            {"COINGECKO_RETRY_WAIT_MIN_SECONDS": "5", "COINGECKO_RETRY_WAIT_MAX_SECONDS": "1"},
            "must be at least",
        ),
    ],
)
def test_bad_wait_settings_are_refused_by_name(env, message):
    from crypto_etl.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_settings(env, dotenv=False)


def test_wait_settings_are_read():
    settings = load_settings(
        {"COINGECKO_RETRY_WAIT_MIN_SECONDS": "0", "COINGECKO_RETRY_WAIT_MAX_SECONDS": "0"},
        dotenv=False,
    )
    assert (settings.retry_wait_min_seconds, settings.retry_wait_max_seconds) == (0.0, 0.0)
    defaults = load_settings({}, dotenv=False)
    assert (defaults.retry_wait_min_seconds, defaults.retry_wait_max_seconds) == (2.0, 60.0)
