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
  worker takes to stop (default 5);
- ``KTRDR_WORKER_BACKOFF_MAX``: longest pause between retries while the backend is
  unreachable (default 1);
- ``KTRDR_WORKER_THREADS``: torch CPU threads for training (default unset: torch's choice);
- ``KTRDR_WORKER_HOLD_FILE``: a path (default unset). While a file exists there, a running
  training holds at its next epoch boundary, once that epoch's checkpoint is written: the
  worker keeps its lease with heartbeats and reports that it is held; removing the file lets
  the training go on, and a cancel or a shutdown still ends it at once. For an operator who
  needs the machine back for a while (``touch`` the file) without losing the run's place.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import MAX_CLAIM_TIMEOUT_S, WORKER_ID_PATTERN, WORKER_KINDS, OperationKind
from ktrdr_core.settings import Settings, SettingsError

__all__ = ["WorkerConfig", "WorkerConfigError", "default_cache_dir", "default_worker_id"]

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


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs to know; see the module docstring for the variables.

    Durations are in seconds, sizes in MiB.
    """

    kind: OperationKind
    api_url: str
    api_token: str = ""
    worker_id: str = ""
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    cache_max_mb: int = 10240
    health_port: int | None = None
    health_host: str = "127.0.0.1"
    poll_seconds: float = 5.0
    backoff_max_seconds: float = 1.0
    threads: int | None = None
    hold_file: Path | None = None

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
        if not _WORKER_ID_RE.fullmatch(self.worker_id):
            raise WorkerConfigError(
                f"KTRDR_WORKER_ID={self.worker_id!r}: use 1-128 letters, digits, '.', '_' or "
                "'-', starting with a letter or digit"
            )
        if not 0 < self.poll_seconds <= MAX_CLAIM_TIMEOUT_S:
            raise WorkerConfigError(
                f"KTRDR_WORKER_POLL_SECONDS={self.poll_seconds}: expected more than 0 and at "
                f"most {MAX_CLAIM_TIMEOUT_S:g}"
            )
        if self.backoff_max_seconds <= 0:
            raise WorkerConfigError(
                f"KTRDR_WORKER_BACKOFF_MAX={self.backoff_max_seconds}: expected a positive number"
            )
        if self.health_port is not None and not 0 <= self.health_port <= 65535:
            raise WorkerConfigError(
                f"KTRDR_WORKER_HEALTH_PORT={self.health_port}: expected 0-65535"
            )
        if self.threads is not None and self.threads < 1:
            raise WorkerConfigError(f"KTRDR_WORKER_THREADS={self.threads}: expected at least 1")
        if self.cache_max_mb < 1:
            raise WorkerConfigError(
                f"KTRDR_WORKER_CACHE_MAX_MB={self.cache_max_mb}: expected at least 1"
            )

    @classmethod
    def from_env(cls, kind: OperationKind | str, env: dict[str, str] | None = None) -> WorkerConfig:
        """Read the KTRDR_* variables for a worker of ``kind`` (``training`` or ``backtest``).

        Raises :class:`WorkerConfigError` naming the first variable that is not usable.
        """
        env = dict(os.environ if env is None else env)
        try:
            settings = Settings.from_env(env)
        except SettingsError as exc:
            raise WorkerConfigError(str(exc)) from None

        def number(name: str, convert: type, default: object) -> object:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return convert(raw)
            except ValueError:
                raise WorkerConfigError(
                    f"{name}={raw!r}: expected {'an integer' if convert is int else 'a number'}"
                ) from None

        cache = env.get("KTRDR_WORKER_CACHE", "").strip()
        hold = env.get("KTRDR_WORKER_HOLD_FILE", "").strip()
        return cls(
            kind=OperationKind(kind),
            api_url=settings.effective_api_url,
            api_token=settings.api_token,
            worker_id=env.get("KTRDR_WORKER_ID", "").strip(),
            cache_dir=Path(cache).expanduser() if cache else default_cache_dir(),
            cache_max_mb=number("KTRDR_WORKER_CACHE_MAX_MB", int, 10240),  # type: ignore[arg-type]
            health_port=number("KTRDR_WORKER_HEALTH_PORT", int, None),  # type: ignore[arg-type]
            health_host=env.get("KTRDR_WORKER_HEALTH_HOST", "").strip() or "127.0.0.1",
            poll_seconds=number("KTRDR_WORKER_POLL_SECONDS", float, 5.0),  # type: ignore[arg-type]
            backoff_max_seconds=number("KTRDR_WORKER_BACKOFF_MAX", float, 1.0),  # type: ignore[arg-type]
            threads=number("KTRDR_WORKER_THREADS", int, None),  # type: ignore[arg-type]
            hold_file=Path(hold).expanduser() if hold else None,
        )
