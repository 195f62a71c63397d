"""The API's edge: the ASGI layer every HTTP request passes before FastAPI routes it.

A GET the edge has seen answered before, for the same data, is answered from memory, without
routing, parameter validation, dependencies or the thread pool: the stored answer holds the
body, its gzip form (made once, the first time a client accepts it) and its headers. Everything
else goes to FastAPI unchanged; on the way back the edge adds conditional-request and
compression headers, and keeps the answers of the cacheable routes for next time.

What holds on both paths:
- the stored answer is the routed answer, byte for byte (the edge keeps what FastAPI sent);
- a stored answer is used only while the data version it was made under is the current one
  (crypto_etl.api.cache: read every API_CACHE_CHECK_SECONDS), so it is never older than that
  check interval; with API_CACHE_CHECK_SECONDS=0 every request is routed. Answers that depend on
  the clock (a history or candles without `end`) are also kept no longer than the interval;
- the API key is checked as the routes check it; a missing or wrong key is routed (401);
- requests are counted and timed per route template (crypto_etl.api.metrics);
- cacheable answers carry an ETag (the data version, the request and the body) and
  `Cache-Control: max-age=<check interval>`; `If-None-Match` with that tag gets 304, no body;
- answers of at least GZIP_MIN_BYTES are gzip-compressed for clients that accept it.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from anyio import to_thread

from crypto_etl.api.cache import ResponseCache
from crypto_etl.api.metrics import record_request, request_recorder

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GZIP_MIN_BYTES = 1024  # smaller answers gain little and cost a compression each
# zlib's fastest level: a 2.2 MB raw history packs to 30 % in about a quarter of the time level 6
# takes (which packs it to 27 %); the first client asking for an answer waits for it.
GZIP_LEVEL = 1
# Larger bodies are compressed in a worker thread (zlib lets go of the GIL), so that the event
# loop goes on answering meanwhile.
THREAD_GZIP_BYTES = 64 * 1024
STORE_BYTES = 64 * 1024 * 1024  # the stored answers' budget (bodies and gzip forms)

# Route templates whose GET answers depend only on the data (and the request): stored and
# validated by the data version. Those in CLOCK_ROUTES also depend on the clock when the
# request names no `end`.
DATA_ROUTES = frozenset(
    {
        "/api/v1/cryptos",
        "/api/v1/cryptos/top10_market_cap",
        "/api/v1/cryptos/market_cap_vs_volume",
        "/api/v1/cryptos/{coin_id}",
        "/api/v1/cryptos/{coin_id}/history",
        "/api/v1/cryptos/{coin_id}/ohlc",
        "/api/v1/market/summary",
        "/api/v1/market/correlation",
    }
)
CLOCK_ROUTES = frozenset({"/api/v1/cryptos/{coin_id}/history", "/api/v1/cryptos/{coin_id}/ohlc"})
# Answers that never change: stored once, no validator (liveness must not be cached by clients).
STATIC_ROUTES = frozenset({"/health"})
COMPRESSIBLE = (b"application/json", b"text/")


def request_key(path: str, query_string: bytes) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The request as the routes see it: the path and the decoded query parameters ordered by
    name (a stable sort: repeated parameters keep their order, as the last one may win)."""
    if not query_string:
        return path, ()
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return path, tuple(sorted(pairs, key=lambda pair: pair[0]))


