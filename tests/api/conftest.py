"""Fixtures for the backend tests: an app on a fresh KTRDR_HOME with a fake clock."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from ktrdr_api.app import create_app
from ktrdr_api.db import make_engine
from ktrdr_api.deps import Backend
from ktrdr_api.migrations import upgrade
from ktrdr_core.settings import Settings
from tests.support.api import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory):
    """A SQLite file migrated once; each test starts from a copy (the app still runs its
    migrations at start-up, which then find nothing to do)."""
    home = tmp_path_factory.mktemp("template")
    engine = make_engine(Settings(home=home))
    upgrade(engine)
    engine.dispose()
    return home / "ktrdr.db"


@pytest.fixture
def settings(tmp_path, migrated_sqlite) -> Settings:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(migrated_sqlite, home / "ktrdr.db")
    return Settings(home=home, lease_seconds=30, max_attempts=3)


@pytest.fixture
def client(settings, clock):
    """A TestClient with the lifespan running; leases are swept only when a test says so."""
    app = create_app(settings, clock=clock, sweep_interval_s=3600)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def backend(client) -> Backend:
    return client.app.state.backend
