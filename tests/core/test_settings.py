from pathlib import Path

import pytest

from ktrdr_core.settings import Settings, SettingsError


def test_defaults_give_an_embedded_sqlite_database_under_home(tmp_path):
    settings = Settings.from_env({"KTRDR_HOME": str(tmp_path)})
    assert settings.home == Path(tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path}/ktrdr.db"
    assert settings.effective_api_url == "http://127.0.0.1:8000"


def test_invalid_variable_is_named_in_the_error():
    with pytest.raises(SettingsError, match=r"KTRDR_API_PORT='99999'"):
        Settings.from_env({"KTRDR_API_PORT": "99999"})


def test_explicit_urls_win():
    settings = Settings.from_env(
        {"KTRDR_DATABASE_URL": "postgresql+psycopg://u@h/db", "KTRDR_API_URL": "http://x:9/"}
    )
    assert settings.effective_database_url == "postgresql+psycopg://u@h/db"
    assert settings.effective_api_url == "http://x:9"
