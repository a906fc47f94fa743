"""The worker's settings, read from the environment (durations in seconds, sizes in MiB).

- ``KTRDR_API_URL``: where the backend listens (default ``http://KTRDR_API_HOST:KTRDR_API_PORT``);
- ``KTRDR_API_TOKEN``: the bearer token the backend expects (default empty: no auth);
- ``KTRDR_WORKER_ID``: this worker's id (default ``<host>-<kind>-<6 hex>``, new per process);
- ``KTRDR_WORKER_CACHE``: folder for downloaded data and bundles and for job scratch space
  (default ``~/.cache/ktrdr-worker``);
- ``KTRDR_WORKER_CACHE_MAX_MB``: beyond this, cached downloads are evicted, least recently
  used first (default 10240);
- ``KTRDR_WORKER_HEALTH_PORT``: port of the ``/health`` endpoint, 0 for any free port
  (default unset: no endpoint); ``KTRDR_WORKER_HEALTH_HOST``: its address (127.0.0.1);
- ``KTRDR_WORKER_POLL_SECONDS``: length of one claim's long poll, also the longest an idle
  worker takes to stop (default 20: a new operation ends a poll at once, whatever its length;
  an empty poll costs the backend a request and two transactions, and a polling worker counts
  as heard from until its poll ends, so a long poll is cheap and never makes it ``lost``);
- ``KTRDR_WORKER_BACKOFF_MAX``: longest pause between retries while the backend is
  unreachable (default 1);
- ``KTRDR_WORKER_THREADS``: torch CPU threads for training (default unset: torch's choice);
- ``KTRDR_WORKER_HOLD_FILE``: a path (default unset). While a file exists there, a running
  training holds at its next epoch boundary, once that epoch's checkpoint is written: the
  worker keeps its lease with heartbeats and reports that it is held; removing the file lets
  the training go on, and a cancel or a shutdown still ends it at once. For an operator who
  needs the machine back for a while (``touch`` the file) without losing the run's place;
- ``KTRDR_WORKER_INFERENCE``: the forward pass of model backtests: ``auto`` (torch where it is
  installed, else numpy), ``numpy`` or ``torch`` (default auto; each report says which ran);
- ``KTRDR_WORKER_REQUIRE_GPU``: a training worker refuses to start when no CUDA device is
  visible (default false; the ktrdr-worker-gpu image sets it, ``0`` overrides).

:class:`WorkerSettings` reads them (pydantic-settings, like core's ``Settings``: the variable
is ``KTRDR_`` and the field's name); :class:`WorkerConfig` is what the running worker holds.
"""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import MAX_CLAIM_TIMEOUT_S, WORKER_ID_PATTERN, WORKER_KINDS, OperationKind
from ktrdr_core.settings import Settings, SettingsError

__all__ = [
    "WorkerConfig",
    "WorkerConfigError",
    "WorkerSettings",
    "default_cache_dir",
    "default_worker_id",
]

POLL_SECONDS = 20.0
"""Default length of one claim's long poll (``KTRDR_WORKER_POLL_SECONDS``)."""

_WORKER_ID_RE = re.compile(WORKER_ID_PATTERN)
_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class WorkerConfigError(KtrdrError):
    """An environment variable holds a value the worker cannot use; the message names it."""


def default_worker_id(kind: OperationKind | str, host: str | None = None) -> str:
    """``<host>-<kind>-<6 hex digits>``: the host name keeps ids readable, the random suffix
    keeps replicas scaled on one host (or restarted under the same name) apart."""
    host = host if host is not None else socket.gethostname()
    clean = _NOT_ID_CHARS.sub("-", host).strip("-._")[:80] or "worker"
    return f"{clean}-{OperationKind(kind).value}-{secrets.token_hex(3)}"


def default_cache_dir() -> Path:
    """~/.cache/ktrdr-worker: downloads survive restarts of the worker."""
    return Path.home() / ".cache" / "ktrdr-worker"


class WorkerSettings(Settings):
    """Core's settings plus the worker's KTRDR_WORKER_* variables (see the module docstring);
    ``WorkerSettings.from_env()`` raises ``SettingsError`` naming each unusable variable."""

    worker_id: str = ""  # empty: default_worker_id, new per process
    worker_cache: Path = Field(default_factory=default_cache_dir)
    worker_cache_max_mb: int = Field(default=10240, ge=1)
    worker_health_port: int | None = Field(default=None, ge=0, le=65535)
    worker_health_host: str = "127.0.0.1"
    worker_poll_seconds: float = Field(default=POLL_SECONDS, gt=0, le=MAX_CLAIM_TIMEOUT_S)
    worker_backoff_max: float = Field(default=1.0, gt=0)
    worker_threads: int | None = Field(default=None, ge=1)
    worker_hold_file: Path | None = None
    worker_inference: Literal["auto", "numpy", "torch"] = "auto"
    worker_require_gpu: bool = False

    @field_validator("worker_id")
    @classmethod
    def _usable_id(cls, value: str) -> str:
        value = value.strip()
        if value and not _WORKER_ID_RE.fullmatch(value):
            raise ValueError(
                "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("worker_cache", "worker_hold_file")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a running worker needs to know, checked where it is read
    (:class:`WorkerSettings`). Durations are in seconds, sizes in MiB.
    """

    kind: OperationKind
    api_url: str
    api_token: str = ""
    ca_bundle: Path | None = None
    worker_id: str = ""
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    cache_max_mb: int = 10240
    health_port: int | None = None
    health_host: str = "127.0.0.1"
    poll_seconds: float = POLL_SECONDS
    backoff_max_seconds: float = 1.0
    threads: int | None = None
    hold_file: Path | None = None
    inference: str = "auto"
    require_gpu: bool = False

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", OperationKind(self.kind))
            if self.kind not in WORKER_KINDS:
                raise ValueError(self.kind)
        except ValueError:
            raise WorkerConfigError(
                f"worker kind {self.kind!r}: expected training or backtest"
            ) from None
        if not self.worker_id:
            object.__setattr__(self, "worker_id", default_worker_id(self.kind))

    @classmethod
    def from_env(
        cls, kind: OperationKind | str, env: Mapping[str, str] | None = None
    ) -> WorkerConfig:
        """The configuration of a worker of ``kind`` (``training`` or ``backtest``) from the
        KTRDR_* variables in ``env`` (default ``os.environ``).

        Raises :class:`WorkerConfigError` naming each variable that is not usable.
        """
        try:
            settings = WorkerSettings.from_env(env)
        except SettingsError as exc:
            raise WorkerConfigError(str(exc)) from None
        return cls(
            kind=OperationKind(kind),
            api_url=settings.effective_api_url,
            api_token=settings.api_token,
            ca_bundle=settings.ca_bundle,
            worker_id=settings.worker_id,
            cache_dir=settings.worker_cache,
            cache_max_mb=settings.worker_cache_max_mb,
            health_port=settings.worker_health_port,
            health_host=settings.worker_health_host,
            poll_seconds=settings.worker_poll_seconds,
            backoff_max_seconds=settings.worker_backoff_max,
            threads=settings.worker_threads,
            hold_file=settings.worker_hold_file,
            inference=settings.worker_inference,
            require_gpu=settings.worker_require_gpu,
        )
