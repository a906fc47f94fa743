"""One settings object for every ktrdr process, read from the environment.

| variable | meaning | default |
| --- | --- | --- |
| KTRDR_HOME | folder for the database, artifacts and logs | ~/.ktrdr |
| KTRDR_DATABASE_URL | SQLAlchemy URL | sqlite:///$KTRDR_HOME/ktrdr.db |
| KTRDR_API_HOST / KTRDR_API_PORT | where the backend listens | 127.0.0.1 / 8000 |
| KTRDR_API_URL | where clients and workers find the backend | http://HOST:PORT |
| KTRDR_API_TOKEN | shared bearer token; empty disables auth (local use) | empty |
| KTRDR_LEASE_SECONDS | how long a claimed operation stays a worker's without a heartbeat | 30 |
| KTRDR_MAX_ATTEMPTS | lost leases an operation survives before it fails | 3 |
| KTRDR_MAX_UPLOAD_MB | largest upload (data file, artifact) the backend accepts, in MiB | 1024 |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ktrdr_core.errors import KtrdrError


class SettingsError(KtrdrError):
    """An environment variable holds a value ktrdr cannot use."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".ktrdr")
    database_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_url: str | None = None
    api_token: str = ""
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
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every KTRDR_* variable; an invalid one raises SettingsError naming it."""
        env = os.environ if env is None else env
        names = {
            "home": "KTRDR_HOME",
            "database_url": "KTRDR_DATABASE_URL",
            "api_host": "KTRDR_API_HOST",
            "api_port": "KTRDR_API_PORT",
            "api_url": "KTRDR_API_URL",
            "api_token": "KTRDR_API_TOKEN",
            "lease_seconds": "KTRDR_LEASE_SECONDS",
            "max_attempts": "KTRDR_MAX_ATTEMPTS",
            "max_upload_mb": "KTRDR_MAX_UPLOAD_MB",
            "instance_id": "KTRDR_INSTANCE_ID",
        }
        values = {field: env[var] for field, var in names.items() if env.get(var)}
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{names[str(err['loc'][0])]}={values.get(str(err['loc'][0]))!r}: {err['msg']}"
                for err in exc.errors()
            )
            raise SettingsError(f"invalid ktrdr settings: {problems}") from None
