"""The hostile corpus through the `ktrdr` command: `strategies validate` (offline) and
`data import` against a real backend process; a non-zero exit and the precise message."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from ktrdr_cli.app import app
from ktrdr_core.simulator import simulate_csv
from tests.support.bundles import evil_bundle
from tests.support.hostile_corpus import TIMEFRAME, Expected, market_data_cases, strategy_cases
from tests.support.stack import start_api

runner = CliRunner()


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    api = start_api(tmp_path_factory.mktemp("home"))
    yield api
    api.stop()


@pytest.fixture(scope="module")
def stored(backend, tmp_path_factory):
    """A good hourly dataset imported before any bad file: (its CLI JSON, the listing)."""
    good = tmp_path_factory.mktemp("good") / "good.csv"
    good.write_text(simulate_csv(300, TIMEFRAME, seed=11))
    imported = runner.invoke(app, ["--url", backend.url, "--json", "data", "import", "HOSTILE",
                                   TIMEFRAME, str(good)])  # fmt: skip
    assert imported.exit_code == 0, imported.stderr
    listing = runner.invoke(app, ["--url", backend.url, "--json", "data", "list", "--all-versions"])
    return json.loads(imported.stdout), json.loads(listing.stdout)


@pytest.mark.parametrize("case", strategy_cases(), ids=lambda c: c.id)
def test_strategies_validate_exits_1_with_the_path_and_line(case: Expected):
    result = runner.invoke(app, ["strategies", "validate", str(case.file)])
    assert result.exit_code == 1, result.output
    where = f"{case.file}:{case.line}: " if case.line is not None else f"{case.file}: "
    key = f"{case.path}: " if case.path else ""
    lines = [line for line in result.stderr.splitlines() if line.startswith(where + key)]
    assert lines, result.stderr
    assert any(all(text in line for text in case.contains) for line in lines), lines
    assert f"{case.file}: " in result.stderr.splitlines()[-1]  # the "N problem(s)" summary


@pytest.mark.parametrize("case", market_data_cases(), ids=lambda c: c.id)
def test_data_import_exits_1_with_the_line_and_rule(backend, stored, case: Expected):
    result = runner.invoke(
        app, ["--url", backend.url, "data", "import", "HOSTILE", TIMEFRAME, str(case.file)]
    )
    assert result.exit_code == 1, result.output
    assert "(HTTP 422)" in result.stderr
    where = f"line {case.line} ({case.rule}): " if case.line is not None else f"({case.rule}): "
    lines = [line.strip() for line in result.stderr.splitlines() if where in line]
    assert lines, result.stderr
    assert any(all(text in line for text in case.contains) for line in lines), lines


def test_bad_imports_left_the_stored_dataset_alone(backend, stored, tmp_path):
    """Runs after the corpus (file order): same listing, same bytes as first imported."""
    dataset, listing = stored
    after = runner.invoke(app, ["--url", backend.url, "--json", "data", "list", "--all-versions"])
    assert json.loads(after.stdout) == listing
    assert [d["version"] for d in listing] == [1]
    # `ktrdr` has no data download command: the client's verified download is what a worker uses.
    from ktrdr_core.client import KtrdrClient

    with KtrdrClient(backend.url) as client:
        sha = client.download_data("HOSTILE", TIMEFRAME, tmp_path / "back.csv")
    assert sha == dataset["checksum"]
    assert hashlib.sha256((tmp_path / "back.csv").read_bytes()).hexdigest() == sha


@pytest.mark.parametrize("as_archive", [True, False], ids=["torch-archive", "bare-pickle"])
def test_models_import_refuses_a_bundle_that_would_run_code(backend, tmp_path, as_archive):
    marker = tmp_path / "code-ran"
    bundle = tmp_path / "evil.zip"
    bundle.write_bytes(evil_bundle(marker, as_archive=as_archive))
    result = runner.invoke(app, ["--url", backend.url, "models", "import", str(bundle)])
    assert result.exit_code == 1, result.output
    assert "not a safetensors file" in result.stderr and "(HTTP 422)" in result.stderr
    listing = runner.invoke(app, ["--url", backend.url, "--json", "models", "list"])
    assert json.loads(listing.stdout) == []
    assert not marker.exists()
