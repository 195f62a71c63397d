#!/bin/sh
# TEST-ONLY entry point of the postgres stand-in image (postgres.Dockerfile). On the first start
# with an empty PGDATA it does what the official postgres image does for the settings we use:
# superuser POSTGRES_USER (default postgres) with POSTGRES_PASSWORD, database POSTGRES_DB (default:
# the user's name), UTF8 encoding, trust over the local socket and scram-sha-256 passwords over
# TCP. The server always runs as the postgres user, never as root. Init scripts
# (/docker-entrypoint-initdb.d) are not supported.
set -eu

if [ "${1:-}" != postgres ]; then
    exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups /bin/sh "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "postgres stand-in: POSTGRES_PASSWORD must be set for a new database" >&2
        exit 1
    fi
    user="${POSTGRES_USER:-postgres}"
    database="${POSTGRES_DB:-$user}"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    # UTF8, not SQL_ASCII: with SQL_ASCII psycopg hands text back as bytes.
    initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" --encoding=UTF8 \
        --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        # A server on the socket only, so no TCP client (nor a healthcheck) sees it before it
        # is ready.
        pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait start >/dev/null
        psql --no-psqlrc --set=ON_ERROR_STOP=1 --username="$user" --dbname=postgres \
            --set=database="$database" <<'SQL'
CREATE DATABASE :"database";
SQL
        pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop >/dev/null
    fi
    echo "postgres stand-in: initialised $PGDATA (user $user, database $database)"
fi

shift
exec postgres -c listen_addresses='*' "$@"
