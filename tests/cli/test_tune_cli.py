"""`ktrdr tune` as a real process against a real backend (no workers): a search space with
problems is refused before anything runs, every problem named with file, line and path."""

from __future__ import annotations

import json

import pytest

from ktrdr_core.examples import read_example
from ktrdr_core.simulator import simulate_csv
from tests.support.cli import run_ktrdr
from tests.support.stack import start_api


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    api = start_api(tmp_path_factory.mktemp("home"))
    data = tmp_path_factory.mktemp("data") / "sim.csv"
    data.write_text(simulate_csv(1500, "1d", seed=3))
    with api.client() as client:
        client.import_data("SIM", "1d", data)
    yield api
    api.stop()


def _files(tmp_path, space: str):
    strategy = tmp_path / "mine.yaml"
    text = read_example("rsi_zones").replace("symbols: [AAPL]", "symbols: [SIM]")
    kept = [line for line in text.splitlines() if not line.startswith(("  start:", "  end:"))]
    strategy.write_text("\n".join(kept) + "\n")
    space_file = tmp_path / "space.yaml"
    space_file.write_text(space)
    return strategy, space_file


def _tune(backend, tmp_path, *args):
    return run_ktrdr("--url", backend.url, "tune", *args, home=tmp_path / "home", cwd=tmp_path)


def test_a_space_with_problems_is_refused_with_file_line_and_path(backend, tmp_path):
    strategy, space = _files(
        tmp_path,
        "indicators.rsi_14.params.period: {int: [1, 28]}\n"
        "indicators.rsi_99.params.period: {int: [7, 28]}\n"
        "labels.zigzag.lookahead: {int: [5, 60]}\n",
    )
    result = _tune(backend, tmp_path, str(strategy), "--space", str(space), "--trials", "5")
    assert result.returncode == 1, result.stdout
    assert "HTTP 422" in result.stderr
    assert f"{space}:1: value 1 makes the strategy invalid" in result.stderr
    assert f"{space}:2: names no value of the strategy" in result.stderr
    assert f"{space}:3: value 60 makes the strategy invalid" in result.stderr
    listed = run_ktrdr(
        "--url", backend.url, "--json", "tunes", "list", home=tmp_path / "home", cwd=tmp_path
    )
    assert json.loads(listed.stdout) == []


def test_a_valid_space_starts_a_study_for_a_backtest_worker(backend, tmp_path):
    strategy, space = _files(tmp_path, "indicators.rsi_14.params.period: {int: [7, 21]}\n")
    result = _tune(backend, tmp_path, str(strategy), "--space", str(space), "--trials", "5",
                   "--direction", "max", "--sampler", "random", "--keep", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "study started: op_" in result.stdout
    shown = run_ktrdr("--url", backend.url, "tunes", "show", result.stdout.split()[2],
                      home=tmp_path / "home", cwd=tmp_path)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "pending" in shown.stdout
    assert "every trial keeps its own until the study ends, then the best 2" in shown.stdout
    study_id = result.stdout.split()[2]
    listed = run_ktrdr("--url", backend.url, "tunes", "list", home=tmp_path / "home", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [row] = [line.split() for line in listed.stdout.splitlines() if line.startswith(study_id)]
    assert row[1:5] == ["pending", "rsi_zones", "0/5", "sharpe"]  # no trial ended yet
    # `ktrdr open` gives a study's own dashboard page, pending as it is.
    opened = run_ktrdr("--url", backend.url, "open", result.stdout.split()[2], "--print",
                       home=tmp_path / "home", cwd=tmp_path)  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == f"{backend.url}/#/tunes/{result.stdout.split()[2]}\n"
    bad = _tune(backend, tmp_path, str(strategy), "--space", str(space), "--direction", "up")
    assert bad.returncode == 2 and "use max or min" in bad.stderr
    none_kept = _tune(backend, tmp_path, str(strategy), "--space", str(space), "--keep", "0")
    assert none_kept.returncode == 2
    assert "Invalid value for '--keep': Input should be greater than or equal to 1" in (
        none_kept.stderr
    )
