# ktrdr-worker-cpu: the backtest worker (ktrdr-worker + ktrdr-core) without torch, scipy or
# scikit-learn: backtests, data fetches and walk-forward reports run the numpy forward pass on
# safetensors bundles. Training runs from ktrdr-worker-gpu or ktrdr-worker-cpu-training.
#
# Build from the workspace root:
#   DOCKER_BUILDKIT=1 docker build -f docker/worker-cpu.Dockerfile -t ktrdr-worker-cpu .
# Behind a TLS-intercepting proxy add: --secret id=ca,src=/path/to/ca-bundle.crt
#
# Everything comes from uv.lock except the torch-free profile of scripts/install_profile.py:
# torch, scipy, scikit-learn and every package only they bring in (sympy, networkx, triton,
# nvidia-*, ...). The build fails if any of the three imports, or the backtest path does not.

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ARG UV_VERSION=0.13.9
# Bytecode: 24 MB that saves every worker start about a second of compiling pandas and numpy
# (the runtime cannot write it: the environment belongs to root, the worker does not).
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    python3 -m venv /opt/uv && /opt/uv/bin/pip install "uv==${UV_VERSION}"
WORKDIR /src
COPY pyproject.toml uv.lock ./
# What the lock holds but this image leaves out: one list, shared with scripts/setup-env.
COPY scripts/install_profile.py scripts/lock_boundaries.py scripts/
COPY packages/ktrdr-core/pyproject.toml packages/ktrdr-core/
COPY packages/ktrdr-api/pyproject.toml packages/ktrdr-api/
COPY packages/ktrdr-worker/pyproject.toml packages/ktrdr-worker/
COPY packages/ktrdr-cli/pyproject.toml packages/ktrdr-cli/
# Dependencies only (no workspace member): this layer survives every source change.
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    python3 scripts/install_profile.py torch-free \
    | xargs /opt/uv/bin/uv sync --frozen --no-dev --package ktrdr-worker --no-editable --no-install-workspace
COPY packages/ktrdr-core packages/ktrdr-core
COPY packages/ktrdr-worker packages/ktrdr-worker
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    python3 scripts/install_profile.py torch-free \
    | xargs /opt/uv/bin/uv sync --frozen --no-dev --package ktrdr-worker --no-editable
# Not shipped: pandas' and numpy's own test suites (pd.test(), np.test(); about 55 MB with
# their bytecode) and the C/Cython sources of compiled extensions (TA-Lib's 20 MB _ta_lib.c).
# No import path reads them; the checks below import what the worker runs after the trim.
RUN site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && rm -rf "$site/pandas/tests" \
    && find "$site/numpy" -type d -name tests -prune -exec rm -rf {} + \
    && find "$site" -type f \( -name '*.c' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \) -delete
# The boundary, checked in the build: no torch, scipy or scikit-learn; the backtest path and
# the backtest worker's own dependency check import and pass.
RUN for module in torch scipy sklearn; do \
        if /opt/venv/bin/python -c "import ${module}" 2>/dev/null; then \
            echo "ktrdr-worker-cpu: ${module} is importable; this image must not install it" >&2; exit 1; \
        fi; \
    done; \
    /opt/venv/bin/python -c 'import ktrdr_worker.models.backtest' \
    && /opt/venv/bin/python -c 'from ktrdr_worker.models.dependencies import validate_ml_dependencies as v; print("ktrdr-worker-cpu:", v("backtest"))' \
    && /opt/venv/bin/ktrdr-worker --help >/dev/null

FROM ${BASE_IMAGE} AS runtime
# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 ktrdr \
    && useradd --system --uid 10001 --gid ktrdr --home-dir /home/ktrdr --create-home \
        --shell /usr/sbin/nologin ktrdr
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KTRDR_WORKER_CACHE=/home/ktrdr/.cache/ktrdr-worker \
    KTRDR_WORKER_HEALTH_PORT=8081
USER 10001:10001
WORKDIR /home/ktrdr
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['KTRDR_WORKER_HEALTH_PORT'], timeout=4)"]
ENTRYPOINT ["tini", "--"]
CMD ["ktrdr-worker", "backtest"]
