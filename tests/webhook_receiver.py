"""A real webhook receiver for the tests: an HTTP server on 127.0.0.1 in a thread that keeps every
POST it gets and answers with the statuses it is told (200 once the list is used up)."""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses: deque[int] = deque(statuses or [])
        self.requests: list[dict[str, Any]] = []  # {"path", "status", "body"} of every POST
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/hook/T000/SECRET-PATH") -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    @property
    def accepted(self) -> list[Any]:
        """The bodies answered with a 2xx, in order."""
        return [r["body"] for r in self.requests if 200 <= r["status"] < 300]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    status = receiver.statuses.popleft() if receiver.statuses else 200
                    receiver.requests.append(
                        {"path": self.path, "status": status, "body": json.loads(raw)}
                    )
                body = b"ok" if status < 300 else b"error"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


class Silent:
    """A webhook that is down without refusing: it accepts connections and never answers (the
    worst case for a timeout)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook/SECRET-PATH"

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()
