"""The API's edge (crypto_etl.api.edge): stored answers byte for byte as routed, conditional
requests (ETag, 304), Cache-Control, gzip made once, the API key and the metrics on the edge path,
and answers never kept past the data version or the check interval."""

from __future__ import annotations

import gzip

import pytest
from api_seed import API_KEY, END, START, api_client, start_run
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session

from crypto_etl.api import edge as edge_module
from crypto_etl.api.edge import accepts_gzip, etag_matches, request_key

HISTORY = f"/api/v1/cryptos/bitcoin/history?start={START}&end={END}"
CACHEABLE = [
    "/api/v1/cryptos",
    "/api/v1/cryptos?limit=5&order_by=market_cap&q=bit",
    "/api/v1/cryptos/top10_market_cap",
    "/api/v1/cryptos/market_cap_vs_volume?limit=20",
    "/api/v1/cryptos/bitcoin",
    "/api/v1/market/summary",
    "/api/v1/market/correlation?top_n=3&days=30",
    HISTORY,
    f"/api/v1/cryptos/bitcoin/history?start={START}&end={END}&interval=raw&ma=3&ma=5",
    f"/api/v1/cryptos/bitcoin/ohlc?start={START}&end={END}",
]
IDENTITY = {"Accept-Encoding": "identity"}


