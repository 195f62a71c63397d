"""The API's launcher: `python -m crypto_etl.api.serve [uvicorn options]`.

Runs `uvicorn api:app` with API_WORKERS worker processes (default: the CPUs this process may use,
within a container's CPU quota) and, with more than one worker, prometheus-client's multiprocess
mode: PROMETHEUS_MULTIPROC_DIR (default: a folder under the system's temporary folder) is emptied
at start, each worker writes its counts there, and /metrics adds up every worker's. Arguments are
passed to uvicorn after the launcher's own (`--host 0.0.0.0 --port 8000` by default; the last
one given wins). A bad API_WORKERS stops it with one line and exit status 2.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_METRICS_DIR = Path(tempfile.gettempdir()) / "crypto-api-metrics"
MAX_WORKERS = 64


def cpu_count(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may use: its affinity, bounded by a cgroup v2 CPU quota (what
    `docker run --cpus` and Compose's `cpus` set)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def worker_count(env: Mapping[str, str], cpus: int) -> int:
    """API_WORKERS, or `cpus` when unset or empty; raises ValueError naming the variable."""
    raw = env.get("API_WORKERS", "").strip()
    if not raw:
        return cpus
    try:
        workers = int(raw)
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"API_WORKERS must be a whole number from 1 to {MAX_WORKERS}, got {raw!r}")
    return workers


def prepare_metrics_dir(env: dict[str, str], workers: int) -> Path | None:
    """With several workers (or PROMETHEUS_MULTIPROC_DIR set), an empty metrics folder named in
    `env`: counts of an earlier run must not add to this one's."""
    folder = env.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if workers == 1 and not folder:
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return None
    path = Path(folder) if folder else DEFAULT_METRICS_DIR
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def uvicorn_command(workers: int, args: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "api:app",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--workers",
        str(workers),
        *args,
    ]


def main(argv: Sequence[str] | None = None) -> None:
    env = dict(os.environ)
    try:
        workers = worker_count(env, cpu_count())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        prepare_metrics_dir(env, workers)
    except OSError as exc:
        print(f"error: cannot prepare the metrics folder: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    command = uvicorn_command(workers, sys.argv[1:] if argv is None else argv)
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
