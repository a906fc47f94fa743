# ktrdr-dev: every member (editable) plus the dev tools, with the CPU build of torch; for
# development and sandboxes. The checkout is at /workspace, the environment at /opt/venv.
#
# Build from the workspace root:
#   DOCKER_BUILDKIT=1 docker build -f docker/dev.Dockerfile -t ktrdr-dev .
# Behind a TLS-intercepting proxy add: --secret id=ca,src=/path/to/ca-bundle.crt
# TORCH_CPU_INDEX: a PEP 503 index holding the CPU wheels of the locked torch version.

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS dev
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update \
    && apt-get install -y --no-install-recommends tini git \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
# Created before anything is copied, so nothing needs a chown -R layer.
RUN groupadd --system --gid 10001 ktrdr \
    && useradd --uid 10001 --gid ktrdr --home-dir /home/ktrdr --create-home --shell /bin/bash ktrdr
# uv stays in this image (developers re-sync with it), in its own virtual environment.
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    python3 -m venv /opt/uv && /opt/uv/bin/pip install "uv==${UV_VERSION}" \
    && ln -s /opt/uv/bin/uv /usr/local/bin/uv
WORKDIR /workspace
COPY pyproject.toml uv.lock ./
# What the lock holds but this image leaves out: one list, shared with scripts/setup-env.
COPY scripts/install_profile.py scripts/lock_boundaries.py scripts/
COPY packages/ktrdr-core/pyproject.toml packages/ktrdr-core/
COPY packages/ktrdr-api/pyproject.toml packages/ktrdr-api/
COPY packages/ktrdr-worker/pyproject.toml packages/ktrdr-worker/
COPY packages/ktrdr-cli/pyproject.toml packages/ktrdr-cli/
# Every member's dependencies and the dev group, minus the CUDA build; then CPU torch.
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    python3 scripts/install_profile.py cpu-torch \
    | xargs uv sync --frozen --all-packages --group dev --no-install-workspace
# Declared here, not above: a new index URL re-runs only this step, not the sync above.
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    torch_version="$(python3 -c 'import tomllib; print(next(p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "torch"))')" \
    && uv pip install --python /opt/venv/bin/python --no-deps \
        --index-url "${TORCH_CPU_INDEX}" "torch==${torch_version}"
COPY packages packages
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    python3 scripts/install_profile.py cpu-torch \
    | xargs uv sync --frozen --inexact --all-packages --group dev \
    && /opt/venv/bin/python -c "import torch, sys; sys.exit('ktrdr-dev: torch has CUDA' if torch.version.cuda else 0)" \
    && /opt/venv/bin/ktrdr --help >/dev/null
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001:10001
# A development shell has no service to watch.
HEALTHCHECK NONE
ENTRYPOINT ["tini", "--"]
CMD ["bash"]
