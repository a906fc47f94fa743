"""Schema migrations through alembic, driven from code (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from ktrdr_api.db import advisory_lock

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Engine passed through attributes so the URL (and its password) never lands in a file.
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to `revision` (default: the newest).

    Under an advisory lock on PostgreSQL: of N processes starting together, one migrates and
    the others, once it is done, find nothing left to do."""
    with advisory_lock(engine, "migrations"):
        command.upgrade(alembic_config(engine), revision)