def accepts_gzip(value: bytes) -> bool:
    """Whether an Accept-Encoding header allows gzip (a q=0 refuses it)."""
    for part in value.split(b","):
        name, _, params = part.partition(b";")
        if name.strip().lower() in (b"gzip", b"*"):
            q = params.strip().lower()
            if q.startswith(b"q="):
                try:
                    return float(q[2:]) > 0
                except ValueError:
                    return False
            return True
    return False


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """RFC 9110 weak comparison of an If-None-Match header with our (strong) tag."""
    if if_none_match.strip() == b"*":
        return True
    for candidate in if_none_match.split(b","):
        candidate = candidate.strip()
        if candidate.startswith(b"W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


def gzip_bytes(body: bytes) -> bytes:
    """`body` as a gzip member (no file name, time 0: the same bytes for the same body)."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(body) + compressor.flush()


def _without(headers: list[tuple[bytes, bytes]], *names: bytes) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k.lower() not in names]


def _add_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            if b"accept-encoding" not in value.lower():
                headers[i] = (name, value + b", Accept-Encoding")
            return headers
    headers.append((b"vary", b"Accept-Encoding"))
    return headers


@dataclass(slots=True)
class Answer:
    """A routed answer as the edge keeps it: the identity form and, made on demand, the gzip
    form, with the headers of each and of a 304."""

    route: str
    body: bytes
    headers: list[tuple[bytes, bytes]]
    etag: bytes | None
    version: tuple[Any, ...] | None  # None: static, valid whatever the data
    expires: float | None  # the clock (time.monotonic) after which it is not used; None: never
    needs_key: bool
    not_modified_headers: list[tuple[bytes, bytes]]
    ok: Callable[[float], None]  # counts and times a 200 under the route template
    not_modified: Callable[[float], None]  # the same for a 304
    gzip_headers: list[tuple[bytes, bytes]] | None = None
    gzip_body: bytes | None = None
    gzip_source: Answer | None = None  # the stored twin of a routed answer: one compression

    def gzipped(self) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
        """The gzip form (compressed the first time asked), or None when too small to gain."""
        if len(self.body) < GZIP_MIN_BYTES:
            return None
        if self.gzip_headers is None:
            if self.gzip_source is not None:
                self.gzip_body = self.gzip_source.gzipped()[1]  # type: ignore[index]
            else:
                self.gzip_body = gzip_bytes(self.body)
            self.gzip_headers = [
                (b"content-length", str(len(self.gzip_body)).encode()),
                (b"content-encoding", b"gzip"),
                *_without(self.headers, b"content-length"),
            ]
        return self.gzip_headers, self.gzip_body  # type: ignore[return-value]

    @property
    def size(self) -> int:
        """Bytes counted against the store's budget: the body, and half as much again for a
        gzip form to come (JSON compresses to well under half)."""
        return len(self.body) * (3 if len(self.body) >= GZIP_MIN_BYTES else 2) // 2


class Edge:
    """The layer in front of FastAPI (see the module's description); `downstream` routes."""

    def __init__(
        self,
        downstream: ASGIApp,
        *,
        api_key: str | None,
        cors: bool,
        check_seconds: float,
        max_bytes: int = STORE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.downstream = downstream
        self.api_key = api_key.encode() if api_key else None
        self.cors = cors
        self.check_seconds = check_seconds
        self.max_bytes = max_bytes
        self.clock = clock
        self.cache: ResponseCache | None = None  # the app's lifespan sets it
        self.serving = True  # False: every request is routed (answers are still decorated)
        self._answers: OrderedDict[tuple, Answer] = OrderedDict()
        self._bytes = 0
        control = f"max-age={max(0, math.ceil(check_seconds))}"
        if api_key:  # answers for a key holder are not for shared caches
            control = "private, " + control
        self.cache_control = control.encode()

    @property
    def stored_bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        self._answers.clear()
        self._bytes = 0

    def _version(self) -> tuple[Any, ...] | None:
        return None if self.cache is None else self.cache.known_version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.downstream(scope, receive, send)
            return
        started = time.perf_counter()
        accept = if_none_match = key = origin = None
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accept = value
            elif name == b"if-none-match":
                if_none_match = value
            elif name == b"x-api-key":
                key = value
            elif name == b"origin":
                origin = value
        gzip_ok = accept is not None and accepts_gzip(accept)
        if self.serving and scope["method"] == "GET" and not (self.cors and origin is not None):
            answer = self._stored(request_key(scope["path"], scope["query_string"]), key)
            if answer is not None:
                await self._send(send, answer, gzip_ok, if_none_match, started, count=True)
                return
        await self._route(scope, receive, send, gzip_ok, if_none_match, started)

    def _stored(self, request: tuple, key: bytes | None) -> Answer | None:
        """The stored answer to `request` if still valid and the key is right."""
        answer = self._answers.get(request)
        if answer is None:
            return None
        stale = answer.version is not None and (
            self.check_seconds <= 0 or answer.version != self._version()
        )
        if stale or (answer.expires is not None and self.clock() > answer.expires):
            self._drop(request)
            return None
        if (
            answer.needs_key
            and self.api_key is not None
            and (key is None or not hmac.compare_digest(key, self.api_key))
        ):
            return None  # routed: the route answers 401 in the one error shape
        self._answers.move_to_end(request)
        return answer

    async def _send(
        self,
        send: Send,
        answer: Answer,
        gzip_ok: bool,
        if_none_match: bytes | None,
        started: float,
        count: bool,
    ) -> int:
        """Send `answer` (304, gzip or identity); returns the status sent."""
        if if_none_match is not None and answer.etag and etag_matches(if_none_match, answer.etag):
            await send(
                {
                    "type": "http.response.start",
                    "status": 304,
                    "headers": answer.not_modified_headers,
                }
            )
            await send({"type": "http.response.body", "body": b""})
            if count:
                answer.not_modified(time.perf_counter() - started)
            return 304
        headers, body = answer.headers, answer.body
        if gzip_ok:
            if answer.gzip_headers is None and len(answer.body) >= THREAD_GZIP_BYTES:
                packed = await to_thread.run_sync(answer.gzipped)
            else:
                packed = answer.gzipped()
            if packed is not None:
                headers, body = packed
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        if count:
            answer.ok(time.perf_counter() - started)
        return 200

    async def _route(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        gzip_ok: bool,
        if_none_match: bytes | None,
        started: float,
    ) -> None:
        """Route the request through FastAPI; decorate (and keep) what comes back."""
        version_before = self._version()
        status = 500
        start: Message | None = None
        passing = False

        async def intercept(message: Message) -> None:
            nonlocal status, start, passing
            if passing:
                await send(message)
            elif message["type"] == "http.response.start":
                start, status = message, message["status"]
            elif message.get("more_body", False):  # a streamed body goes out as it is
                passing = True
                await send(start)
                await send(message)
            else:
                status = await self._finish(
                    scope,
                    send,
                    start,
                    message.get("body", b""),
                    version_before,
                    gzip_ok,
                    if_none_match,
                    started,
                )

        try:
            await self.downstream(scope, receive, intercept)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            record_request(scope["method"], route, status, time.perf_counter() - started)

    async def _finish(
        self,
        scope: Scope,
        send: Send,
        start: Message,
        body: bytes,
        version_before: tuple[Any, ...] | None,
        gzip_ok: bool,
        if_none_match: bytes | None,
        started: float,
    ) -> int:
        """Send a routed answer (whole in `body`); returns the status sent."""
        status = start["status"]
        route = getattr(scope.get("route"), "path", None)
        if status == 200 and scope["method"] == "GET" and route in KEPT_ROUTES:
            request = request_key(scope["path"], scope["query_string"])
            answer = self._answer(request, route, list(start["headers"]), body, version_before)
            if answer is not None:
                return await self._send(send, answer, gzip_ok, if_none_match, started, False)
        headers = list(start["headers"])
        if len(body) >= GZIP_MIN_BYTES and _compressible(headers):
            headers = _add_vary(headers)
            if gzip_ok:
                if len(body) >= THREAD_GZIP_BYTES:
                    body = await to_thread.run_sync(gzip_bytes, body)
                else:
                    body = gzip_bytes(body)
                headers = [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-encoding", b"gzip"),
                    *_without(headers, b"content-length"),
                ]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status

    def _answer(
        self,
        request: tuple,
        route: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        version_before: tuple[Any, ...] | None,
    ) -> Answer | None:
        """The routed answer with its validators, kept when it may be served again; None when
        the route's answer is not what the edge expects (then it goes out untouched)."""
        ok = request_recorder("GET", route, 200)
        not_modified = request_recorder("GET", route, 304)
        if route in STATIC_ROUTES:
            answer = Answer(route, body, headers, None, None, None, False, [], ok, not_modified)
            self._keep(request, answer)
            return answer
        version = self._version()
        steady = version is not None and version_before in (None, version)
        clocked = route in CLOCK_ROUTES and not any(name == "end" for name, _ in request[1])
        etag = None
        if steady:
            digest = hashlib.blake2b(repr((version, request)).encode(), digest_size=16)
            if clocked:  # the answer moves with the clock: the tag follows the body too
                digest.update(body)
            etag = b'"' + digest.hexdigest().encode() + b'"'
        validators = [(b"cache-control", self.cache_control)]
        if etag is not None:
            validators.insert(0, (b"etag", etag))
        routed = headers if _has(headers, b"x-cache") else [*headers, (b"x-cache", b"miss")]
        hit = [(k, b"hit") if k.lower() == b"x-cache" else (k, v) for k, v in routed]
        answer = Answer(
            route=route,
            body=body,
            headers=_add_vary([*routed, *validators]),
            etag=etag,
            version=version,
            expires=self.clock() + self.check_seconds if clocked else None,
            needs_key=self.api_key is not None and route.startswith("/api/"),
            not_modified_headers=_add_vary(list(validators)),
            ok=ok,
            not_modified=not_modified,
        )
        if steady and self.check_seconds > 0:
            kept = replace(answer, headers=_add_vary([*hit, *validators]))
            self._keep(request, kept)
            if len(body) >= GZIP_MIN_BYTES:  # compressed once for both, when first asked for
                answer.gzip_source = kept
        return answer

    def _keep(self, request: tuple, answer: Answer) -> None:
        if answer.size > self.max_bytes // 4:
            return
        self._drop(request)
        self._answers[request] = answer
        self._bytes += answer.size
        while self._bytes > self.max_bytes and self._answers:
            _, oldest = self._answers.popitem(last=False)
            self._bytes -= oldest.size

    def _drop(self, request: tuple) -> None:
        answer = self._answers.pop(request, None)
        if answer is not None:
            self._bytes -= answer.size


KEPT_ROUTES = DATA_ROUTES | STATIC_ROUTES


def _has(headers: list[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(k.lower() == name for k, _ in headers)


def _compressible(headers: list[tuple[bytes, bytes]]) -> bool:
    """A JSON or text answer not encoded already."""
    kind = b""
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-encoding":
            return False
        if lowered == b"content-type":
            kind = value.lower()
    return kind.startswith(COMPRESSIBLE)
