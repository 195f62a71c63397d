"""The yardstick of bench/bench_api.py: a bare FastAPI app whose async routes return fixed bytes
(the API's own answers, captured by the benchmark), served by uvicorn like the API itself.

    BARE_BODIES=/tmp/bodies uvicorn bare_app:app --app-dir bench

Each file NAME.json in BARE_BODIES is served at /NAME as application/json.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Response

app = FastAPI()


def _add_route(name: str, body: bytes) -> None:
    async def answer() -> Response:
        return Response(body, media_type="application/json")

    app.add_api_route(f"/{name}", answer, methods=["GET"])


for _file in sorted(Path(os.environ.get("BARE_BODIES", ".")).glob("*.json")):
    _add_route(_file.stem, _file.read_bytes())
