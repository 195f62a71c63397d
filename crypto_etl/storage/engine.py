"""Engine creation and schema migration (Alembic), shared by the pipeline and the API."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from crypto_etl.errors import ConfigError, DatabaseError, first_line

log = logging.getLogger(__name__)
# Shipped inside the package, so an installed package can migrate its database.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


# How long a SQLite statement waits for another connection's write lock before it fails.
SQLITE_BUSY_MS = 60_000
# How long a bulk write waits for another process's bulk write to end (both backends).
WRITE_WAIT_SECONDS = 600


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # SQLAlchemy, not the driver, begins transactions (see `_sqlite_begin`).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


def _sqlite_begin(conn) -> None:
    """Begin each SQLite transaction explicitly. A bulk write (execution option
    `write_lock=True`, crypto_etl.storage.bulk.write_transaction) takes the database's write lock
    up front with BEGIN IMMEDIATE, so that two writers never both read and then both try to write
    (one would fail at once with "database is locked"): the second one waits, and says so."""
    if not conn.get_execution_options().get("write_lock"):
        conn.exec_driver_sql("BEGIN")
        return
    try:
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            log.info(
                "waiting (up to %ds) for another process writing to %s",
                WRITE_WAIT_SECONDS,
                describe(conn.engine),
            )
            conn.exec_driver_sql(f"PRAGMA busy_timeout={WRITE_WAIT_SECONDS * 1000}")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")


def make_engine(url: str) -> Engine:
    """An engine for `url`: SQLite gets its folder created; postgresql:// uses psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"DATABASE_URL is not a valid SQLAlchemy URL: {url!r}") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        connect_args = {}
        if parsed.get_backend_name() == "postgresql":
            connect_args = {"connect_timeout": 10, "options": "-c timezone=UTC"}
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise ConfigError(f"DATABASE_URL names a driver that is not installed: {exc}") from None


def describe(engine: Engine) -> str:
    """The engine's URL with any password hidden, for logs and messages."""
    return engine.url.render_as_string(hide_password=True)


def describe_url(url: str) -> str:
    """A database URL with any password hidden, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "the configured database"


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def init_db(engine: Engine) -> str:
    """Create or upgrade the schema to the newest migration; returns the revision reached."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = alembic_config(engine)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        if current != head:
            log.info("migrating %s from %s to %s", describe(engine), current or "empty", head)
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot reach the database at {describe(engine)}: {first_line(exc)}; "
            "check DATABASE_URL and that the server is running"
        ) from exc
    except SQLAlchemyError as exc:
        raise DatabaseError(f"schema migration failed: {first_line(exc)}") from exc
    return head


def has_table(engine: Engine, name: str) -> bool:
    return inspect(engine).has_table(name)


class Database:
    """The pipeline's database, opened on first use: the engine made and the schema migrated once,
    when a command first needs it (so that a step that needs no database still works without
    one). `partitions_ahead_months` (PARTITIONS_AHEAD_MONTHS) travels with the engine to the
    bulk writer, which keeps that many months of partitions ready (crypto_etl.storage.partitions).
    """

    def __init__(self, url: str, partitions_ahead_months: int | None = None) -> None:
        self.url = url
        self.partitions_ahead_months = partitions_ahead_months
        self._engine: Engine | None = None

    @classmethod
    def of(cls, engine: Engine) -> Database:
        """A Database on an engine whose schema is already migrated."""
        database = cls(engine.url.render_as_string(hide_password=False))
        database._engine = engine
        return database

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from crypto_etl.storage.runs import sweep_dead_runs

            engine = make_engine(self.url)
            if self.partitions_ahead_months is not None:
                engine = engine.execution_options(
                    partitions_ahead_months=self.partitions_ahead_months
                )
            init_db(engine)
            sweep_dead_runs(engine)  # any command first closes runs whose process is gone
            self._engine = engine
        return self._engine
