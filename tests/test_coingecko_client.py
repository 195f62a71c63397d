"""CoinGeckoClient against a faked HTTP API (requests-mock) and the real responses in tests/data.

Time is fake: `VirtualTime.sleep` (tests/fakes.py) records each wait and moves its clock
forward, so retries and pacing are checked without sleeping.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path

import pytest
import requests
from fakes import VirtualTime

from crypto_etl.coingecko.client import JITTER_SECONDS, RETRY_AFTER_MAX_SECONDS, CoinGeckoClient
from crypto_etl.errors import CoinGeckoError, HistoryLimitError, NotFoundError, RateLimitError
from crypto_etl.settings import PRO_BASE_URL, PUBLIC_BASE_URL, Settings, load_settings

DATA = Path(__file__).resolve().parent / "data"
MARKETS = f"{PUBLIC_BASE_URL}/coins/markets"
RATE_LIMIT_BODY = {
    "status": {
        "error_code": 429,
        "error_message": "You've exceeded the Rate Limit. Please visit "
        "https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate "
        "limits.",
    }
}
RATE_LIMIT_HTML = (
    "<!DOCTYPE html>\n<html>\n<head><title>429 Too Many Requests</title></head>\n</html>"
)
# Fast pacing (0.01 s between calls) so only the test that is about pacing sees pacing waits.
SETTINGS = Settings(calls_per_minute=6000.0, max_retries=3, http_timeout_seconds=7.0)


def load(name: str):
    return json.loads((DATA / name).read_text())


@pytest.fixture
def fake_time() -> VirtualTime:
    return VirtualTime(1000.0)


@pytest.fixture
def make_client(fake_time):
    clients = []

    def make(settings: Settings = SETTINGS, jitter: float = 0.0, **changes) -> CoinGeckoClient:
        client = CoinGeckoClient(
            replace(settings, **changes),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            jitter=lambda: jitter,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def raises_one_line(error_type, call) -> str:
    """Run `call`, expect `error_type`, and return its message after checking it is one line."""
    with pytest.raises(error_type) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message
    return message


# Pagination of /coins/markets


def pages_of(rows: list[dict], count: int, last_size: int | None = None) -> dict[int, list[dict]]:
    """`count` pages made from the fixture rows, ids suffixed per page so pages differ."""
    pages = {}
    for page in range(1, count + 1):
        size = last_size if page == count and last_size is not None else len(rows)
        pages[page] = [{**row, "id": f"{row['id']}-p{page}"} for row in rows[:size]]
    return pages


def serve_pages(requests_mock, pages: dict[int, list[dict]]):
    def answer(request, context):
        return pages.get(int(request.qs["page"][0]), [])

    return requests_mock.get(MARKETS, json=answer)


def test_top_50_is_one_page_of_50_returned_unmodified(requests_mock, make_client):
    rows = load("coins_markets_usd_top50.json")
    requests_mock.get(MARKETS, json=rows)

    result = make_client().fetch_markets(50, "usd")

    assert result == rows
    assert requests_mock.call_count == 1
    assert requests_mock.last_request.qs == {
        "vs_currency": ["usd"],
        "order": ["market_cap_desc"],
        "per_page": ["50"],
        "page": ["1"],
        "sparkline": ["false"],
    }


def test_top_600_reads_three_pages_of_250_and_trims(requests_mock, make_client):
    rows = load("coins_markets_usd_250.json")
    pages = pages_of(rows, 3)
    serve_pages(requests_mock, pages)

    result = make_client().fetch_markets(600, "eur")

    assert result == pages[1] + pages[2] + pages[3][:100]
    sent = [request.qs for request in requests_mock.request_history]
    assert [qs["page"] for qs in sent] == [["1"], ["2"], ["3"]]
    assert {qs["per_page"][0] for qs in sent} == {"250"}
    assert {qs["vs_currency"][0] for qs in sent} == {"eur"}


def test_short_page_ends_pagination_before_top_n(requests_mock, make_client):
    pages = pages_of(load("coins_markets_usd_250.json"), 2, last_size=100)
    serve_pages(requests_mock, pages)

    result = make_client().fetch_markets(600, "usd")

    assert result == pages[1] + pages[2]
    assert requests_mock.call_count == 2


def test_all_coins_reads_until_a_short_page(requests_mock, make_client):
    pages = pages_of(load("coins_markets_usd_250.json"), 3, last_size=40)
    serve_pages(requests_mock, pages)

    result = make_client().fetch_markets(None, "usd")

    assert len(result) == 540
    assert result == pages[1] + pages[2] + pages[3]
    assert requests_mock.last_request.qs["per_page"] == ["250"]


def test_all_coins_stops_on_an_empty_page(requests_mock, make_client):
    rows = load("coins_markets_usd_250.json")
    serve_pages(requests_mock, {1: rows})

    assert make_client().fetch_markets(None, "usd") == rows
    assert requests_mock.call_count == 2


def test_top_n_below_one_is_refused_without_a_request(requests_mock, make_client):
    with pytest.raises(ValueError, match="top_n"):
        make_client().fetch_markets(0, "usd")
    assert requests_mock.call_count == 0


def test_markets_answer_that_is_not_a_list_is_an_error(requests_mock, make_client):
    requests_mock.get(MARKETS, json={"coins": []})

    message = raises_one_line(CoinGeckoError, lambda: make_client().fetch_markets(10, "usd"))
    assert "expected a list" in message


# API key, hosts, headers, timeout


@pytest.mark.parametrize(
    ("plan", "host", "header", "other_header"),
    [
        ("demo", PUBLIC_BASE_URL, "x-cg-demo-api-key", "x-cg-pro-api-key"),
        ("pro", PRO_BASE_URL, "x-cg-pro-api-key", "x-cg-demo-api-key"),
    ],
)
def test_key_goes_in_the_plan_header_on_the_plan_host(
    requests_mock, make_client, plan, host, header, other_header
):
    settings = load_settings({"COINGECKO_API_KEY": "CG-secret", "COINGECKO_API_PLAN": plan}, False)
    requests_mock.get(f"{host}/coins/markets", json=[])

    make_client(settings).fetch_markets(10, "usd")

    sent = requests_mock.last_request.headers
    assert sent[header] == "CG-secret"
    assert other_header not in sent


def test_keyless_request_sends_no_key_header_but_a_user_agent_and_timeout(
    requests_mock, make_client
):
    requests_mock.get(MARKETS, json=[])

    make_client(load_settings({}, False), http_timeout_seconds=12.5).fetch_markets(10, "usd")

    request = requests_mock.last_request
    assert not [name for name in request.headers if name.lower().startswith("x-cg-")]
    assert request.headers["User-Agent"].startswith("crypto-etl/")
    assert request.timeout == 12.5


def test_the_key_is_never_logged(requests_mock, make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="coingecko")
    requests_mock.get(MARKETS, [{"status_code": 429, "json": RATE_LIMIT_BODY}, {"json": []}])

    make_client(coingecko_api_key="CG-do-not-log").fetch_markets(10, "usd")

    assert "coins/markets" in caplog.text
    assert "CG-do-not-log" not in caplog.text


# Rate limits and retries


def test_429_json_honours_retry_after(requests_mock, make_client, fake_time):
    rows = load("coins_markets_usd_top50.json")
    requests_mock.get(
        MARKETS,
        [
            {"status_code": 429, "json": RATE_LIMIT_BODY, "headers": {"retry-after": "30"}},
            {"json": rows},
        ],
    )

    assert make_client().fetch_markets(50, "usd") == rows
    assert requests_mock.call_count == 2
    assert fake_time.sleeps[0] >= 30


def test_absurd_retry_after_is_capped(requests_mock, make_client, fake_time):
    requests_mock.get(
        MARKETS,
        [
            {"status_code": 429, "json": RATE_LIMIT_BODY, "headers": {"retry-after": "86400"}},
            {"json": []},
        ],
    )

    make_client().fetch_markets(10, "usd")

    assert (
        RETRY_AFTER_MAX_SECONDS <= fake_time.sleeps[0] <= RETRY_AFTER_MAX_SECONDS + JITTER_SECONDS
    )


@pytest.mark.parametrize(("jitter", "expected"), [(0.0, [2, 4, 8]), (0.5, [2.5, 4.5, 8.5])])
def test_429_without_retry_after_backs_off_exponentially_plus_jitter(
    requests_mock, make_client, fake_time, jitter, expected
):
    requests_mock.get(MARKETS, [{"status_code": 429, "json": RATE_LIMIT_BODY}] * 3 + [{"json": []}])

    make_client(jitter=jitter).fetch_markets(10, "usd")

    assert fake_time.sleeps == pytest.approx(expected)
    assert requests_mock.call_count == 4


def test_html_429_is_a_rate_limit(requests_mock, make_client, fake_time):
    html = {"status_code": 429, "text": RATE_LIMIT_HTML, "headers": {"content-type": "text/html"}}
    requests_mock.get(MARKETS, [html, {"json": []}])

    assert make_client().fetch_markets(10, "usd") == []
    assert requests_mock.call_count == 2
    assert len(fake_time.sleeps) == 1


def test_200_with_a_429_status_body_is_a_rate_limit(requests_mock, make_client, fake_time):
    rows = load("coins_markets_usd_top50.json")
    requests_mock.get(MARKETS, [{"json": RATE_LIMIT_BODY}, {"json": rows}])

    assert make_client().fetch_markets(50, "usd") == rows
    assert requests_mock.call_count == 2
    assert len(fake_time.sleeps) == 1


def test_rate_limit_that_never_lifts_raises_rate_limit_error(requests_mock, make_client):
    requests_mock.get(MARKETS, status_code=429, json=RATE_LIMIT_BODY)

    message = raises_one_line(RateLimitError, lambda: make_client().fetch_markets(10, "usd"))

    assert requests_mock.call_count == SETTINGS.max_retries + 1
    assert f"after {SETTINGS.max_retries} retries" in message
    assert "COINGECKO_CALLS_PER_MINUTE" in message


def test_zero_retries_means_one_request(requests_mock, make_client, fake_time):
    requests_mock.get(MARKETS, status_code=429, text=RATE_LIMIT_HTML)

    with pytest.raises(RateLimitError):
        make_client(max_retries=0).fetch_markets(10, "usd")
    assert requests_mock.call_count == 1
    assert fake_time.sleeps == []


def test_server_errors_are_retried_then_succeed(requests_mock, make_client):
    rows = load("coins_markets_usd_top50.json")
    requests_mock.get(
        MARKETS, [{"status_code": 502, "text": "bad gateway"}, {"status_code": 503}, {"json": rows}]
    )

    assert make_client().fetch_markets(50, "usd") == rows
    assert requests_mock.call_count == 3


def test_server_error_that_persists_is_a_coingecko_error(requests_mock, make_client):
    requests_mock.get(MARKETS, status_code=503)

    message = raises_one_line(CoinGeckoError, lambda: make_client().fetch_markets(10, "usd"))

    assert "HTTP 503" in message
    assert requests_mock.call_count == SETTINGS.max_retries + 1


def test_timeouts_and_connection_errors_are_retried(requests_mock, make_client):
    requests_mock.get(
        MARKETS,
        [
            {"exc": requests.exceptions.ConnectTimeout},
            {"exc": requests.exceptions.ReadTimeout},
            {"exc": requests.exceptions.ConnectionError("connection reset by peer")},
            {"json": []},
        ],
    )

    assert make_client().fetch_markets(10, "usd") == []
    assert requests_mock.call_count == 4


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (requests.exceptions.ReadTimeout, "no answer within 7 s"),
        (requests.exceptions.ConnectionError("Name or service not known"), "not known"),
    ],
)
def test_unreachable_after_retries_names_the_host(requests_mock, make_client, exc, reason):
    requests_mock.get(MARKETS, exc=exc)

    message = raises_one_line(CoinGeckoError, lambda: make_client().fetch_markets(10, "usd"))

    assert message.startswith(f"cannot reach CoinGecko at {PUBLIC_BASE_URL}: ")
    assert reason in message
    assert "COINGECKO_BASE_URL" in message
    assert requests_mock.call_count == SETTINGS.max_retries + 1


def test_each_retry_is_logged_once_as_one_warning_line(requests_mock, make_client, caplog):
    caplog.set_level(logging.WARNING, logger="coingecko")
    requests_mock.get(MARKETS, [{"status_code": 429, "json": RATE_LIMIT_BODY}] * 2 + [{"json": []}])

    make_client().fetch_markets(10, "usd")

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "HTTP 429" in warnings[0] and "retry 1 of 3" in warnings[0] and "2.0 s" in warnings[0]
    assert "retry 2 of 3" in warnings[1] and "4.0 s" in warnings[1]
    assert all("\n" not in line for line in warnings)


# Errors that are not retried


@pytest.mark.parametrize(
    ("status", "key", "cause"),
    [(401, None, "no API key was sent"), (403, "CG-wrong", "demo API key was not accepted")],
)
def test_auth_errors_are_not_retried_and_name_the_key(
    requests_mock, make_client, fake_time, status, key, cause
):
    body = {"status": {"error_code": 10002, "error_message": "API Key Missing"}}
    requests_mock.get(MARKETS, status_code=status, json=body)

    message = raises_one_line(
        CoinGeckoError, lambda: make_client(coingecko_api_key=key).fetch_markets(10, "usd")
    )

    assert requests_mock.call_count == 1
    assert fake_time.sleeps == []
    assert f"HTTP {status}" in message and cause in message
    assert "COINGECKO_API_KEY" in message and "COINGECKO_API_PLAN=demo|pro" in message
    assert "CG-wrong" not in message


def test_400_quotes_coingecko_message(requests_mock, make_client):
    requests_mock.get(MARKETS, status_code=400, json={"error": "invalid vs_currency"})

    with pytest.raises(CoinGeckoError) as info:
        make_client().fetch_markets(10, "usdx")

    assert type(info.value) is CoinGeckoError
    assert "invalid vs_currency" in str(info.value)
    assert requests_mock.call_count == 1


def test_404_is_not_found_naming_the_coin(requests_mock, make_client):
    requests_mock.get(
        f"{PUBLIC_BASE_URL}/coins/no-such-coin/ohlc",
        status_code=404,
        json={"error": "coin not found"},
    )

    message = raises_one_line(
        NotFoundError, lambda: make_client().fetch_ohlc("no-such-coin", "usd", 7)
    )

    assert "no-such-coin" in message and "coin not found" in message
    assert requests_mock.call_count == 1


def test_200_that_is_never_json_is_an_error_after_the_retries(requests_mock, make_client):
    requests_mock.get(
        MARKETS, text="<html>maintenance</html>", headers={"content-type": "text/html"}
    )

    message = raises_one_line(CoinGeckoError, lambda: make_client().fetch_markets(10, "usd"))

    assert "not JSON (HTTP 200, text/html)" in message
    assert f"after {SETTINGS.max_retries} retries" in message
    assert requests_mock.call_count == SETTINGS.max_retries + 1


# Pacing


def test_pacing_spaces_request_starts_by_the_minimum_interval(
    requests_mock, make_client, fake_time
):
    starts = []

    def answer(request, context):
        starts.append(fake_time.now)
        return {}

    requests_mock.get(f"{PUBLIC_BASE_URL}/ping", json=answer)
    client = make_client(calls_per_minute=30.0)  # one call every 2 s

    for _ in range(4):
        client.get_json("/ping")

    assert sum(fake_time.sleeps) == pytest.approx(3 * 2.0)
    assert [b - a for a, b in pairwise(starts)] == pytest.approx([2.0] * 3)


def test_pacing_does_not_wait_when_enough_time_has_passed(requests_mock, make_client, fake_time):
    requests_mock.get(f"{PUBLIC_BASE_URL}/ping", json={})
    client = make_client(calls_per_minute=30.0)

    client.get_json("/ping")
    fake_time.now += 5.0
    client.get_json("ping")

    assert fake_time.sleeps == []
    assert requests_mock.call_count == 2


def test_retries_count_as_calls_for_pacing(requests_mock, make_client, fake_time):
    starts = []

    def answer(request, context):
        starts.append(fake_time.now)
        if len(starts) == 1:
            context.status_code = 429
            return RATE_LIMIT_BODY
        return []

    requests_mock.get(MARKETS, json=answer)

    make_client(calls_per_minute=6.0).fetch_markets(10, "usd")  # one call every 10 s

    assert starts[1] - starts[0] == pytest.approx(10.0)
    assert fake_time.sleeps == pytest.approx([2.0, 8.0])  # backoff, then the rest of the interval


# Market chart range and OHLC


def test_market_chart_range_sends_unix_seconds_and_returns_the_body(requests_mock, make_client):
    body = load("market_chart_days1.json")
    requests_mock.get(f"{PUBLIC_BASE_URL}/coins/bitcoin/market_chart/range", json=body)
    start = datetime(2024, 4, 1, tzinfo=UTC)
    end = datetime(2024, 4, 5, 2, tzinfo=timezone(timedelta(hours=2)))  # 2024-04-05 00:00 UTC

    result = make_client().fetch_market_chart_range("bitcoin", "usd", start, end)

    assert result == body
    assert requests_mock.last_request.qs == {
        "vs_currency": ["usd"],
        "from": ["1711929600"],
        "to": ["1712275200"],
    }


def test_market_chart_range_refuses_naive_datetimes(requests_mock, make_client):
    with pytest.raises(ValueError, match="timezone-aware"):
        make_client().fetch_market_chart_range(
            "bitcoin", "usd", datetime(2024, 4, 1), datetime(2024, 4, 5, tzinfo=UTC)
        )
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(("days", "fixture_key"), [(1, "1d"), (7, "7d"), ("30", "30d")])
def test_ohlc_sends_days_and_returns_candles_unmodified(
    requests_mock, make_client, days, fixture_key
):
    candles = load("ohlc_btc_eth_days1_7_30.json")["bitcoin"][fixture_key]
    requests_mock.get(f"{PUBLIC_BASE_URL}/coins/bitcoin/ohlc", json=candles)

    result = make_client().fetch_ohlc("bitcoin", "usd", days)

    assert result == candles
    assert requests_mock.last_request.qs == {"vs_currency": ["usd"], "days": [str(days)]}


@pytest.mark.parametrize("status", [400, 401])
def test_a_range_beyond_the_plan_is_a_history_limit_error(requests_mock, make_client, status):
    # CoinGecko's answer to keyless and demo requests that reach back more than 365 days.
    body = {
        "error": {
            "status": {
                "timestamp": "2024-04-20T22:00:05.123+00:00",
                "error_code": 10012,
                "error_message": "Your request exceeds the allowed time range. Public API users "
                "are limited to querying historical data within the past 365 days.",
            }
        }
    }
    requests_mock.get(f"{PUBLIC_BASE_URL}/coins/bitcoin/ohlc", status_code=status, json=body)

    with pytest.raises(HistoryLimitError) as caught:
        make_client().fetch_ohlc("bitcoin", "usd", 400)

    message = str(caught.value)
    assert "365 days" in message and "exceeds the allowed time range" in message
    assert "\n" not in message
    assert requests_mock.call_count == 1  # not retried


# Lifecycle


def test_context_manager_uses_but_does_not_close_a_given_session(requests_mock, fake_time):
    class TrackedSession(requests.Session):
        closed = False

        def close(self) -> None:
            self.closed = True
            super().close()

    session = TrackedSession()
    requests_mock.get(f"{PUBLIC_BASE_URL}/ping", json={"gecko_says": "(V3) To the Moon!"})

    with CoinGeckoClient(SETTINGS, session=session, sleep=fake_time.sleep) as client:
        assert client.get_json("/ping") == {"gecko_says": "(V3) To the Moon!"}

    assert not session.closed
    session.close()
