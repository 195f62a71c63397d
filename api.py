"""The REST API's entry point for uvicorn: `uvicorn api:app --host 0.0.0.0 --port 8000`.

Builds the app once from the environment's settings (a bad setting stops the server with one line);
the app itself is crypto_etl.api.app.create_app.
"""

from crypto_etl.api.app import app_from_environment

app = app_from_environment()
