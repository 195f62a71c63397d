# TEST-ONLY stand-in for postgres:15, used by tests/test_compose_engine.py because no container
# registry is reachable on our CI machines: Debian bookworm's PostgreSQL 15 and an entry script
# that initialises an empty data folder the way the official image does on first start
# (postgres-entrypoint.sh). Never tag it with an official image's name.
ARG BASE
FROM ${BASE}
# No cluster from the package: the entry script makes one in PGDATA on first start.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/standin.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
RUN mkdir -p "$PGDATA" /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 700 "$PGDATA" \
    && chmod 2777 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
VOLUME /var/lib/postgresql/data
# Fast shutdown on `docker stop`, like the official image.
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["/bin/sh", "/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
