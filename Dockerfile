# One image for the whole product: the container's first argument picks the role
# (migrate, app, api, dashboard; see docker/entrypoint.sh), or runs a command as given.
# PYTHON_IMAGE picks the base; the tests pass a stand-in built from Debian packages, because no
# registry is reachable on their machines (docker/standin/). Users keep the default.
ARG PYTHON_IMAGE=python:3.12-slim

# Build stage: install the pinned runtime requirements into a virtualenv.
FROM ${PYTHON_IMAGE} AS builder
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
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PAGER=cat \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true
# The image's plain user. Compose's app service starts as root only for docker/drop-root.sh,
# which becomes the owner of the mounted ./data (see there); everything else runs as `app`.
RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid app --create-home --shell /usr/sbin/nologin app \
    && command -v setpriv
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
# The code stays owned by root (read-only for the app); only data/ is writable.
COPY . .
RUN mkdir -p /app/data && chown app:app /app/data
USER app
EXPOSE 8000 8501
ENTRYPOINT ["/bin/sh", "/app/docker/drop-root.sh", "/bin/sh", "/app/docker/entrypoint.sh"]
CMD ["app"]
