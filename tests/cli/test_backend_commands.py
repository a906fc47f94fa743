"""CLI commands against a real backend process (no workers: operations stay pending)."""

import json
import re
import types

import pytest
from typer.testing import CliRunner

from ktrdr_cli import follow as follow_module
from ktrdr_cli.app import app
from ktrdr_core.examples import read_example
from ktrdr_core.simulator import simulate_csv
from tests.support.stack import start_api

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

    followed = ktrdr(backend, "ops", "follow", operation_id)  # it ended: no waiting
    assert followed.exit_code == 1
    assert f"operation {operation_id} was cancelled" in followed.stderr
    retried = ktrdr(backend, "ops", "retry", operation_id)
    assert retried.exit_code == 0, retried.stderr
    new_id = re.search(r"retrying as (op_\w+)", retried.stdout).group(1)
    assert json.loads(ktrdr(backend, "--json", "ops", "show", new_id).stdout)["retry_of"] == (
        operation_id
    )
    again = json.loads(ktrdr(backend, "--json", "ops", "retry", operation_id).stdout)
    assert again["state"] == "pending" and again["operation_id"] not in (operation_id, new_id)
    busy = ktrdr(backend, "ops", "retry", new_id)  # pending: nothing to retry
    assert busy.exit_code == 1
    assert "HTTP 409" in busy.stderr and len(busy.stderr.strip().splitlines()) == 1


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


@pytest.fixture
def ctrl_c(monkeypatch):
    """Ctrl-C lands while `--follow` waits between two polls (where a person presses it)."""

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(follow_module, "time", types.SimpleNamespace(sleep=interrupt))


def _pending_training(backend, daily_csv, tmp_path) -> list[str]:
    ktrdr(backend, "data", "import", "SYNTH", "1d", str(daily_csv))
    strategy = tmp_path / "s.yaml"
    strategy.write_text(read_example("rsi_zones"))
    return ["train", str(strategy), "--symbol", "SYNTH", "--start", "2020-01-01",
            "--end", "2030-01-01"]  # fmt: skip


def _state(backend, operation_id: str) -> str:
    return json.loads(ktrdr(backend, "--json", "ops", "show", operation_id).stdout)["state"]


def test_ctrl_c_while_following_can_cancel_the_operation(backend, daily_csv, tmp_path, ctrl_c):
    result = runner.invoke(app, ["--url", backend.url, *_pending_training(backend, daily_csv,
                                 tmp_path), "--follow"], input="y\n")  # fmt: skip
    assert result.exit_code == 130
    operation_id = re.search(r"cancel operation (op_\w+)\?", result.stderr).group(1)
    assert "(no: stop following; it keeps running)" in result.stderr
    assert f"{operation_id}: cancelled" in result.stderr
    assert _state(backend, operation_id) == "cancelled"


def test_ctrl_c_while_following_can_just_stop_following(backend, daily_csv, tmp_path, ctrl_c):
    started = ktrdr(backend, "--json", *_pending_training(backend, daily_csv, tmp_path))
    operation_id = json.loads(started.stdout)["operation_id"]
    result = runner.invoke(app, ["--url", backend.url, "ops", "follow", operation_id], input="n\n")
    assert result.exit_code == 0
    assert f"stopped following; it keeps running: ktrdr ops follow {operation_id}" in (
        result.stderr
    )
    assert _state(backend, operation_id) == "pending"
    # No answer at all (a second Ctrl-C, or no terminal) keeps it running too.
    silent = runner.invoke(app, ["--url", backend.url, "ops", "follow", operation_id])
    assert silent.exit_code == 0
    assert _state(backend, operation_id) == "pending"
    ktrdr(backend, "ops", "cancel", operation_id)


def test_lists_and_json_on_an_empty_catalogue(backend):
    assert json.loads(ktrdr(backend, "--json", "models", "list").stdout) == []
    assert json.loads(ktrdr(backend, "--json", "workers").stdout) == []
    assert "(none)" in ktrdr(backend, "backtests", "list").stdout
    assert json.loads(ktrdr(backend, "--json", "backtests", "list").stdout) == []
    health = json.loads(ktrdr(backend, "--json", "health").stdout)
    assert health["status"] == "ok"


def test_errors_are_one_line_with_a_non_zero_exit(backend, tmp_path):
    not_a_bundle = tmp_path / "model.zip"
    not_a_bundle.write_text("not a zip")
    refused = ktrdr(backend, "models", "import", str(not_a_bundle))
    assert refused.exit_code == 1
    assert "HTTP 422" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    for args in (["models", "show", "mdl_0123456789ab"], ["backtests", "show", "op_0123456789ab"],
                 ["ops", "follow", "op_0123456789ab"], ["models", "delete", "mdl_0123456789ab"],
                 ["models", "download", "mdl_0123456789ab"]):  # fmt: skip
        result = ktrdr(backend, *args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith("error: ") and "HTTP 404" in result.stderr, args
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    bad_url = runner.invoke(app, ["--url", "localhost:8000", "health"])
    assert bad_url.exit_code == 2
    assert "'localhost:8000' (--url or KTRDR_API_URL) is not an http(s) URL" in bad_url.stderr


def test_data_delete_by_version_and_refused_while_in_use(backend, daily_csv, tmp_path):
    for seed in (1, 2):
        csv = tmp_path / f"gone{seed}.csv"
        csv.write_text(simulate_csv(50, "1d", seed=seed))
        assert ktrdr(backend, "data", "import", "GONE", "1d", str(csv)).exit_code == 0
    one = ktrdr(backend, "data", "delete", "GONE", "1d", "--version", "1")
    assert one.exit_code == 0 and one.stdout.strip() == "deleted GONE 1d v1"
    rest = json.loads(ktrdr(backend, "--json", "data", "delete", "GONE", "1d").stdout)
    assert [(d["symbol"], d["version"]) for d in rest] == [("GONE", 2)]
    gone = ktrdr(backend, "data", "show", "GONE", "1d")
    assert gone.exit_code == 1 and "HTTP 404" in gone.stderr

    started = ktrdr(backend, "--json", *_pending_training(backend, daily_csv, tmp_path))
    operation_id = json.loads(started.stdout)["operation_id"]
    refused = ktrdr(backend, "data", "delete", "SYNTH", "1d")
    assert refused.exit_code == 1 and "HTTP 409" in refused.stderr
    assert json.loads(ktrdr(backend, "--json", "data", "show", "SYNTH", "1d").stdout)["rows"] == 600
    cancelled = json.loads(ktrdr(backend, "--json", "ops", "cancel", operation_id).stdout)
    assert cancelled["state"] == "cancelled"
