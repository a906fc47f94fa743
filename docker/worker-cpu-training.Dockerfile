# ktrdr-worker-cpu-training: the training worker (ktrdr-worker + ktrdr-core) with the CPU
# build of torch, for machines without a GPU. Backtests run from the smaller, torch-free
# ktrdr-worker-cpu image; training on a GPU from ktrdr-worker-gpu.
#
# Build from the workspace root:
#   DOCKER_BUILDKIT=1 docker build -f docker/worker-cpu-training.Dockerfile \
#       -t ktrdr-worker-cpu-training .
# Behind a TLS-intercepting proxy add: --secret id=ca,src=/path/to/ca-bundle.crt
# TORCH_CPU_INDEX: a PEP 503 index holding the CPU wheels of the locked torch version.
#
# Everything comes from uv.lock except the CUDA build of torch (the cpu-torch profile of
# scripts/install_profile.py: torch, triton, nvidia-*, cuda-*): the lock resolves torch to
# PyPI's CUDA build, so this image installs the CPU build of the same version from
# TORCH_CPU_INDEX instead (as scripts/setup-env does), and the build fails if the result can
# use CUDA.

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ARG UV_VERSION=0.13.9
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
# Dependencies only: the lock minus the CUDA build, then the CPU torch of the locked version.
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    python3 scripts/install_profile.py cpu-torch \
    | xargs /opt/uv/bin/uv sync --frozen --no-dev --package ktrdr-worker --no-editable --no-install-workspace
# Declared here, not above: a new index URL re-runs only this step, not the sync above.
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    torch_version="$(python3 -c 'import tomllib; print(next(p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "torch"))')" \
    && /opt/uv/bin/uv pip install --python /opt/venv/bin/python --no-deps \
        --index-url "${TORCH_CPU_INDEX}" "torch==${torch_version}"
COPY packages/ktrdr-core packages/ktrdr-core
COPY packages/ktrdr-worker packages/ktrdr-worker
# --inexact: keep the CPU torch installed above (an exact sync would remove it).
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    python3 scripts/install_profile.py cpu-torch \
    | xargs /opt/uv/bin/uv sync --frozen --inexact --no-dev --package ktrdr-worker --no-editable
# Not shipped: the numeric packages' own test suites (pd.test(), np.test(), ...; only a
# test runner reads them) and the C/Cython sources of compiled extensions (TA-Lib's 20 MB
# _ta_lib.c). The checks below import what the worker runs after the trim.
RUN site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && rm -rf "$site/pandas/tests" \
    && find "$site/numpy" "$site/scipy" "$site/sklearn" -type d -name tests -prune -exec rm -rf {} + \
    && find "$site" -type f \( -name '*.c' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \) -delete
# The torch build, checked in the build: the locked version, and no CUDA.
RUN /opt/venv/bin/python -c 'import sys, tomllib, torch; \
locked = next(p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "torch"); \
sys.exit(f"ktrdr-worker-cpu-training: torch {torch.__version__} installed, the lock says {locked}") if torch.__version__.split("+")[0] != locked else None; \
sys.exit(f"ktrdr-worker-cpu-training: torch {torch.__version__} is a CUDA build (CUDA {torch.version.cuda}); this image must carry the CPU build: check TORCH_CPU_INDEX") if torch.version.cuda is not None else None; \
from ktrdr_worker.models.dependencies import validate_ml_dependencies; \
import pathlib; \
cuda = sorted(d.name for d in pathlib.Path(torch.__file__).parents[1].glob("nvidia*")); \
sys.exit(f"ktrdr-worker-cpu-training: CUDA packages installed: {cuda}") if cuda else None; \
print("ktrdr-worker-cpu-training:", validate_ml_dependencies())'

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
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['KTRDR_WORKER_HEALTH_PORT'], timeout=4)"]
ENTRYPOINT ["tini", "--"]
CMD ["ktrdr-worker", "training"]
