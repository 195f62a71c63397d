"""CoinGecko API v3 client: pacing, timeouts, retries and one-line errors for every request.

Retried with the same backoff (COINGECKO_RETRY_WAIT_MIN/MAX_SECONDS, doubling, plus jitter) and
the same `retry-after` rule (seconds or an HTTP-date; never waited less than it says): 429 in every
form (status, or a 200 whose JSON body carries error code 429), 5xx, timeouts, refused or reset
connections, an answer cut short, and a 200 whose body is not JSON (a proxy's error page, a CDN
hiccup). Other 4xx are not retried.

Every attempt, retries included, first waits for its turn from the pacer: by default this
process's own `IntervalPacer` (COINGECKO_CALLS_PER_MINUTE), or the one given, such as the budget
shared through the database (crypto_etl.pipeline.source).

Time is injected (`sleep`, `clock`, `wall_clock`, `jitter`) so tests drive retries and pacing
without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from crypto_etl.coingecko.pacing import IntervalPacer, Pacer
from crypto_etl.errors import CoinGeckoError, HistoryLimitError, NotFoundError, RateLimitError
from crypto_etl.settings import Settings

log = logging.getLogger(__name__)

USER_AGENT = "crypto-etl/0.1"
PAGE_SIZE = 250  # CoinGecko's largest per_page for /coins/markets
JITTER_SECONDS = 1.0  # at most this much (and at most the backoff itself) is added at random
RETRY_AFTER_MAX_SECONDS = 300.0
MESSAGE_MAX_CHARS = 200
# CoinGecko's error code for a time range beyond what the plan serves (365 days keyless and demo).
HISTORY_LIMIT_ERROR_CODE = "10012"


class _RetryableFailure(Exception):
    """One failed attempt worth retrying: a rate limit, a server error, an unreachable host or an
    answer that is cut short or not JSON."""

    def __init__(self, kind: str, reason: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.kind = kind  # "rate_limit", "server", "unreachable" or "bad_body"
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds


def _one_line(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """Collapse whitespace and shorten, so a message stays on one readable line."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _error_message(body: Any) -> str | None:
    """CoinGecko's own error text from a decoded body, in any of the shapes it uses."""
    if not isinstance(body, dict):
        return None
    status = body.get("status")
    if isinstance(status, dict) and status.get("error_message"):
        return _one_line(str(status["error_message"]))
    error = body.get("error")
    if isinstance(error, str) and error:
        return _one_line(error)
    if isinstance(error, dict):
        return _error_message(error)
    return None


def _error_code(body: Any) -> str | None:
    """CoinGecko's numeric error code, from `{"status": ...}` or `{"error": {"status": ...}}`."""
    if not isinstance(body, dict):
        return None
    status = body.get("status")
    if isinstance(status, dict) and status.get("error_code") is not None:
        return str(status["error_code"])
    return _error_code(body.get("error"))


def _response_message(response: requests.Response) -> str | None:
    try:
        return _error_message(response.json())
    except ValueError:
        return None


