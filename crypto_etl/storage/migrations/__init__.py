"""Alembic migrations of the schema, shipped inside the package so that an installed package can
create and upgrade its database (crypto_etl.storage.engine.init_db)."""
