"""The API's launcher (python -m crypto_etl.api.serve): API_WORKERS real uvicorn workers, with
prometheus-client's multiprocess mode so that /metrics adds up the requests every worker served."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from api_seed import seed
from conftest import ROOT

from crypto_etl.api.serve import cpu_count, prepare_metrics_dir, worker_count

HEALTH_200 = re.compile(
    r'^crypto_api_requests_total\{method="GET",route="/health",status="200"\} (\S+)$', re.M
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _served_pids(metrics_dir: Path) -> set[str]:
    """The workers that counted a request: each writes counter_<pid>.db on its first count."""
    return {p.stem.split("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}


def test_metrics_add_up_the_requests_of_two_workers(sqlite_url, tmp_path):
    seed(sqlite_url)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left from an earlier run")
    port = _free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DATABASE_URL": sqlite_url,
        "API_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "crypto_etl.api.serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    sent = 0
    try:
        deadline = time.monotonic() + 90
        while True:  # until both workers answer (each request on a new connection)
            try:
                response = httpx.get(f"{base}/health", timeout=5)
                assert response.status_code == 200
                sent += 1
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.1)
            if len(_served_pids(metrics_dir)) >= 2:
                break
            assert time.monotonic() < deadline, "a second worker never answered"
        assert "999999" not in _served_pids(metrics_dir)  # the old file was cleared at start
        totals = set()
        for _ in range(4):  # whichever worker answers /metrics, it counts both workers' requests
            body = httpx.get(f"{base}/metrics", timeout=10).text
            totals.add(float(HEALTH_200.search(body).group(1)))
        assert totals == {float(sent)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_workers_default_to_the_cpus_and_bad_values_name_the_variable():
    assert worker_count({}, 3) == 3
    assert worker_count({"API_WORKERS": " "}, 3) == 3
    assert worker_count({"API_WORKERS": "2"}, 8) == 2
    for bad in ("0", "-1", "two", "65", "1.5"):
        with pytest.raises(ValueError, match="API_WORKERS"):
            worker_count({"API_WORKERS": bad}, 2)


def test_cpu_count_follows_a_container_quota(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")
    assert cpu_count(cpu_max) == min(2, cpu_count(tmp_path / "none"))
    cpu_max.write_text("max 100000\n")
    assert cpu_count(cpu_max) == cpu_count(tmp_path / "none") >= 1


def test_metrics_folder_is_emptied_only_for_several_workers(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "gauge_1.db").write_text("old")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    assert prepare_metrics_dir(env, 2) == folder
    assert list(folder.iterdir()) == []
    assert prepare_metrics_dir({}, 1) is None
    env = {}
    assert prepare_metrics_dir(env, 2) is not None
    assert env["PROMETHEUS_MULTIPROC_DIR"]


def test_bad_worker_count_stops_the_launcher_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "crypto_etl.api.serve"],
        env={"PATH": "/usr/bin:/bin", "API_WORKERS": "many"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: API_WORKERS must be a whole number from 1 to 64, got 'many'"
    ]
