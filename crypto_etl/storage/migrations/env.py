"""Alembic environment: runs migrations on the engine handed over by
crypto_etl.storage.engine.init_db, or on the URL from the settings when invoked as
`alembic upgrade head` from the repository root."""

from __future__ import annotations

from alembic import context

from crypto_etl.storage.partitions import is_partition_name
from crypto_etl.storage.schema import Base, on_backend

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from crypto_etl.settings import load_settings
        from crypto_etl.storage.engine import make_engine

        engine = make_engine(load_settings().database_url)
    with engine.begin() as connection:
        dialect = connection.dialect.name
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=dialect == "sqlite",
            # Autogenerate neither adds nor drops an index that exists on another backend only,
            # nor a monthly partition of a history table (they are made as data arrives).
            include_object=lambda item, name, kind, *_: (
                on_backend(item, dialect) and not (kind == "table" and is_partition_name(name))
            ),
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
