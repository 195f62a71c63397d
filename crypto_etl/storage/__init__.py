"""Storage: the schema and its Alembic migrations, the engine, the one bulk writer, the runs
journal, and the queries that read the history and look for its gaps. Knows nothing of HTTP."""
