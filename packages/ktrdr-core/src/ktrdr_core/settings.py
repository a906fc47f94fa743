"""One settings object for every ktrdr process, read from the environment.

| variable | meaning | default |
| --- | --- | --- |
| KTRDR_HOME | folder for the database, artifacts and logs | ~/.ktrdr |
| KTRDR_DATABASE_URL | SQLAlchemy URL | sqlite:///$KTRDR_HOME/ktrdr.db |
| KTRDR_API_HOST / KTRDR_API_PORT | where the backend listens | 127.0.0.1 / 8000 |
| KTRDR_API_URL | where clients and workers find the backend | http://HOST:PORT |
| KTRDR_API_TOKEN | the bootstrap (admin) bearer token; empty disables auth (local use) | empty |
| KTRDR_TOKEN_SECRET | key of the hashes of created tokens | file `$KTRDR_HOME/token-secret` |
| KTRDR_TLS_CERT / KTRDR_TLS_KEY | the backend serves HTTPS: certificate chain, key (PEM) | HTTP |
| KTRDR_INSECURE_HTTP | 1: the backend may listen beyond loopback without TLS | 0 |
| KTRDR_CA_BUNDLE | PEM file clients and workers verify the backend against | system trust |
| KTRDR_LEASE_SECONDS | how long a claimed operation stays a worker's without a heartbeat | 30 |
| KTRDR_MAX_ATTEMPTS | lost leases an operation survives before it fails | 3 |
| KTRDR_MAX_UPLOAD_MB | largest upload (data file, artifact) the backend accepts, in MiB | 1024 |
| KTRDR_INSTANCE_ID | the backend's name in /health (at most 64 characters) | random per start |
| KTRDR_API_PROCESSES | processes `ktrdr-api serve` runs on its port (>1: PostgreSQL) | 1 |

A variable's name is ``KTRDR_`` and its field's name, upper-cased: pydantic-settings reads
them, so a subclass (the worker's ``WorkerSettings``) adds variables by adding fields. Other
``KTRDR_*`` variables (another process's) are ignored; empty ones count as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ktrdr_core.errors import KtrdrError


class SettingsError(KtrdrError):
    """An environment variable holds a value ktrdr cannot use."""


class Settings(BaseSettings):
    """Built from the environment by :meth:`from_env`; constructed directly (tests, a
    ``model_copy``), it holds what it is given and the defaults, never the environment."""

    model_config = SettingsConfigDict(
        env_prefix="KTRDR_", env_ignore_empty=True, extra="forbid", frozen=True
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".ktrdr")
    database_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_processes: int = Field(default=1, ge=1, le=64)
    api_url: str | None = None
    api_token: str = ""
    token_secret: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_http: bool = False
    ca_bundle: Path | None = None
    lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_attempts: int = Field(default=3, ge=1, le=100)
    max_upload_mb: int = Field(default=1024, ge=1)
    # Reported by /health so a caller knows which backend answers on a port (`ktrdr local up`
    # sets one per start); empty: the backend makes a random one when it starts.
    instance_id: str = Field(default="", max_length=64)

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under the home folder."""
        return self.database_url or f"sqlite:///{self.home / 'ktrdr.db'}"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def effective_api_url(self) -> str:
        return (self.api_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The constructor's arguments only: the environment is read by ``from_env``."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Read this class's KTRDR_* variables from ``env`` (default ``os.environ``).

        Raises :class:`SettingsError` naming every variable that holds an unusable value.
        """
        values = _Environment(cls, os.environ if env is None else env)()
        try:
            return cls(**values)
        except ValidationError as exc:
            prefix = cls.model_config.get("env_prefix", "")
            problems = "; ".join(
                f"{prefix}{str(err['loc'][0]).upper()}={err['input']!r}: {err['msg']}"
                if err["loc"]
                else err["msg"]
                for err in exc.errors()
            )
            raise SettingsError(f"invalid ktrdr settings: {problems}") from None


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self.environ = environ  # read by _load_env_vars, which the base __init__ calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, Any]:
        return {
            name if self.case_sensitive else name.lower(): value
            for name, value in self.environ.items()
            if not (self.env_ignore_empty and value == "")
        }
