"""CLI commands against a real backend process (no workers: operations stay pending)."""

import json

import pytest
from services import start_api
from typer.testing import CliRunner

from ktrdr_cli.app import app
from ktrdr_core.examples import read_example
from ktrdr_core.simulator import simulate_csv

runner = CliRunner()


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    api = start_api(tmp_path_factory.mktemp("home"))
    yield api
    api.stop()


def ktrdr(backend, *args):
    return runner.invoke(app, ["--url", backend.url, *args])


@pytest.fixture(scope="module")
def daily_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synth.csv"
    path.write_text(simulate_csv(600, "1d", seed=3))
    return path


def test_data_import_list_show_and_json(backend, daily_csv):
    imported = ktrdr(backend, "data", "import", "SYNTH", "1d", str(daily_csv))
    assert imported.exit_code == 0, imported.stderr
    assert "imported as version 1" in imported.stdout
    assert "rows      600" in imported.stdout
    again = ktrdr(backend, "data", "import", "SYNTH", "1d", str(daily_csv))
    assert "unchanged" in again.stdout
    listing = ktrdr(backend, "--json", "data", "list")
    rows = json.loads(listing.stdout)
    assert [(r["symbol"], r["timeframe"], r["rows"]) for r in rows] == [("SYNTH", "1d", 600)]
    shown = ktrdr(backend, "data", "show", "SYNTH", "1d")
    assert "missing" in shown.stdout


def test_bad_csv_is_refused_with_the_line(backend, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n"
                   "2024-01-01T00:00:00Z,10,11,9,10.5,100\n"
                   "2024-01-02T00:00:00Z,10,9,11,10.5,100\n")  # fmt: skip
    result = ktrdr(backend, "data", "import", "BAD", "1d", str(bad))
    assert result.exit_code == 1
    assert "line 3" in result.stderr
    assert "HTTP 422" in result.stderr


def test_train_starts_an_operation_that_ops_can_show_and_cancel(backend, daily_csv, tmp_path):
    ktrdr(backend, "data", "import", "SYNTH", "1d", str(daily_csv))
    strategy = tmp_path / "s.yaml"
    strategy.write_text(read_example("rsi_zones"))
    started = ktrdr(backend, "--json", "train", str(strategy), "--symbol", "SYNTH",
                    "--start", "2020-01-01", "--end", "2030-01-01", "--seed", "3")  # fmt: skip
    assert started.exit_code == 0, started.stderr
    operation_id = json.loads(started.stdout)["operation_id"]
    listing = ktrdr(backend, "ops", "list", "--kind", "training")
    assert operation_id in listing.stdout and "pending" in listing.stdout
    shown = ktrdr(backend, "ops", "show", operation_id)
    assert "seed       3" in shown.stdout
    cancelled = ktrdr(backend, "ops", "cancel", operation_id)
    assert cancelled.exit_code == 0
    assert "cancelled" in cancelled.stdout


def test_train_names_missing_data(backend, tmp_path):
    strategy = tmp_path / "s.yaml"
    strategy.write_text(read_example("rsi_zones"))  # asks for AAPL 1d, never imported
    result = ktrdr(backend, "train", str(strategy))
    assert result.exit_code == 1
    assert "AAPL" in result.stderr


def test_unknown_model_and_empty_lists(backend):
    assert "(none)" in ktrdr(backend, "models", "list").stdout
    assert "(none)" in ktrdr(backend, "workers").stdout
    malformed = ktrdr(backend, "backtest", "nosuchmodel")
    assert malformed.exit_code == 2
    assert "invalid input: model_id" in malformed.stderr
    unknown = ktrdr(backend, "backtest", "mdl_0123456789ab")
    assert unknown.exit_code == 1
    assert "HTTP 404" in unknown.stderr


def test_token_is_required_when_the_backend_has_one(tmp_path):
    api = start_api(tmp_path / "home", token="s3cret")
    try:
        refused = runner.invoke(app, ["--url", api.url, "data", "list"])
        assert refused.exit_code == 1
        assert "HTTP 401" in refused.stderr
        allowed = runner.invoke(app, ["--url", api.url, "--token", "s3cret", "data", "list"])
        assert allowed.exit_code == 0, allowed.stderr
    finally:
        api.stop()
