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


def test_every_bad_variable_is_named_and_other_processes_variables_are_ignored():
    env = {"KTRDR_API_PORT": "x", "KTRDR_LEASE_SECONDS": "0", "KTRDR_WORKER_THREADS": "2"}
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert "KTRDR_API_PORT='x': Input should be a valid integer" in str(raised.value)
    assert "KTRDR_LEASE_SECONDS='0': Input should be greater than 0" in str(raised.value)
    # The worker's variables belong to its subclass; empty variables count as unset.
    settings = Settings.from_env({"KTRDR_WORKER_ID": "w-1", "KTRDR_API_PORT": ""})
    assert settings.api_port == 8000


def test_the_environment_is_read_by_from_env_only(monkeypatch, tmp_path):
    monkeypatch.setenv("KTRDR_API_TOKEN", "from-the-shell")
    assert Settings.from_env().api_token == "from-the-shell"
    assert Settings.from_env({}).api_token == ""  # an explicit mapping is all there is
    assert Settings(home=tmp_path).api_token == ""  # constructed: what it is given
    with pytest.raises(ValueError, match="Extra inputs"):
        Settings(home=tmp_path, api_tokn="typo")