def _retry_after_seconds(response: requests.Response, now: datetime) -> float | None:
    """The `retry-after` header in seconds (a number of seconds, or an HTTP-date counted from
    `now`; a date in the past is 0), capped; None when absent or unreadable."""
    raw = response.headers.get("retry-after", "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            moment = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # RFC 9110 dates are GMT
            moment = moment.replace(tzinfo=UTC)
        seconds = max(0.0, (moment - now).total_seconds())
    if not seconds >= 0 or seconds == float("inf"):  # also rejects NaN
        return None
    return min(seconds, RETRY_AFTER_MAX_SECONDS)


def _is_rate_limit_body(body: Any) -> bool:
    status = body.get("status") if isinstance(body, dict) else None
    return isinstance(status, dict) and str(status.get("error_code")) == "429"


def _unix_seconds(moment: datetime, name: str) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {moment.isoformat()}")
    return int(moment.timestamp())


class CoinGeckoClient:
    """Reads CoinGecko's market endpoints; every failure leaves as a one-line `CoinGeckoError`."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pacer: Pacer | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = settings.coingecko_base_url.rstrip("/")
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._wall_clock = wall_clock
        if pacer is None:
            pacer = IntervalPacer(60.0 / settings.calls_per_minute, clock, sleep)
        self._pace = pacer
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if settings.coingecko_api_key:
            self._headers[settings.api_key_header] = settings.coingecko_api_key

    def __enter__(self) -> CoinGeckoClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session:
            self._session.close()

    def get_json(self, path: str, params: dict | None = None) -> Any:
        """GET `path` under the base URL and return the decoded JSON body.

        One logical request: paced, with a timeout, retried on every transient failure (see the
        module's docstring).
        """
        path = "/" + path.lstrip("/")
        retries = self.settings.max_retries
        retrying = Retrying(
            sleep=self._sleep,
            stop=stop_after_attempt(retries + 1),
            wait=self._wait_seconds,
            retry=retry_if_exception_type(_RetryableFailure),
            before_sleep=lambda state: self._log_retry(path, state),
            reraise=True,
        )
        try:
            return retrying(self._attempt, path, params)
        except _RetryableFailure as failure:
            raise self._final_error(path, failure) from failure

    def fetch_markets(self, top_n: int | None, vs_currency: str) -> list[dict]:
        """The top `top_n` coins by market cap (every listed coin when None), rows as received."""
        if top_n is not None and top_n < 1:
            raise ValueError(f"top_n must be at least 1 or None (all coins), got {top_n}")
        per_page = PAGE_SIZE if top_n is None else min(PAGE_SIZE, top_n)
        rows: list[dict] = []
        page = 1
        while True:
            params = {
                "vs_currency": vs_currency,
                "order": "market_cap_desc",
                "per_page": per_page,
                "page": page,
                "sparkline": "false",
            }
            batch = self.get_json("/coins/markets", params)
            if not isinstance(batch, list):
                raise CoinGeckoError(
                    f"CoinGecko answered /coins/markets page {page} with "
                    f"{type(batch).__name__}, expected a list of coins"
                )
            rows.extend(batch)
            if len(batch) < per_page or (top_n is not None and len(rows) >= top_n):
                break
            page += 1
        return rows if top_n is None else rows[:top_n]

    def fetch_market_chart_range(
        self, coin_id: str, vs_currency: str, start: datetime, end: datetime
    ) -> dict:
        """Prices, market caps and volumes of one coin between two aware datetimes."""
        params = {
            "vs_currency": vs_currency,
            "from": _unix_seconds(start, "start"),
            "to": _unix_seconds(end, "end"),
        }
        path = f"/coins/{quote(coin_id, safe='')}/market_chart/range"
        body = self.get_json(path, params)
        if not isinstance(body, dict):
            raise CoinGeckoError(
                f"CoinGecko answered {path} with {type(body).__name__}, expected an object"
            )
        return body

    def fetch_ohlc(self, coin_id: str, vs_currency: str, days: int | str) -> list[list]:
        """OHLC candles `[ms, open, high, low, close]` of one coin over the last `days`."""
        path = f"/coins/{quote(coin_id, safe='')}/ohlc"
        body = self.get_json(path, {"vs_currency": vs_currency, "days": days})
        if not isinstance(body, list):
            raise CoinGeckoError(
                f"CoinGecko answered {path} with {type(body).__name__}, expected a list of candles"
            )
        return body

    def _attempt(self, path: str, params: dict | None) -> Any:
        self._pace()
        url = self.base_url + path
        timeout = self.settings.http_timeout_seconds
        log.debug("GET %s params=%s", url, params)
        try:
            response = self._session.get(url, params=params, headers=self._headers, timeout=timeout)
        except requests.Timeout as exc:
            raise _RetryableFailure("unreachable", f"no answer within {timeout:g} s") from exc
        except requests.exceptions.ChunkedEncodingError as exc:
            raise _RetryableFailure(
                "bad_body", f"the answer was cut short ({_connection_reason(exc)})"
            ) from exc
        except requests.ConnectionError as exc:
            raise _RetryableFailure("unreachable", _connection_reason(exc)) from exc
        except requests.RequestException as exc:
            raise CoinGeckoError(f"request to CoinGecko failed: {_one_line(str(exc))}") from exc
        log.debug("GET %s -> HTTP %s", url, response.status_code)
        return self._decode(path, response)

    def _decode(self, path: str, response: requests.Response) -> Any:
        status = response.status_code
        retry_after = _retry_after_seconds(response, self._wall_clock())
        if status == 429:
            raise _RetryableFailure("rate_limit", "HTTP 429", retry_after)
        if status >= 500:
            raise _RetryableFailure("server", f"HTTP {status}", retry_after)
        if status >= 400:
            raise self._client_error(path, response)
        if not 200 <= status < 300:
            raise CoinGeckoError(f"CoinGecko answered GET {path} with unexpected HTTP {status}")
        try:
            body = response.json()
        except ValueError:  # also a JSON document cut short
            kind = response.headers.get("content-type", "no content type")
            raise _RetryableFailure(
                "bad_body",
                f"a body that is not JSON (HTTP {status}, {_one_line(kind)})",
                retry_after,
            ) from None
        if _is_rate_limit_body(body):
            raise _RetryableFailure("rate_limit", "rate limit in a 200 body", retry_after)
        return body

    def _client_error(self, path: str, response: requests.Response) -> CoinGeckoError:
        """The error for a 4xx other than 429: these are not retried."""
        status = response.status_code
        message = _response_message(response)
        detail = f"HTTP {status}: {message}" if message else f"HTTP {status}"
        try:
            code = _error_code(response.json())
        except ValueError:
            code = None
        if code == HISTORY_LIMIT_ERROR_CODE:
            return HistoryLimitError(
                f"CoinGecko refused GET {path} ({detail}): keyless and demo plans reach "
                "365 days of history; ask for fewer days or use a pro key (COINGECKO_API_PLAN=pro)"
            )
        if status in (401, 403):
            if self.settings.coingecko_api_key:
                cause = f"the {self.settings.coingecko_api_plan} API key was not accepted"
            else:
                cause = "no API key was sent"
            return CoinGeckoError(
                f"CoinGecko refused GET {path} ({detail}): {cause}; "
                "set COINGECKO_API_KEY and COINGECKO_API_PLAN=demo|pro to match"
            )
        if status == 404:
            return NotFoundError(f"CoinGecko found nothing at {path} ({detail}); check the coin id")
        return CoinGeckoError(f"CoinGecko rejected GET {path} ({detail})")

    def _wait_seconds(self, state: RetryCallState) -> float:
        """Exponential backoff (from COINGECKO_RETRY_WAIT_MIN_SECONDS, doubling, at most
        COINGECKO_RETRY_WAIT_MAX_SECONDS) plus jitter, but never less than the server's
        `retry-after`."""
        attempt = state.attempt_number
        low, high = self.settings.retry_wait_min_seconds, self.settings.retry_wait_max_seconds
        backoff = min(high, low * 2 ** (attempt - 1))
        wait = backoff + self._jitter() * min(JITTER_SECONDS, backoff)
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, _RetryableFailure) and failure.retry_after_seconds is not None:
            wait = max(wait, failure.retry_after_seconds)
        return wait

    def _log_retry(self, path: str, state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "CoinGecko GET %s failed (%s); retry %d of %d in %.1f s",
            path,
            failure.reason if isinstance(failure, _RetryableFailure) else failure,
            state.attempt_number,
            self.settings.max_retries,
            wait,
        )

    def _final_error(self, path: str, failure: _RetryableFailure) -> CoinGeckoError:
        retries = self.settings.max_retries
        if failure.kind == "rate_limit":
            return RateLimitError(
                f"CoinGecko rate limit did not lift after {retries} retries; "
                "lower COINGECKO_CALLS_PER_MINUTE or add an API key"
            )
        if failure.kind == "unreachable":
            return CoinGeckoError(
                f"cannot reach CoinGecko at {self.base_url}: {failure.reason}; "
                "check the network or COINGECKO_BASE_URL"
            )
        if failure.kind == "bad_body":
            return CoinGeckoError(
                f"CoinGecko answered GET {path} with {failure.reason} after {retries} retries; "
                "try again later"
            )
        return CoinGeckoError(
            f"CoinGecko failed GET {path} with {failure.reason} after {retries} retries; "
            "try again later"
        )


def _connection_reason(exc: Exception) -> str:
    """The innermost cause of a connection failure ("Connection refused"), not urllib3's essay."""
    inner: BaseException = exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__
    text = str(inner)
    if "]" in text and text.startswith("<"):
        text = text.split(">: ", 1)[-1]
    for marker in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "Temporary failure in name resolution",
        "Network is unreachable",
    ):
        if marker in str(exc) or marker in text:
            return marker.lower() if marker != "Connection refused" else "connection refused"
    return _one_line(text)
