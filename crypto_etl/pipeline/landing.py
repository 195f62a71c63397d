"""The landing folder (DATA_DIR/raw): every payload fetched from CoinGecko is kept there, exactly
as received, with a sidecar saying when and how it was fetched, and stays *pending* until it is
stored in the database.

A payload is pending from the moment it is written until the load of its rows has committed: a
marker in `raw/pending/` names it with its sha256 and fetch time. The run that fetched it removes
the marker once its load has committed; when the database was down (or the process died in
between) the marker stays, and the next run loads every pending payload before its own (see
crypto_etl.pipeline.catch_up). Loading is idempotent (rows already stored are skipped), so a payload
loaded twice never duplicates a row.

A payload's marker is held (an exclusive `flock` on it) by the process working on it: the run that
fetched it, from the moment it is written until that run ends, and a catch-up while it loads it.
Another process that finds the marker held leaves it alone, so two commands sharing one data folder
(a scheduled `app` and a `docker-compose run app python etl.py run`, say) never load each other's
live payload. The kernel drops the lock when its process dies, so a payload whose run was killed is
free for the next run at once.

Writing is all or nothing: a payload that cannot be written whole (the disk is full, the folder is
read-only) leaves no file behind and fails with one line (`LandingError`).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from crypto_etl.errors import ETLError

log = logging.getLogger(__name__)
META_SUFFIX = ".meta.json"
PENDING = "pending"
_held: dict[Path, int] = {}  # marker -> open descriptor holding its lock, in this process


class LandingError(ETLError):
    """A payload could not be written to the landing folder (disk full, no permission)."""


@dataclass(frozen=True)
class Pending:
    """A kept payload not stored in the database yet."""

    raw_path: Path
    marker: Path
    sha256: str
    fetched_at: datetime


def meta_path(raw_path: Path) -> Path:
    return raw_path.with_name(raw_path.name + META_SUFFIX)


def pending_dir(raw_dir: Path) -> Path:
    return raw_dir / PENDING


def save_raw(
    rows: list[dict[str, Any]],
    path: Path,
    fetched_at: datetime,
    pending: bool = False,
    **meta: Any,
) -> Path:
    """Write the rows exactly as received (one JSON array) and a sidecar describing the fetch;
    with `pending`, also the marker saying it is not stored yet. All or nothing: on failure no
    file is left and `LandingError` says why in one line."""
    payload = json.dumps(rows, ensure_ascii=False).encode("utf-8")
    info = {"fetched_at": fetched_at.isoformat(), "rows": len(rows), **meta}
    files = [(path, payload), (meta_path(path), json.dumps(info, indent=2).encode("utf-8"))]
    if pending:
        marker = {
            "raw": path.name,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "fetched_at": fetched_at.isoformat(),
        }
        target = pending_dir(path.parent) / path.name
        files.append((target, json.dumps(marker, indent=2).encode("utf-8")))
    written: list[Path] = []
    try:
        for target, data in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            written.append(tmp)
            tmp.write_bytes(data)
            if pending and target.parent.name == PENDING:
                _hold(tmp, target)  # locked before it appears under its name: never unheld
            tmp.replace(target)
            written[-1] = target
    except OSError as exc:
        for leftover in written:
            leftover.unlink(missing_ok=True)
        release(path)
        raise _landing_error(exc, path, len(rows), len(payload)) from exc
    return path


def _hold(file: Path, marker: Path) -> None:
    fd = os.open(file, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _held[marker] = fd


def claim(pending: Pending) -> bool:
    """Hold a pending payload's marker for this process, or False when another process holds it
    (the run that fetched it is still working on it) or it was stored meanwhile."""
    if pending.marker in _held:
        return True  # this process's own (e.g. a tick of `schedule` that could not store it)
    try:
        fd = os.open(pending.marker, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    if os.fstat(fd).st_nlink == 0:  # stored and unlinked by its owner before we got the lock
        os.close(fd)
        return False
    _held[pending.marker] = fd
    return True


def release(raw_path: Path) -> None:
    """Let go of a payload's marker (if this process holds it); it stays pending if not stored."""
    fd = _held.pop(pending_dir(raw_path.parent) / raw_path.name, None)
    if fd is not None:
        os.close(fd)


def _landing_error(exc: OSError, path: Path, rows: int, size: int) -> LandingError:
    where = path.parent
    if exc.errno == errno.ENOSPC:
        return LandingError(
            f"no space left on device: cannot keep the raw payload of {rows} coins "
            f"({size:,} bytes) in {where}; free space there or point DATA_DIR elsewhere"
        )
    reason = exc.strerror or type(exc).__name__
    return LandingError(f"cannot keep the raw payload in {where}: {reason}")


def read_meta(raw_path: Path) -> dict[str, Any]:
    """The sidecar of a raw file, or {} when there is none (any CoinGecko dump is accepted)."""
    path = meta_path(raw_path)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, OSError):
        log.warning("ignoring unreadable sidecar %s", path)
        return {}


def pending_payloads(raw_dir: Path) -> list[Pending]:
    """The kept payloads not stored yet, oldest fetch first. A marker that cannot be read is
    reported and skipped (never silently dropped)."""
    folder = pending_dir(raw_dir)
    if not folder.is_dir():
        return []
    found = []
    for marker in sorted(folder.glob("*.json")):
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
            fetched_at = datetime.fromisoformat(info["fetched_at"])
            found.append(Pending(raw_dir / info["raw"], marker, info["sha256"], fetched_at))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("skipping unreadable pending marker %s: %s", marker, exc)
    return sorted(found, key=lambda p: (p.fetched_at, p.raw_path.name))


def check_payload(pending: Pending) -> None:
    """The payload is there and unchanged since it was fetched (its sha256), or LandingError."""
    try:
        digest = hashlib.sha256(pending.raw_path.read_bytes()).hexdigest()
    except OSError as exc:
        raise LandingError(
            f"kept payload {pending.raw_path} cannot be read: {exc.strerror or exc}"
        ) from exc
    if digest != pending.sha256:
        raise LandingError(f"kept payload {pending.raw_path} changed since it was fetched")


def mark_stored(raw_path: Path) -> None:
    """The payload's rows are in the database: it is no longer pending."""
    (pending_dir(raw_path.parent) / raw_path.name).unlink(missing_ok=True)
    release(raw_path)
