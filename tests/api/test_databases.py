"""The backend runs on both supported databases, with the same migrations."""

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from ktrdr_api.app import create_app
from ktrdr_api.db import make_engine
from ktrdr_api.migrations import alembic_config, upgrade
from ktrdr_core.settings import Settings


def test_migrations_apply_and_match_the_models(database_url, tmp_path):
    settings = Settings(home=tmp_path, database_url=database_url)
    engine = make_engine(settings)
    upgrade(engine)
    assert "alembic_version" in inspect(engine).get_table_names()
    # Raises when the models hold changes no migration describes.
    command.check(alembic_config(engine))


def test_health_is_ok_on_each_database(database_url, tmp_path):
    settings = Settings(home=tmp_path, database_url=database_url)
    with TestClient(create_app(settings)) as client:
        body = client.get("/api/v1/health").json()
    assert body["status"] == "ok" and body["database"] == "ok"
