# TEST-ONLY stand-in for python:3.12-slim, used by tests/test_compose_engine.py because no container
# registry is reachable on our CI machines. Debian bookworm's Python 3.11 with venv and pip;
# `python` on PATH like the official image. Never tag it with an official image's name.
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3 /usr/local/bin/python
# The CA bundle of the machine that builds it, so pip inside `docker build` trusts the same
# HTTPS egress as the host (the official image needs none of this).
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
