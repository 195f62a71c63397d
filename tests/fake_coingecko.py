"""A small fake of the CoinGecko API v3 over real HTTP, for end-to-end tests of the CLI.

It serves /coins/markets (paginated like CoinGecko; it can be told to serve a coin's price some
times off, a zero market cap, any other field changed, or every row's last_updated stale),
/coins/{id}/market_chart/range and /coins/{id}/ohlc from in-memory data, records every request
(and when it arrived, in `request_times`, time.monotonic() seconds), and can be told to fail the
next requests with given statuses (429 with retry-after, 5xx, 401, ...) or every request for a
coin.
With `misbehave_every_other` set it misbehaves on every other request (the 1st, 3rd, 5th, ...),
cycling through the transient faults CoinGecko and the proxies in front of it produce
(`FAULT_KINDS`): a body cut short, a 200 that is not JSON, a connection reset mid-body, 5xx, 429 in
its three forms with `retry-after` in seconds or as an HTTP-date, and an answer held past the
client's timeout.

With `now` set it behaves like CoinGecko's history endpoints at that moment: nothing after `now`;
market_chart/range answers in 5-minute steps for a window of up to a day ending now, hourly for
other windows up to 90 days, daily beyond; ohlc answers days=1 with 30-minute candles, 7 to 30
with 4-hour candles, more with 4-day candles (`ohlc[coin]` then maps interval to candles); and
without a pro key, anything older than 365 days gets CoinGecko's 401 with error 10012.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DAY_MS = 86_400_000
FAULT_KINDS = (
    "truncated",  # 200, Content-Length promises more than is sent, then the connection closes
    "not_json",  # 200 with a proxy's HTML error page
    "reset",  # half the body, then a TCP reset
    "http_500",
    "http_503_retry_after_seconds",
    "http_429_json_retry_after_date",  # a date in the past: retry at once
    "http_429_html",
    "status_429_in_a_200",
    "timeout",  # no answer until after the client's timeout
)


def history_limit_body() -> dict[str, Any]:
    """CoinGecko's answer to a keyless or demo request reaching back more than 365 days."""
    return {
        "error": {
            "status": {
                "timestamp": "2024-04-20T22:00:05.123+00:00",
                "error_code": 10012,
                "error_message": "Your request exceeds the allowed time range. Public API users "
                "are limited to querying historical data within the past 365 days. Upgrade to a "
                "paid plan to enjoy full historical data access: "
                "https://www.coingecko.com/en/api/pricing. ",
            }
        }
    }


