"""The test harness that runs `etl.py` commands in child processes it can stop at any moment:
fault injection and clock pinning live here, outside the product.

`ChildRunner` starts this file as a small server (a "zygote") that imports the product once, then
forks one child per command, so that hundreds of commands cost milliseconds each instead of the
two seconds of imports apiece. Before the product is imported the zygote:

- pins the clock: `crypto_etl.clock.utcnow` answers the request's `now` (when given), so runs,
  snapshots and history windows see one fixed moment;
- hooks the functions where a command's work happens, each reporting an event before and after
  it runs ("<name>" and "<name>.done"): `fetch` (one CoinGecko request), `transform` and `parse`
  (shaping raw answers), `validate` (reading and validating a CSV, on PostgreSQL while COPY
  streams it), `write:<table>` (the bulk write into a table, COPY on PostgreSQL; the coins upsert
  and the quarantine), `commit` (every database commit) and `sql` (before every SQL statement,
  no `.done`). Only the main thread counts, so heartbeats never shift the sequence.

A request may name a kill point: the n-th event overall (`kill_at=17`) or the n-th occurrence of
one event (`kill_at="write:ohlc.done#2"`); the child then SIGKILLs itself right there. A cut point
(`cut_at`, same form) makes its PostgreSQL database unreachable there instead, as if the server
had stopped, so that a test sees how the command reports a database outage mid-way. With
`trace=True` the child returns the whole event sequence, from which a test picks kill points.
Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


# -- the child side -------------------------------------------------------------------------------
class _State:
    now: datetime | None = None
    kill_at: int | str | None = None
    cut_at: int | str | None = None  # where PostgreSQL goes away (see `_cut_database`)
    cut: dict[str, str] | None = None  # {"admin_url", "database"}
    events: list[str] = []  # noqa: RUF012 (one list per child process, reset after the fork)
    counts: dict[str, int] = {}  # noqa: RUF012


def _hit(point: int | str | None, name: str) -> bool:
    if point is None:
        return False
    if isinstance(point, int):
        return len(_State.events) == point
    wanted, _, nth = point.partition("#")
    return name == wanted and _State.counts[name] == int(nth or 1)


def _cut_database() -> None:
    """PostgreSQL goes away for this database, as if the server had stopped: new connections
    are refused and the open ones are terminated (the test lets connections in again)."""
    import psycopg

    cut = _State.cut or {}
    with psycopg.connect(cut["admin_url"], autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{cut["database"]}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (cut["database"],),
        )


def _event(name: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    _State.events.append(name)
    _State.counts[name] = _State.counts.get(name, 0) + 1
    if _hit(_State.cut_at, name):
        _cut_database()
    if _hit(_State.kill_at, name):
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _hooked(name: str | Any, func):
    """`func` reporting `name` before and `name.done` after each call; `name` may be a function
    of the call's arguments."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        label = name(*args, **kwargs) if callable(name) else name
        _event(label)
        result = func(*args, **kwargs)
        _event(f"{label}.done")
        return result

    return wrapper


def _install() -> None:
    """Pin the clock, then import the product and hook its work (see the module docstring)."""
    from crypto_etl import clock

    real_utcnow = clock.utcnow

    def pinned_utcnow() -> datetime:
        return _State.now or real_utcnow()

    clock.utcnow = pinned_utcnow

    from sqlalchemy import Engine, event
    from sqlalchemy.engine.default import DefaultDialect

    import crypto_etl.cli
    from crypto_etl.coingecko.client import CoinGeckoClient
    from crypto_etl.pipeline import backfill, snapshot
    from crypto_etl.storage import history, snapshots

    CoinGeckoClient.get_json = _hooked("fetch", CoinGeckoClient.get_json)
    snapshot.transform_markets = _hooked("transform", snapshot.transform_markets)
    backfill.parse_chart = _hooked("parse", backfill.parse_chart)
    backfill.parse_candles = _hooked("parse", backfill.parse_candles)
    snapshots.SnapshotCsv.read = _hooked("validate", snapshots.SnapshotCsv.read)

    def table_of(conn, table, source):
        return f"write:{table.name}"

    for module in (snapshots, history):
        module.append_skip_existing = _hooked(table_of, module.append_skip_existing)
    snapshots.upsert_coins = _hooked("write:coins", snapshots.upsert_coins)
    snapshots.quarantine = _hooked("write:rejected_rows", snapshots.quarantine)
    DefaultDialect.do_commit = _hooked("commit", DefaultDialect.do_commit)

    def statement(*args, **kwargs) -> None:
        _event("sql")

    event.listen(Engine, "before_cursor_execute", statement)
    assert crypto_etl.cli.main


