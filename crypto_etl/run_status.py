"""The outcome of a pipeline run as `etl_runs.status` stores it: one enum for the pipeline, the API
and the dashboard. The values are the strings in the database; never rename one without a
migration."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    RUNNING = "running"  # started, not finished; its process keeps a lease (storage.runs)
    SUCCESS = "success"  # everything stored
    PARTIAL = "partial"  # stored, but some rows were quarantined or some coins failed
    FAILED = "failed"  # nothing of this run's own work was stored
    CANCELLED = "cancelled"  # stopped by Ctrl-C, SIGTERM or a stop request; what committed stays
    ABANDONED = "abandoned"  # its process vanished (SIGKILL, host down): closed by whoever saw it
