"""Fixtures shared by every test folder: real databases on loopback."""

from __future__ import annotations

import itertools
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from services import PostgresServer, start_postgres

_db_names = itertools.count()


@pytest.fixture(autouse=True)
def _run_in_a_scratch_folder(tmp_path, monkeypatch):
    """Commands that write beside the caller (charts, downloads) never land in the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> PostgresServer:
    """One real PostgreSQL server for the whole run, stopped at the end."""
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.ctl("stop")
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """An empty database of each supported kind: a SQLite file, then a fresh PostgreSQL DB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ktrdr.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"ktrdr_test_{next(_db_names)}")
