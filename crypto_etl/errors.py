"""Expected failures of the product, each carrying a one-line message for the user.

Code deep inside raises these; only the edges (CLI command, API handler, dashboard page) turn them
into a printed line and an exit status or an HTTP error body.
"""

from __future__ import annotations


class ETLError(Exception):
    """An expected failure: its message says what failed and what to do about it."""

    exit_code = 1


class ConfigError(ETLError):
    """A setting is missing or invalid."""


class InputFileError(ETLError):
    """An input file is missing, empty or malformed."""


class MissingPackageError(ETLError):
    """A package the installed part of the product needs is not installed: a broken install,
    never bad input. The message names the package and what installs it."""


class CoinGeckoError(ETLError):
    """The CoinGecko API refused a request or could not be reached."""


class RateLimitError(CoinGeckoError):
    """CoinGecko kept answering 429 after every retry."""


class NotFoundError(CoinGeckoError):
    """CoinGecko does not know the requested coin (404)."""


class HistoryLimitError(CoinGeckoError):
    """The plan does not reach that far back (keyless and demo plans: 365 days)."""


class DatabaseError(ETLError):
    """The database is unreachable or refused a statement."""


class ValidationFailed(ETLError):
    """A critical data quality rule failed."""


class UnknownCoinError(ETLError):
    """No coin in the data matches the requested id, symbol or name."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so that a command stops like on Ctrl-C: its run is
    recorded as cancelled, then it exits 143 (128 + SIGTERM) instead of 130."""

    def __init__(self, message: str = "terminated (SIGTERM)") -> None:
        super().__init__(message)


def first_line(exc: BaseException) -> str:
    """What went wrong, on one line: the first line of the exception's message (for SQLAlchemy's
    wrapped driver errors, the driver's own message, without the links SQLAlchemy adds). An
    exception without a message gives its type's name; Ctrl-C (KeyboardInterrupt) "interrupted",
    SIGTERM (Terminated) "terminated (SIGTERM)"."""
    if isinstance(exc, Terminated):
        return str(exc) or "terminated (SIGTERM)"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_id_of(exc: BaseException) -> int | None:
    """The etl_runs id of the run `exc` ended, when a recorded run ended with it."""
    run_id = getattr(exc, "run_id", None)
    return run_id if isinstance(run_id, int) else None


def database_failure(exc: BaseException) -> str | None:
    """A database driver's or SQLAlchemy's error as one line ("database unavailable: ..." when
    the server cannot be reached or the connection broke), or None for any other error."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    modules = {cls.__module__.split(".")[0] for cls in type(exc).__mro__}
    if not modules & {"sqlalchemy", "psycopg", "sqlite3"}:
        return None
    if names & {"OperationalError", "InterfaceError"}:
        return f"database unavailable: {first_line(exc)}"
    return f"database error: {first_line(exc)}"


def failure_line(exc: BaseException) -> str:
    """What `exc` means to the user, on one line, naming the run it ended (if any)."""
    if isinstance(exc, ETLError):
        text = first_line(exc)
    else:
        text = database_failure(exc) or first_line(exc)
    run_id = run_id_of(exc)
    return text if run_id is None else f"run {run_id} failed: {text}"
