"""A small fake of the CoinGecko API v3 over real HTTP, for end-to-end tests of the CLI.

It serves /coins/markets (paginated like CoinGecko), /coins/{id}/market_chart/range and
/coins/{id}/ohlc from in-memory data, records every request, and can be told to fail the next
requests with given statuses (429 with retry-after, 5xx, 401, ...).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakeCoinGecko:
    def __init__(self, markets: list[dict[str, Any]] | None = None, port: int = 0) -> None:
        self.markets: list[dict[str, Any]] = list(markets or [])
        self.charts: dict[str, dict[str, list]] = {}  # coin -> {prices, market_caps, total_volumes}
        self.ohlc: dict[str, list[list]] = {}  # coin -> [[ms, o, h, l, c], ...] (finest data)
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.failures: deque[tuple[int, str, dict[str, str]]] = deque()
        self.unknown_coins_fail_with: int = 404
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
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

    def start(self) -> FakeCoinGecko:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeCoinGecko:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.requests]

    # -- request handling ----------------------------------------------------------------------
    def _respond(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
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
            return 200, self.markets[start : start + per_page]
        if len(parts) >= 3 and parts[0] == "coins":
            coin = parts[1]
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

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(split.query).items()}
                with fake._lock:
                    fake.requests.append((split.path, query, dict(self.headers)))
                    failure = fake.failures.popleft() if fake.failures else None
                if failure is not None:
                    status, body, headers = failure
                    self._send(status, body.encode(), headers)
                    return
                status, payload = fake._respond(split.path, query)
                self._send(status, json.dumps(payload).encode(), {})

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
    import time
    from datetime import UTC, datetime
    from pathlib import Path

    parser = argparse.ArgumentParser(description="A local fake of the CoinGecko API v3")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    data = Path(__file__).resolve().parent / "data"
    rows = json.loads((data / "coins_markets_usd_250.json").read_text())
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for row in rows:  # recorded in 2023: present them as fresh
        row["last_updated"] = now
    fake = FakeCoinGecko(rows, port=args.port).start()
    print(f"fake CoinGecko at {fake.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