class FakeCoinGecko:
    def __init__(
        self, markets: list[dict[str, Any]] | None = None, port: int = 0, host: str = "127.0.0.1"
    ) -> None:
        self.markets: list[dict[str, Any]] = list(markets or [])
        self.charts: dict[str, dict[str, list]] = {}  # coin -> {prices, market_caps, total_volumes}
        self.ohlc: dict[str, list[list]] = {}  # coin -> [[ms, o, h, l, c], ...] (finest data)
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.request_times: list[float] = []  # time.monotonic() at each request's arrival
        self.failures: deque[tuple[int, str, dict[str, str]]] = deque()
        self.unknown_coins_fail_with: int = 404
        self.fail_coins: dict[str, tuple[int, str]] = {}  # coin -> (status, body), every request
        self.now: datetime | None = None  # set: emulate CoinGecko's history rules at this time
        self.keyless_history_days = 365
        self.misbehave_every_other = False
        self.hold_seconds = 1.0  # how long a "timeout" fault keeps the client waiting
        self.faults: list[str] = []  # the fault kinds served, in order
        self._requests_seen = 0
        self._released = threading.Event()
        self.row_changes: dict[str, dict[str, Any]] = {}  # coin -> fields served instead
        self.stale_by: timedelta | None = None  # serve every last_updated this much in the past
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v3"

    def fail_next(
        self, status: int, body: str = "", headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        for _ in range(times):
            self.failures.append((status, body, headers or {}))

    # -- faults in the market rows ---------------------------------------------------------------
    def serve_price_off(self, coin: str, factor: float = 10.0) -> None:
        """Serve `coin` with its price `factor` times what it is (market cap unchanged)."""
        row = next(r for r in self.markets if r["id"] == coin)
        self.row_changes.setdefault(coin, {})["current_price"] = row["current_price"] * factor

    def serve_zero_market_cap(self, coin: str) -> None:
        self.row_changes.setdefault(coin, {})["market_cap"] = 0

    def serve_changed(self, coin: str, **fields: Any) -> None:
        self.row_changes.setdefault(coin, {}).update(fields)

    def serve_stale(self, age: timedelta) -> None:
        """Serve every row with last_updated `age` before the real time."""
        self.stale_by = age

    def serve_normally(self) -> None:
        self.row_changes.clear()
        self.stale_by = None

    def _served(self, row: dict[str, Any]) -> dict[str, Any]:
        changes = self.row_changes.get(row.get("id"), {})
        if not changes and self.stale_by is None:
            return row
        out = {**row, **changes}
        if self.stale_by is not None:
            when = datetime.now(UTC) - self.stale_by
            out["last_updated"] = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return out

    def start(self) -> FakeCoinGecko:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeCoinGecko:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.requests]

    def history_requests(self) -> list[tuple[str, dict[str, str]]]:
        """(path, query) of every market_chart/range and ohlc request, in order."""
        return [(p, q) for p, q, _ in self.requests if p.endswith(("/range", "/ohlc"))]

    # -- request handling ----------------------------------------------------------------------
    def _respond(
        self, path: str, query: dict[str, str], headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["api", "v3"]:
            return 404, {"error": "not found"}
        parts = parts[2:]
        if parts == ["coins", "markets"]:
            if "vs_currency" not in query:
                return 400, {"error": "Missing parameter vs_currency"}
            per_page = min(int(query.get("per_page", 100)), 250)
            page = int(query.get("page", 1))
            start = (page - 1) * per_page
            return 200, [self._served(row) for row in self.markets[start : start + per_page]]
        if len(parts) >= 3 and parts[0] == "coins":
            coin = parts[1]
            if coin in self.fail_coins:
                status, body = self.fail_coins[coin]
                return status, json.loads(body) if body else {}
            pro = any(k.lower() == "x-cg-pro-api-key" for k in headers or {})
            if self.now is not None and parts[2:] == ["market_chart", "range"]:
                return self._chart_range(coin, query, pro)
            if self.now is not None and parts[2:] == ["ohlc"]:
                return self._ohlc(coin, query, pro)
            if parts[2:] == ["market_chart", "range"]:
                if coin not in self.charts:
                    return self.unknown_coins_fail_with, {"error": "coin not found"}
                lo, hi = float(query["from"]) * 1000, float(query["to"]) * 1000
                chart = self.charts[coin]
                return 200, {
                    key: [p for p in chart.get(key, []) if lo <= p[0] <= hi]
                    for key in ("prices", "market_caps", "total_volumes")
                }
            if parts[2:] == ["ohlc"]:
                if coin not in self.ohlc:
                    return self.unknown_coins_fail_with, {"error": "coin not found"}
                return 200, self.ohlc[coin]
        return 404, {"error": "not found"}

    # -- CoinGecko's history rules, when `now` is set ------------------------------------------
    def _now_ms(self) -> int:
        return int(self.now.timestamp() * 1000)

    def _beyond_plan(self, from_ms: float, pro: bool) -> bool:
        return not pro and from_ms < self._now_ms() - self.keyless_history_days * DAY_MS

    def _chart_range(self, coin: str, query: dict[str, str], pro: bool) -> tuple[int, Any]:
        if coin not in self.charts:
            return self.unknown_coins_fail_with, {"error": "coin not found"}
        lo, hi = float(query["from"]) * 1000, float(query["to"]) * 1000
        if self._beyond_plan(lo, pro):
            return 401, history_limit_body()
        now = self._now_ms()
        if hi - lo <= DAY_MS and hi >= now - 60_000:
            step = 5 * 60_000
        elif hi - lo <= 90 * DAY_MS:
            step = 3600_000
        else:
            step = DAY_MS
        out = {}
        for key in ("prices", "market_caps", "total_volumes"):
            points = self.charts[coin].get(key, [])
            times = [p[0] for p in points]  # sorted: the tests build them in time order
            window = points[bisect_left(times, lo) : bisect_right(times, min(hi, now))]
            out[key] = [p for p in window if p[0] % step == 0]
        return 200, out

    def _ohlc(self, coin: str, query: dict[str, str], pro: bool) -> tuple[int, Any]:
        if coin not in self.ohlc:
            return self.unknown_coins_fail_with, {"error": "coin not found"}
        days = query.get("days", "")
        allowed = {"1", "7", "14", "30", "90", "180", "365"} | ({"max"} if pro else set())
        if days not in allowed:
            if days == "max" or (days.isdigit() and int(days) > self.keyless_history_days):
                return 401, history_limit_body()
            return 400, {"error": "invalid days"}
        now = self._now_ms()
        lo = 0 if days == "max" else now - int(days) * DAY_MS
        interval = "30m" if days in ("1", "2") else "4h" if days in ("7", "14", "30") else "4d"
        return 200, [c for c in self.ohlc[coin][interval] if lo <= c[0] <= now]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(split.query).items()}
                arrived = time.monotonic()
                with fake._lock:
                    fake.requests.append((split.path, query, dict(self.headers)))
                    fake.request_times.append(arrived)
                    failure = fake.failures.popleft() if fake.failures else None
                    fault = None
                    if fake.misbehave_every_other and failure is None:
                        fake._requests_seen += 1
                        if fake._requests_seen % 2 == 1:
                            fault = FAULT_KINDS[len(fake.faults) % len(FAULT_KINDS)]
                            fake.faults.append(fault)
                if fault is not None:
                    status, payload = fake._respond(split.path, query, dict(self.headers))
                    try:
                        self._misbehave(fault, json.dumps(payload).encode())
                    except OSError:  # the client gave up first (a timeout): as intended
                        self.close_connection = True
                    return
                if failure is not None:
                    status, body, headers = failure
                    self._send(status, body.encode(), headers)
                    return
                status, payload = fake._respond(split.path, query, dict(self.headers))
                self._send(status, json.dumps(payload).encode(), {})

            def _misbehave(self, fault: str, body: bytes) -> None:
                past = format_datetime(datetime(2020, 1, 1, tzinfo=UTC), usegmt=True)
                rate_limited = json.dumps({"status": {"error_code": 429}}).encode()
                html = b"<html><body><h1>502 Bad Gateway</h1>cloudflare</body></html>"
                if fault in ("truncated", "reset"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if fault == "reset":  # SO_LINGER 0: close() sends a RST, not a FIN
                        linger = struct.pack("ii", 1, 0)
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.close_connection = True
                    self.connection.close()
                elif fault == "not_json":
                    self._send(200, html, {})
                elif fault == "http_500":
                    self._send(500, b"Internal Server Error", {})
                elif fault == "http_503_retry_after_seconds":
                    self._send(503, b'{"error": "maintenance"}', {"Retry-After": "0"})
                elif fault == "http_429_json_retry_after_date":
                    self._send(429, rate_limited, {"Retry-After": past})
                elif fault == "http_429_html":
                    page = b"<html><title>429 Too Many Requests</title></html>"
                    self._send(429, page, {})
                elif fault == "status_429_in_a_200":
                    self._send(200, rate_limited, {})
                elif fault == "timeout":
                    fake._released.wait(fake.hold_seconds)
                    self._send(200, body, {})
                else:
                    raise ValueError(f"unknown fault {fault!r}")

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                is_html = body.lstrip().startswith(b"<")
                self.send_header("Content-Type", "text/html" if is_html else "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler


def main() -> None:
    """Serve recorded CoinGecko responses on a local port, for trying the pipeline offline:

    python tests/fake_coingecko.py --port 8765
    COINGECKO_BASE_URL=http://127.0.0.1:8765/api/v3 python etl.py run
    """
    import argparse
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(description="A local fake of the CoinGecko API v3")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)"
    )
    parser.add_argument(
        "--wait", action="store_true", help="only wait (up to 30 s) until a fake answers on --port"
    )
    args = parser.parse_args()
    if args.wait:
        import socket

        for _ in range(150):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", args.port)) == 0:
                    return
            time.sleep(0.2)
        raise SystemExit(f"no fake CoinGecko answered on port {args.port}")
    data = Path(__file__).resolve().parent / "data"
    rows = json.loads((data / "coins_markets_usd_250.json").read_text())
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for row in rows:  # recorded in 2023: present them as fresh
        row["last_updated"] = now
    fake = FakeCoinGecko(rows, port=args.port, host=args.host)
    # Synthesised history for the 25 largest coins, so backfill, candles and charts have data.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from history_data import serve_history

    bitcoin = rows[0]["current_price"]
    scales = {row["id"]: row["current_price"] / bitcoin for row in rows[:25]}
    serve_history(fake, scales, days=100, now=datetime.now(UTC).replace(second=0, microsecond=0))
    fake.start()
    print(f"fake CoinGecko at {fake.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