def _count(route: str, status: str) -> float:
    labels = {"method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("crypto_api_requests_total", labels) or 0.0


@pytest.mark.parametrize("path", CACHEABLE)
def test_edge_answers_are_the_routed_answers_byte_for_byte(client, path):
    """The same request routed through FastAPI (its own cache hit) and answered by the edge:
    the same status, headers and body."""
    client.app.edge.serving = False
    client.get(path, headers=IDENTITY)
    routed = client.get(path, headers=IDENTITY)
    client.app.edge.serving = True
    served = client.get(path, headers=IDENTITY)
    assert routed.status_code == served.status_code == 200
    assert served.headers["x-cache"] == "hit"
    assert served.content == routed.content
    if "history" not in path and "ohlc" not in path:  # these routes keep no cache of their own
        assert list(served.headers.items()) == list(routed.headers.items())


@pytest.mark.parametrize("path", CACHEABLE)
def test_cacheable_answers_carry_etag_and_cache_control(client, path):
    first = client.get(path)
    second = client.get(path)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34
    assert second.headers["etag"] == etag
    assert first.headers["cache-control"] == "max-age=1"  # API_CACHE_CHECK_SECONDS, 1 by default
    assert "Accept-Encoding" in first.headers["vary"]


@pytest.mark.parametrize("serving", [True, False])
def test_if_none_match_gets_304_without_body(client, serving):
    client.app.edge.serving = serving
    etag = client.get("/api/v1/cryptos").headers["etag"]
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get("/api/v1/cryptos", headers={"If-None-Match": value})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == "max-age=1"
    changed = client.get("/api/v1/cryptos", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200
    assert changed.headers["etag"] == etag


def test_etag_differs_by_request_and_follows_the_data_version(seeded_url):
    with api_client(seeded_url, api_cache_check_seconds=3600) as client:
        first = client.get("/api/v1/cryptos").headers["etag"]
        assert client.get("/api/v1/cryptos?limit=10").headers["etag"] != first
        start_run(seeded_url)
        assert client.get("/api/v1/cryptos").headers["x-cache"] == "hit"  # within the interval
        cache = client.app.state.cache
        with Session(client.app.state.engine) as session:
            cache._read_version(session)  # what the background check does every interval
        again = client.get("/api/v1/cryptos", headers={"If-None-Match": first})
        assert again.status_code == 200
        assert again.headers["x-cache"] == "miss"
        assert again.headers["etag"] != first
        assert again.headers["cache-control"] == "max-age=3600"


def test_gzip_when_accepted_compressed_once(client, monkeypatch):
    calls = []
    real = edge_module.gzip_bytes

    def counting(body: bytes) -> bytes:
        calls.append(len(body))
        return real(body)

    monkeypatch.setattr(edge_module, "gzip_bytes", counting)
    plain = client.get("/api/v1/cryptos", headers=IDENTITY)
    assert "content-encoding" not in plain.headers
    for _ in range(3):
        with client.stream("GET", "/api/v1/cryptos", headers={"Accept-Encoding": "gzip"}) as r:
            raw = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "gzip"
        assert int(r.headers["content-length"]) == len(raw) < len(plain.content) / 3
        assert gzip.decompress(raw) == plain.content
    assert calls == [len(plain.content)]
    # httpx (like requests, which the dashboard uses, and curl --compressed) decodes it
    assert client.get("/api/v1/cryptos").content == plain.content


def test_small_and_refused_answers_are_not_compressed(client):
    health = client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in health.headers
    assert health.json() == {"status": "ok"}
    refused = client.get("/api/v1/cryptos", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in refused.headers


def test_uncached_large_answers_are_compressed_too(client):
    with client.stream("GET", "/openapi.json", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == client.get("/openapi.json", headers=IDENTITY).content


def test_edge_counts_requests_per_route_template(client):
    before = _count("/api/v1/cryptos/{coin_id}", "200")
    for _ in range(3):
        assert client.get("/api/v1/cryptos/bitcoin").status_code == 200
    etag = client.get("/api/v1/cryptos/bitcoin").headers["etag"]
    not_modified = _count("/api/v1/cryptos/{coin_id}", "304")
    client.get("/api/v1/cryptos/bitcoin", headers={"If-None-Match": etag})
    assert _count("/api/v1/cryptos/{coin_id}", "200") == before + 4
    assert _count("/api/v1/cryptos/{coin_id}", "304") == not_modified + 1
    health = _count("/health", "200")
    client.get("/health")
    client.get("/health")
    assert _count("/health", "200") == health + 2


def test_edge_checks_the_api_key(seeded_url):
    with api_client(seeded_url, api_key=API_KEY) as client:
        good = {"X-API-Key": API_KEY}
        assert client.get("/api/v1/cryptos", headers=good).headers["x-cache"] == "miss"
        hit = client.get("/api/v1/cryptos", headers=good)
        assert hit.headers["x-cache"] == "hit"
        assert hit.headers["cache-control"] == "private, max-age=1"
        for headers in ({}, {"X-API-Key": "wrong"}):
            response = client.get("/api/v1/cryptos", headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
            assert "etag" not in response.headers
        assert client.get("/health").status_code == 200


def test_answers_without_end_last_no_longer_than_the_check_interval(seeded_url):
    now = [1000.0]
    with api_client(seeded_url, api_cache_check_seconds=5) as client:
        client.app.edge.clock = lambda: now[0]
        path = "/api/v1/cryptos/bitcoin/history?interval=1d"
        first = client.get(path)
        assert client.get(path).headers["x-cache"] == "hit"
        now[0] += 5.5
        again = client.get(path)
        assert again.headers["x-cache"] == "miss"
        assert again.json()["end"] >= first.json()["end"]
        with_end = client.get(HISTORY)
        now[0] += 3600
        assert client.get(HISTORY).headers["x-cache"] == "hit"
        assert client.get(HISTORY).content == with_end.content


def test_no_check_interval_routes_every_request(seeded_url):
    with api_client(seeded_url, api_cache_check_seconds=0) as client:
        first = client.get("/api/v1/cryptos")
        second = client.get("/api/v1/cryptos", headers={"If-None-Match": first.headers["etag"]})
        assert second.status_code == 304
        assert first.headers["cache-control"] == "max-age=0"
        start_run(seeded_url)
        third = client.get("/api/v1/cryptos", headers={"If-None-Match": first.headers["etag"]})
        assert third.status_code == 200
        assert third.headers["x-cache"] == "miss"


def test_errors_and_validation_are_routed_unchanged(client):
    for _ in range(2):
        response = client.get("/api/v1/cryptos?limit=0")
        assert response.status_code == 422
        assert "etag" not in response.headers
        assert client.get("/api/v1/cryptos/nope-coin").status_code == 404
    assert client.head("/health").status_code == client.head("/health").status_code


def test_store_keeps_to_its_byte_budget(client):
    client.app.edge.max_bytes = 200_000
    for limit in range(1, 40):
        client.get(f"/api/v1/cryptos?limit={limit}")
    assert 0 < client.app.edge.stored_bytes <= 200_000


def test_request_key_and_header_parsing():
    assert request_key("/a", b"") == ("/a", ())
    assert request_key("/a", b"b=2&a=1&ma=7&ma=3") == request_key("/a", b"a=1&ma=7&b=2&ma=3")
    assert request_key("/a", b"limit=1&limit=2") != request_key("/a", b"limit=2&limit=1")
    assert request_key("/a", b"q=b%69t") == request_key("/a", b"q=bit")
    assert accepts_gzip(b"gzip, deflate, br")
    assert accepts_gzip(b"deflate, gzip;q=0.5")
    assert not accepts_gzip(b"gzip;q=0")
    assert not accepts_gzip(b"br, deflate")
    assert etag_matches(b'W/"x", "y"', b'"x"')
    assert not etag_matches(b'"y"', b'"x"')


def test_large_answers_are_compressed_in_a_thread(client, monkeypatch):
    monkeypatch.setattr(edge_module, "THREAD_GZIP_BYTES", 0)
    for path in ("/api/v1/cryptos", "/openapi.json", "/api/v1/cryptos"):
        plain = client.get(path, headers=IDENTITY).content
        with client.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as response:
            raw = b"".join(response.iter_raw())
        assert response.headers["content-encoding"] == "gzip"
        assert gzip.decompress(raw) == plain
