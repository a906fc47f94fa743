# ktrdr-backend: the API only (ktrdr-api + ktrdr-core). No torch, no numeric stack.
#
# Build from the workspace root:
#   DOCKER_BUILDKIT=1 docker build -f docker/backend.Dockerfile -t ktrdr-backend .
# Behind a TLS-intercepting proxy add: --secret id=ca,src=/path/to/ca-bundle.crt
# (a build secret: it is mounted only while a RUN step downloads, never stored in a layer).
# No "# syntax=" line: the Dockerfile frontend built into the daemon is used, so building
# needs no access to Docker Hub.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- builder: uv from PyPI (pinned), the locked dependencies, then the two members ---------
FROM ${BASE_IMAGE} AS builder
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The optional CA bundle becomes the trust store for this step only.
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    python3 -m venv /opt/uv && /opt/uv/bin/pip install "uv==${UV_VERSION}"
WORKDIR /src
# Dependencies only (no workspace member): this layer survives every source change.
COPY pyproject.toml uv.lock ./
COPY packages/ktrdr-core/pyproject.toml packages/ktrdr-core/
COPY packages/ktrdr-api/pyproject.toml packages/ktrdr-api/
COPY packages/ktrdr-worker/pyproject.toml packages/ktrdr-worker/
COPY packages/ktrdr-cli/pyproject.toml packages/ktrdr-cli/
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    /opt/uv/bin/uv sync --frozen --no-dev --package ktrdr-api --no-editable --no-install-workspace
COPY packages/ktrdr-core packages/ktrdr-core
COPY packages/ktrdr-api packages/ktrdr-api
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    /opt/uv/bin/uv sync --frozen --no-dev --package ktrdr-api --no-editable
# The boundary, checked in the build: the backend must never carry torch or the worker.
RUN if /opt/venv/bin/python -c "import torch" 2>/dev/null; then \
        echo "ktrdr-backend: torch is importable; the backend must not install it" >&2; exit 1; \
    fi; \
    if /opt/venv/bin/python -c "import ktrdr_worker" 2>/dev/null; then \
        echo "ktrdr-backend: ktrdr_worker is installed; the backend must not install it" >&2; exit 1; \
    fi; \
    /opt/venv/bin/python -c "import ktrdr_api.app" && /opt/venv/bin/ktrdr-api --help >/dev/null

# --- runtime: the base, tini, a non-root user and the virtual environment (one layer) --------
FROM ${BASE_IMAGE} AS runtime
# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
# The user and its data folder exist before anything is copied: no chown -R layer later.
RUN groupadd --system --gid 10001 ktrdr \
    && useradd --system --uid 10001 --gid ktrdr --home-dir /home/ktrdr --create-home \
        --shell /usr/sbin/nologin ktrdr \
    && install -d -o ktrdr -g ktrdr /data
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KTRDR_HOME=/data \
    KTRDR_API_HOST=0.0.0.0 \
    KTRDR_API_PORT=8000
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, ssl, urllib.request; tls = bool(os.environ.get('KTRDR_TLS_CERT')); urllib.request.urlopen('%s://127.0.0.1:%s/api/v1/health' % ('https' if tls else 'http', os.environ.get('KTRDR_API_PORT', '8000')), timeout=4, context=ssl._create_unverified_context() if tls else None)"]
ENTRYPOINT ["tini", "--"]
CMD ["ktrdr-api", "serve"]
