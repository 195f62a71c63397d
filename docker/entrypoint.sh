#!/bin/sh
# Entry point of the Crypto ETL image: the first argument names the role of the container.
#   migrate     create or upgrade the database schema, then exit
#   app         migrate, then run the pipeline every ETL_INTERVAL_SECONDS (default 300)
#   api         the REST API on port 8000, API_WORKERS processes (default: the CPUs)
#   dashboard   the Streamlit dashboard on port 8501
# Arguments after a role are appended to its command (the last --port wins). Anything else runs as
# given, e.g. `docker-compose run app python etl.py extract --save_path=/app/data/raw.json`.
set -eu
cd "$(dirname "$0")/.."

if [ "$#" -eq 0 ]; then
    set -- app
fi
role="$1"
case "$role" in
    migrate)
        shift
        exec python etl.py init_db "$@"
        ;;
    app)
        shift
        python etl.py init_db
        exec python etl.py schedule --interval_seconds="${ETL_INTERVAL_SECONDS:-300}" "$@"
        ;;
    api)
        shift
        exec python -m crypto_etl.api.serve --host 0.0.0.0 --port 8000 "$@"
        ;;
    dashboard)
        shift
        exec streamlit run dashboard.py --server.port 8501 --server.address 0.0.0.0 \
            --server.headless true "$@"
        ;;
    python)
        # `docker-compose run app python etl.py <step>`: relative paths such as --save_path=raw.json
        # land in the mounted data folder (./data on the host).
        if [ "${2:-}" = "etl.py" ]; then
            app_dir="$(pwd)"
            shift 2
            mkdir -p "${DATA_DIR:-data}"
            cd "${DATA_DIR:-data}"
            exec python "$app_dir/etl.py" "$@"
        fi
        exec "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
