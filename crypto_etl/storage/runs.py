"""The `etl_runs` journal: one row per pipeline run or single step, opened and closed in their own
short transactions so that a failed load still leaves its run recorded as failed. The pipeline
decides when (crypto_etl.pipeline.journal); this module only writes the rows.

A running row says who owns it (host, pid, a random token) and holds a lease: its process renews
`lease_expires_at` every heartbeat (`Heartbeat`). A row still `running` whose lease ran out, or
whose owner on this very host is no longer a live process, has lost its process (SIGKILL, a crash,
the machine going down): `close_dead_runs` records it as `abandoned`, with the time of its last
sign of life as `finished_at` and why. Only lease time is trusted across hosts (a pid means nothing
on another machine), so two machines can share one PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl import clock
from crypto_etl.errors import first_line
from crypto_etl.run_status import RunStatus
from crypto_etl.storage.schema import EtlRun

log = logging.getLogger(__name__)
ERROR_MESSAGE_MAX_CHARS = 2000
ORCHESTRATOR_RUN_ID_MAX_CHARS = 500
DEFAULT_HEARTBEAT_SECONDS = 30.0
DEFAULT_LEASE_SECONDS = 120.0

# Runs this process opened and has not closed yet, by database. A run whose closing failed (the
# database went away mid-run) stays here until `close_abandoned_runs` records it as failed.
_open_runs: dict[str, set[int]] = {}


@dataclass(frozen=True)
class LeaseTerms:
    """How often a running run renews its lease, and how long a lease lasts without renewal."""

    heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS
    lease_seconds: float = DEFAULT_LEASE_SECONDS

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)


def this_host() -> str:
    """The name runs record as their owner's host."""
    return socket.gethostname()[:255]


def _database(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _now() -> datetime:
    return clock.utcnow()


def start_run(
    engine: Engine,
    command: str,
    vs_currency: str | None = None,
    source: str | None = None,
    terms: LeaseTerms = LeaseTerms(),
    orchestrator_run_id: str | None = None,
) -> int:
    """Record a run as started, owned by this process with a fresh lease, and by the
    orchestrator's run that started it, if any (cut to the column's 500 characters); returns its
    id."""
    now = _now()
    with engine.begin() as conn:
        result = conn.execute(
            EtlRun.__table__.insert().values(
                command=command,
                status=RunStatus.RUNNING.value,
                started_at=now,
                vs_currency=vs_currency,
                source=source,
                rows_extracted=0,
                rows_loaded=0,
                rows_rejected=0,
                rows_skipped=0,
                owner_host=this_host(),
                owner_pid=os.getpid(),
                owner_token=secrets.token_hex(16),
                heartbeat_at=now,
                lease_expires_at=now + terms.lease,
                orchestrator_run_id=(
                    orchestrator_run_id[:ORCHESTRATOR_RUN_ID_MAX_CHARS]
                    if orchestrator_run_id
                    else None
                ),
            )
        )
        run_id = int(result.inserted_primary_key[0])
    _open_runs.setdefault(_database(engine), set()).add(run_id)
    return run_id


def renew_lease(
    engine: Engine, run_id: int, terms: LeaseTerms, now: datetime | None = None
) -> bool:
    """A heartbeat: push the run's lease `terms.lease` past now. False when the run is no longer
    running (closed by its own process, or by another one that judged it gone)."""
    now = now or _now()
    with engine.begin() as conn:
        result = conn.execute(
            update(EtlRun)
            .where(EtlRun.id == run_id, EtlRun.status == RunStatus.RUNNING.value)
            .values(heartbeat_at=now, lease_expires_at=now + terms.lease)
        )
    return result.rowcount == 1


class Heartbeat:
    """A daemon thread renewing a run's lease every `terms.heartbeat_seconds` while the run works.
    A renewal that fails (the database is away) is logged at DEBUG and tried again next beat: the
    run's own outcome is what gets reported."""

    def __init__(self, engine: Engine, run_id: int, terms: LeaseTerms) -> None:
        self.engine, self.run_id, self.terms = engine, run_id, terms
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat-run-{run_id}", daemon=True
        )
        self.beats = 0

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # A beat stuck on an unreachable database must not hold up the run's end: the thread is a
        # daemon, and a late renewal changes nothing once the run is closed (it renews only
        # `running` rows).
        self._stop.set()
        self._thread.join(timeout=2)

    def _beat(self) -> None:
        while not self._stop.wait(self.terms.heartbeat_seconds):
            try:
                if not renew_lease(self.engine, self.run_id, self.terms):
                    log.warning(
                        "run %d was closed by another process while still working; its own "
                        "outcome will be recorded when it ends",
                        self.run_id,
                    )
                    return
                self.beats += 1
            except Exception as exc:  # the database may be away for a while; try next beat
                log.debug("run %d: heartbeat failed: %s", self.run_id, first_line(exc))


