# One image for the whole product: the container's first argument picks the role
# (migrate, app, api, dashboard; see docker/entrypoint.sh), or runs a command as given.

# Build stage: install the pinned runtime requirements into a virtualenv.
FROM python:3.12-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --requirement /tmp/requirements.txt
# The crypto_etl package itself, with its migrations; its dependencies are the pins above.
COPY pyproject.toml README.md /tmp/src/
COPY crypto_etl /tmp/src/crypto_etl
RUN /opt/venv/bin/pip install --no-deps /tmp/src

# Runtime stage: the virtualenv and the code, no build tools, no pip cache, run as a plain user.
FROM python:3.12-slim AS runtime
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PAGER=cat \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true
# uid 1000 owns ./data on most Linux hosts, so files the pipeline writes there stay editable.
RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid app --create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
# The code stays owned by root (read-only for the app); only data/ is writable.
COPY . .
RUN mkdir -p /app/data && chown app:app /app/data
USER app
EXPOSE 8000 8501
ENTRYPOINT ["/bin/sh", "/app/docker/entrypoint.sh"]
CMD ["app"]
