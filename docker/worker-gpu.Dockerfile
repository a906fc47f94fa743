# ktrdr-worker-gpu: the training worker with the CUDA build of torch, exactly as uv.lock
# resolves it (PyPI's Linux torch wheels bundle the CUDA runtime as nvidia-* packages, so the
# slim Python base is enough; the host needs the NVIDIA driver and container toolkit).
#
# Build from the workspace root (downloads about 3 GB of CUDA wheels):
#   DOCKER_BUILDKIT=1 docker build -f docker/worker-gpu.Dockerfile -t ktrdr-worker-gpu .
# Behind a TLS-intercepting proxy add: --secret id=ca,src=/path/to/ca-bundle.crt
# Built for linux/amd64 only. The build fails if the installed torch has no CUDA, or if
# triton is installed: the gpu profile of scripts/install_profile.py leaves it out (700 MB,
# used only by torch.compile, which no training path calls; keeping it is a one-line change
# there).
# KTRDR_WORKER_REQUIRE_GPU=1: `ktrdr-worker training` refuses to start when no CUDA device
# is visible (a container started without --gpus), instead of training slowly on the CPU.

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
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    python3 scripts/install_profile.py gpu \
    | xargs /opt/uv/bin/uv sync --frozen --no-dev --package ktrdr-worker --no-editable --no-install-workspace
COPY packages/ktrdr-core packages/ktrdr-core
COPY packages/ktrdr-worker packages/ktrdr-worker
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    python3 scripts/install_profile.py gpu \
    | xargs /opt/uv/bin/uv sync --frozen --no-dev --package ktrdr-worker --no-editable
# Not shipped: the numeric packages' own test suites (pd.test(), np.test(), ...; only a
# test runner reads them) and the C/Cython sources of compiled extensions (TA-Lib's 20 MB
# _ta_lib.c). The checks below import what the worker runs after the trim.
RUN site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && rm -rf "$site/pandas/tests" \
    && find "$site/numpy" "$site/scipy" "$site/sklearn" -type d -name tests -prune -exec rm -rf {} + \
    && find "$site" -type f \( -name '*.c' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \) -delete
# The torch build, checked in the build (no GPU needed): the locked version, built with CUDA;
# and nothing the gpu profile leaves out (triton) installed.
RUN /opt/venv/bin/python -c 'import sys, tomllib, torch; \
locked = next(p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "torch"); \
sys.exit(f"ktrdr-worker-gpu: torch {torch.__version__} installed, the lock says {locked}") if torch.__version__.split("+")[0] != locked else None; \
sys.exit(f"ktrdr-worker-gpu: torch {torch.__version__} has no CUDA; this image must carry the CUDA build from the lock") if torch.version.cuda is None else None; \
print(f"ktrdr-worker-gpu: torch {torch.__version__}, CUDA {torch.version.cuda}")' \
    && python3 scripts/install_profile.py gpu --names \
    | xargs -r /opt/venv/bin/python -c 'import sys, importlib.metadata as md; \
found = [n for n in sys.argv[1:] if list(md.distributions(name=n))]; \
sys.exit(f"ktrdr-worker-gpu: {found} installed; the gpu profile of scripts/install_profile.py leaves them out") if found else None' \
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
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    KTRDR_WORKER_REQUIRE_GPU=1 \
    KTRDR_WORKER_CACHE=/home/ktrdr/.cache/ktrdr-worker \
    KTRDR_WORKER_HEALTH_PORT=8081
USER 10001:10001
WORKDIR /home/ktrdr
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['KTRDR_WORKER_HEALTH_PORT'], timeout=4)"]
ENTRYPOINT ["tini", "--"]
CMD ["ktrdr-worker", "training"]