def finish_run(
    engine: Engine,
    run_id: int,
    status: RunStatus,
    error_message: str | None = None,
    **counts: int | str | None,
) -> None:
    """Close a run with its status, its row counts (rows_extracted, rows_loaded, rows_rejected,
    rows_skipped; None leaves a count as it is), its source and its error, if any. The outcome
    is recorded even over an `abandoned` some other process judged too early: the run's own
    process knows best."""
    values = {k: v for k, v in counts.items() if v is not None}
    if error_message is not None:
        values["error_message"] = error_message[:ERROR_MESSAGE_MAX_CHARS]
    now = _now()
    with engine.begin() as conn:
        conn.execute(
            update(EtlRun)
            .where(EtlRun.id == run_id)
            .values(
                status=RunStatus(status).value,
                finished_at=now,
                heartbeat_at=now,
                lease_expires_at=None,
                **values,
            )
        )
    _open_runs.get(_database(engine), set()).discard(run_id)


def close_abandoned_runs(engine: Engine) -> list[int]:
    """Record as failed the runs this process opened and could not close, e.g. because the
    database restarted mid-run, so that none stays `running`. Call it between runs (the
    scheduler does, before each run); returns their ids."""
    abandoned = sorted(_open_runs.get(_database(engine), ()))
    if abandoned:
        finished = _now()
        with engine.begin() as conn:
            conn.execute(
                update(EtlRun)
                .where(EtlRun.id.in_(abandoned), EtlRun.status == RunStatus.RUNNING.value)
                .values(
                    status=RunStatus.FAILED.value,
                    finished_at=finished,
                    lease_expires_at=None,
                    error_message="the database connection was lost before the run was closed",
                )
            )
        _open_runs[_database(engine)].difference_update(abandoned)
    return abandoned


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


@dataclass(frozen=True)
class AbandonedRun:
    id: int
    command: str
    reason: str


def _stamp(moment: datetime | None) -> str:
    return "unknown" if moment is None else f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def close_dead_runs(
    engine: Engine,
    now: datetime | None = None,
    host: str | None = None,
    is_alive: Callable[[int], bool] = pid_alive,
    terms: LeaseTerms = LeaseTerms(),
) -> list[AbandonedRun]:
    """Close as `abandoned` every run still `running` whose process is gone: its lease expired
    before `now`, or (on this `host` only) its pid no longer runs. A row without a lease (written
    before migration 0004) counts as expired `terms.lease` after it started. Each row is closed
    by one conditional UPDATE, so a heartbeat that lands first keeps its run alive, and two
    processes sweeping at once close a run once. Returns what was closed."""
    now = now or _now()
    host = host or this_host()
    me = os.getpid()
    expired = or_(
        EtlRun.lease_expires_at < now,
        and_(EtlRun.lease_expires_at.is_(None), EtlRun.started_at < now - terms.lease),
    )
    candidates = select(
        EtlRun.id,
        EtlRun.command,
        EtlRun.owner_host,
        EtlRun.owner_pid,
        EtlRun.heartbeat_at,
        EtlRun.lease_expires_at,
        EtlRun.started_at,
    ).where(EtlRun.status == RunStatus.RUNNING.value)
    closed: list[AbandonedRun] = []
    with engine.begin() as conn:
        rows = conn.execute(candidates.order_by(EtlRun.id)).all()
    for run_id, command, owner_host, pid, beat, lease_end, started in rows:
        local_dead = owner_host == host and pid is not None and pid != me and not is_alive(pid)
        if lease_end is None:
            lease_end = started + terms.lease
        if local_dead:
            reason = (
                f"process gone: pid {pid} on {owner_host} no longer runs "
                f"(lease until {_stamp(lease_end)})"
            )
            condition = and_(EtlRun.owner_host == owner_host, EtlRun.owner_pid == pid)
        elif lease_end < now:
            owner = f"{owner_host}:{pid}" if owner_host else "an older version"
            reason = f"process gone: lease expired at {_stamp(lease_end)} (owner {owner})"
            condition = expired
        else:
            continue
        with engine.begin() as conn:
            result = conn.execute(
                update(EtlRun)
                .where(EtlRun.id == run_id, EtlRun.status == RunStatus.RUNNING.value, condition)
                .values(
                    status=RunStatus.ABANDONED.value,
                    finished_at=beat or started,
                    lease_expires_at=None,
                    error_message=f"{reason}; closed at {_stamp(now)}",
                )
            )
        if result.rowcount == 1:
            closed.append(AbandonedRun(run_id, command, reason))
            log.warning("run %d (%s) closed as abandoned: %s", run_id, command, reason)
    return closed


def sweep_dead_runs(engine: Engine, terms: LeaseTerms = LeaseTerms()) -> list[AbandonedRun]:
    """`close_dead_runs` as every command calls it before its own work: a database error
    here is left to the command's own first statement to report (logged at DEBUG only)."""
    try:
        return close_dead_runs(engine, terms=terms)
    except SQLAlchemyError as exc:
        log.debug("could not look for abandoned runs: %s", first_line(exc))
        return []
