"""Database engine and sessions: SQLite under KTRDR_HOME by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.engine import make_url

from ktrdr_core.settings import Settings

SCHEMA_REVISION = "0007"
"""The newest migration under migrations/versions (a test checks it is alembic's head)."""


POOL_SIZE = 15
"""PostgreSQL connections one API process opens at most for its requests (kept open)."""


def make_engine(settings: Settings) -> Engine:
    """Create the engine for the configured URL, creating the SQLite folder if needed."""
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Up to POOL_SIZE connections, each kept once opened: an overflow connection (SQLAlchemy's
    # default is 5 kept + 10 overflow) is closed as soon as it is returned, and under a fleet's
    # load that meant a new PostgreSQL connection (a server process forked, a login) every few
    # requests.
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=0)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets readers proceed during a write; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def ping(engine: Engine) -> None:
    """Run a trivial query; raises if the database cannot be reached."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at (alembic's ``alembic_version``); None when fresh.

    Read with SQLAlchemy alone, so a start-up that finds the schema current never imports
    alembic (a fifth of a second, which a restart that workers wait for should not spend).
    """
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def lock_key(name: str) -> int:
    """The advisory lock's key for ``name``: a stable 31-bit number (crc32), the same in
    every process and every release."""
    return zlib.crc32(f"ktrdr:{name}".encode()) & 0x7FFFFFFF


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


@contextlib.contextmanager
def advisory_lock(engine: Engine, name: str) -> Iterator[None]:
    """Hold the advisory lock ``name`` for the block, waiting for it (PostgreSQL); nothing on
    SQLite, where one process is all there is."""
    if not is_postgresql(engine):
        yield
        return
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(select(func.pg_advisory_lock(lock_key(name))))
        try:
            yield
        finally:
            connection.execute(select(func.pg_advisory_unlock(lock_key(name))))