def _child(request: dict[str, Any], out: str, err: str) -> None:
    """In the forked child: become the command the request describes, then exit."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(os.open(out, os.O_WRONLY | os.O_TRUNC), 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_TRUNC), 2)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _State.now = datetime.fromisoformat(request["now"]) if request.get("now") else None
        _State.kill_at = request.get("kill_at")
        _State.cut_at, _State.cut = request.get("cut_at"), request.get("cut")
        _State.events, _State.counts = [], {}
        sys.argv = ["etl.py", *request["args"]]
        from crypto_etl.cli import main

        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if request.get("trace"):
            Path(request["trace"]).write_text(json.dumps(_State.events))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The zygote: one forked child per request line, answered once the child has ended."""
    sys.path.insert(0, str(ROOT))  # this checkout's package, whatever is installed
    _install()
    work = tempfile.mkdtemp(prefix="etl-child-")
    out, err, trace = (os.path.join(work, name) for name in ("out", "err", "trace"))
    for line in sys.stdin:
        request = json.loads(line)
        for path in (out, err, trace):
            Path(path).write_text("")
        if request.get("trace"):
            request["trace"] = trace
        pid = os.fork()
        if pid == 0:
            _child(request, out, err)
        _, status = os.waitpid(pid, 0)
        answer = {
            "returncode": os.waitstatus_to_exitcode(status),
            "stdout": Path(out).read_text(),
            "stderr": Path(err).read_text(),
            "events": json.loads(Path(trace).read_text() or "null"),
        }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


# -- the test side --------------------------------------------------------------------------------
@dataclass
class ChildResult:
    """What a command did, like subprocess.CompletedProcess (returncode -9: it was killed)."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    events: list[str] | None = field(default=None)


class ChildRunner:
    """Runs `etl.py` commands through the zygote (see the module docstring)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()

    def run(
        self,
        args: list[str] | tuple[str, ...],
        cwd: Path,
        env: dict[str, str],
        now: datetime | None = None,
        kill_at: int | str | None = None,
        trace: bool = False,
        cut_at: int | str | None = None,
        cut: dict[str, str] | None = None,
    ) -> ChildResult:
        """Run `args`; `kill_at`: SIGKILL there; `cut_at`: make the PostgreSQL database
        cut["database"] unreachable there, through cut["admin_url"]."""
        request = {
            "args": list(args),
            "cwd": str(cwd),
            "env": env,
            "now": None if now is None else now.astimezone(UTC).isoformat(),
            "kill_at": kill_at,
            "trace": trace,
            "cut_at": cut_at,
            "cut": cut,
        }
        with self._lock:
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the etl_child zygote died")
        answer = json.loads(line)
        return ChildResult(list(args), **answer)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def child_runner(runner: ChildRunner, cwd: Path, env: dict[str, str], now: datetime | None):
    """Like helpers.etl_runner, through `runner`: `run(*args, check=True, kill_at=None,
    **extra_env)`; a non-zero exit fails the test unless check=False."""

    def run(
        *args: str, check: bool = True, kill_at: int | str | None = None, **extra_env: str
    ) -> ChildResult:
        result = runner.run(args, cwd, {**env, **extra_env}, now=run.now, kill_at=kill_at)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    run.env, run.cwd, run.now = env, cwd, now
    return run


if __name__ == "__main__":
    serve()
