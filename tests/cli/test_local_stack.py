"""The research loop from the command line against one real local stack (`ktrdr local up`).

`ktrdr local ...` and `ktrdr quickstart` run as real processes; the other commands run
in-process through typer's runner against the same stack. Quickstart trains the model and
runs the backtest the later tests read; one short training run gives a model to delete.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ktrdr_cli.app import app
from ktrdr_core.examples import read_example
from ktrdr_core.simulator import simulate_csv

pytestmark = pytest.mark.slow  # three processes, two of them import torch; one real training

PAGE = r"(http://127\.0\.0\.1:\d+)/#/backtests/(op_\w+)"
"""A backtest's page in the dashboard, as the CLI prints it."""
runner = CliRunner()


def ktrdr(stack, *args: str, input: str | None = None):
    result = runner.invoke(app, ["--url", stack.url, *args], input=input)
    return result


def status_row(stack) -> str:
    """The `ktrdr local status` line of this stack's slot."""
    status = stack.ktrdr("local", "status")
    return next(line for line in status.stdout.splitlines() if line.startswith(f"{stack.slot} "))


def json_of(result) -> object:
    assert result.exit_code == 0, f"{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def quickstart(local_stack):
    """`ktrdr quickstart --slot N` on the running stack: (process result, model id, backtest id)."""
    result = local_stack.ktrdr("quickstart", "--slot", str(local_stack.slot), timeout=300)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{local_stack.logs()}"
    model_id = re.search(r"backtesting model (mdl_\w+)", result.stdout).group(1)
    backtest_id = re.search(PAGE, result.stdout.splitlines()[-1]).group(2)
    return result, model_id, backtest_id


@pytest.fixture(scope="module")
def tiny_strategy(tmp_path_factory) -> Path:
    """The rsi_zones example cut to three epochs on CPU: a real training run of seconds."""
    text = read_example("rsi_zones").replace("epochs: 200", "epochs: 3")
    text = text.replace("device: auto", "device: cpu")
    path = tmp_path_factory.mktemp("strategy") / "tiny.yaml"
    path.write_text(text)
    return path


def test_local_up_status_and_logs(local_stack):
    assert f"slot {local_stack.slot}) is up at {local_stack.url}" in local_stack.up.stdout
    assert f"logs  {local_stack.slot_home / 'logs'}" in local_stack.up.stdout

    again = local_stack.ktrdr("--json", "local", "up", "--slot", str(local_stack.slot))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["url"] == local_stack.url  # already up: the same stack

    row = status_row(local_stack)
    assert "yes" in row and "api:up, training-worker:up, backtest-worker:up" in row
    rows = json.loads(local_stack.ktrdr("--json", "local", "status").stdout)
    assert [(r["slot"], r["healthy"]) for r in rows] == [(local_stack.slot, True)]

    logs = local_stack.ktrdr("local", "logs", "api", "--slot", str(local_stack.slot), "-n", "5")
    assert logs.returncode == 0
    assert logs.stdout.startswith(f"==> {local_stack.slot_home / 'logs' / 'api.log'}")
    slot = str(local_stack.slot)
    as_json = json.loads(local_stack.ktrdr("--json", "local", "logs", "training-worker",
                                           "--slot", slot).stdout)  # fmt: skip
    assert as_json["service"] == "training-worker" and as_json["lines"]
    unknown = local_stack.ktrdr("local", "logs", "nginx", "--slot", str(local_stack.slot))
    assert unknown.returncode == 2
    assert "unknown service 'nginx'" in unknown.stderr


def test_quickstart_prints_the_report_and_ends_with_its_page(local_stack, quickstart):
    result, _, _ = quickstart
    out = result.stdout
    assert f"[1/6] starting the local stack (slot {local_stack.slot})" in out
    assert "SYNTHETIC data" in out and "(synthetic)" in out
    assert "every number above comes from synthetic data" in out
    assert "baseline (always" in out  # training metrics beside the majority class
    assert re.search(r"^metric +strategy +buy & hold$", out, re.MULTILINE)
    assert re.search(r"^max_drawdown ", out, re.MULTILINE)
    assert "signals: " in out
    assert re.search(r"quickstart finished in \d+ s", out)
    # The last line is the backtest's page: the dashboard answers there, and the series
    # the page reads exist for that backtest.
    url = out.splitlines()[-1]
    base, backtest_id = re.fullmatch(PAGE, url).groups()
    page = httpx.get(base + "/", timeout=30)
    assert page.status_code == 200 and '<script type="module" src="/ui/app.js">' in page.text
    series = httpx.get(f"{base}/api/v1/backtests/{backtest_id}/series", timeout=30).json()
    assert series["format"] == "ktrdr-backtest-series/1"
    # The simulated CSV goes under KTRDR_HOME, not the user's home folder.
    assert list((local_stack.home / "quickstart").glob("SYNTH_1d_seed*.csv"))


def test_workers_and_health(local_stack):
    workers = ktrdr(local_stack, "workers")
    assert workers.exit_code == 0, workers.stderr
    kinds = {w["kind"] for w in json_of(ktrdr(local_stack, "--json", "workers"))}
    assert kinds == {"training", "backtest"}
    assert "training" in workers.stdout and "backtest" in workers.stdout
    health = ktrdr(local_stack, "health")
    assert health.exit_code == 0
    assert f"backend {local_stack.url}: ok" in health.stdout
    assert json_of(ktrdr(local_stack, "--json", "health"))["status"] == "ok"


def test_train_follow_shows_progress_and_test_metrics(local_stack, quickstart, tiny_strategy):
    result = ktrdr(local_stack, "train", str(tiny_strategy), "--symbol", "SYNTH",
                   "--start", "2020-01-01", "--end", "2031-01-01", "--follow")  # fmt: skip
    assert result.exit_code == 0, f"{result.stdout}\n{result.stderr}\n{local_stack.logs()}"
    # Not a terminal: one line per change of state or progress, never a silent wait.
    lines = result.stdout.splitlines()
    assert lines[0].startswith("pending") or lines[0].startswith("running"), lines[:3]
    assert any(line.startswith("completed   100%") for line in lines), lines
    assert "model trained on CPU: 3 epochs" in result.stdout
    assert "baseline (always" in result.stdout
    assert "what the model listens to:" in result.stdout
    model_id = re.search(r"^model: (mdl_\w+)$", result.stdout, re.MULTILINE).group(1)
    assert f"backtest it with: ktrdr backtest {model_id} --follow" in result.stdout

    # The model list now holds both; this one can be exported, deleted and imported back.
    listed = {m["model_id"] for m in json_of(ktrdr(local_stack, "--json", "models", "list"))}
    assert {model_id, quickstart[1]} <= listed


def test_backtest_follow_reports_and_compare(local_stack, quickstart, tmp_path):
    _, model_id, first = quickstart
    result = ktrdr(local_stack, "backtest", model_id, "--follow")
    assert result.exit_code == 0, f"{result.stdout}\n{result.stderr}"
    assert "completed" in result.stdout
    assert re.search(r"^metric +strategy +buy & hold$", result.stdout, re.MULTILINE)
    assert "buy & hold: the asset held from the first bar's close to the last bar's, no costs" in (
        result.stdout
    )
    assert "IN SAMPLE" not in result.stdout and result.stderr == ""
    # The local stack's worker has torch, so torch computed the probabilities, and says so.
    assert "test period, torch inference)" in result.stdout
    assert re.search(r"^page: " + PAGE + "$", result.stdout, re.MULTILINE)

    report = json_of(ktrdr(local_stack, "--json", "backtest", model_id, "--follow",
                           "--capital", "5000"))  # fmt: skip
    assert report["period"] == "test" and "sharpe" in report["metrics"]
    assert report["inference"] == "torch"

    listing = ktrdr(local_stack, "backtests", "list", "--status", "completed")
    ids = re.findall(r"^(op_\w+) +completed +" + model_id, listing.stdout, re.MULTILINE)
    assert first in ids and len(ids) == 3
    listed = json_of(ktrdr(local_stack, "--json", "backtests", "list"))
    assert {b["operation_id"] for b in listed} >= set(ids)
    second = next(i for i in ids if i != first)

    html = tmp_path / "report.html"
    shown = ktrdr(local_stack, "backtests", "show", first, "--html", str(html))
    assert shown.exit_code == 0, shown.stderr
    assert f"report: {html}" in shown.stdout
    text = html.read_text()
    assert text.startswith("<!doctype html>") and "TradingView Lightweight Charts" in text
    assert '"format":"ktrdr-backtest-series/1"' in text  # the data inlined: opens offline
    assert json_of(ktrdr(local_stack, "--json", "backtests", "show", first))["metrics"]
    # `ktrdr open --print`: the page of a backtest, a model, or the dashboard, as URLs.
    opened = ktrdr(local_stack, "open", first, "--print")
    assert opened.stdout == f"{local_stack.url}/#/backtests/{first}\n"
    model_page = ktrdr(local_stack, "open", model_id, "--print").stdout
    assert model_page == f"{local_stack.url}/#/models/{model_id}\n"
    unknown = ktrdr(local_stack, "open", "mdl_000000000000", "--print")
    assert unknown.exit_code == 1 and "no model 'mdl_000000000000'" in unknown.stderr
    a_folder = tmp_path / "a-folder"
    a_folder.mkdir()
    blocked = ktrdr(local_stack, "backtests", "show", first, "--html", str(a_folder))
    assert blocked.exit_code == 1
    assert blocked.stderr.startswith("error: ") and len(blocked.stderr.splitlines()) == 1

    compared = ktrdr(local_stack, "backtests", "compare", first, second)
    assert compared.exit_code == 0
    lines = compared.stdout.splitlines()
    assert re.match(rf"^metric +{first} +{second}$", lines[0])
    # Which bars each column covers comes first; counts are whole numbers.
    assert re.match(r"^period +\d{4}-\d\d-\d\d → \d{4}-\d\d-\d\d +\d{4}-", lines[1]), lines[1]
    assert re.search(r"^num_trades +\d+ +\d+$", compared.stdout, re.MULTILINE)
    assert re.search(r"^final_equity ", compared.stdout, re.MULTILINE)
    both = json_of(ktrdr(local_stack, "--json", "backtests", "compare", first, second))
    assert set(both) == {first, second}
    lonely = ktrdr(local_stack, "backtests", "compare", first)
    assert lonely.exit_code == 2 and "at least two" in lonely.stderr


def test_a_backtest_over_the_training_data_is_called_in_sample(local_stack, quickstart):
    _, model_id, _ = quickstart
    splits = json_of(ktrdr(local_stack, "--json", "models", "show", model_id))["metadata"]["splits"]
    window = ("--start", splits["train"]["start"][:10], "--end", splits["train"]["end"][:10])
    warned = ktrdr(local_stack, "backtest", model_id, *window)
    assert warned.exit_code == 0, warned.stderr
    assert "warning: this period overlaps the data the model learned from (train " in (
        warned.stderr
    )
    assert "pass --in-sample if that is what you want" in warned.stderr
    meant = ktrdr(local_stack, "backtest", model_id, *window, "--in-sample", "--follow")
    assert meant.exit_code == 0, meant.stderr
    assert meant.stderr == ""  # said on purpose: no warning
    assert "IN SAMPLE: these bars overlap the model's train data" in meant.stdout
    op = re.search(PAGE, meant.stdout).group(2)
    assert json_of(ktrdr(local_stack, "--json", "backtests", "show", op))["in_sample"] == ["train"]


def test_ops_follow_and_list_a_finished_operation(local_stack, quickstart):
    _, _, backtest_id = quickstart
    followed = ktrdr(local_stack, "ops", "follow", backtest_id)
    assert followed.exit_code == 0
    assert f"{backtest_id}  backtest  completed  100%" in followed.stdout
    as_json = json_of(ktrdr(local_stack, "--json", "ops", "follow", backtest_id))
    assert as_json["state"] == "completed"
    listing = json_of(ktrdr(local_stack, "--json", "ops", "list", "--kind", "training"))
    assert listing and all(op["kind"] == "training" for op in listing)
    again = ktrdr(local_stack, "ops", "retry", backtest_id)  # only failed/cancelled ones
    assert again.exit_code == 1
    assert "only a failed or cancelled one is retried (HTTP 409)" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_models_show_download_export_delete_import(local_stack, quickstart, tmp_path):
    _, model_id, _ = quickstart
    listing = ktrdr(local_stack, "models", "list")
    assert re.search(rf"^{model_id} +rsi_zones +SYNTH/1d", listing.stdout, re.MULTILINE)

    shown = ktrdr(local_stack, "models", "show", model_id)
    assert shown.exit_code == 0
    assert re.search(r"^  features +6: 1d_rsi_zone_oversold", shown.stdout, re.MULTILINE)
    assert json_of(ktrdr(local_stack, "--json", "models", "show", model_id))["name"] == "rsi_zones"

    downloaded = ktrdr(local_stack, "models", "download", model_id, "-o", str(tmp_path / "a.zip"))
    assert downloaded.exit_code == 0 and f"saved {tmp_path / 'a.zip'}" in downloaded.stdout
    saved = json_of(ktrdr(local_stack, "--json", "models", "export", model_id,
                          str(tmp_path / "b.zip")))  # fmt: skip
    assert saved["path"] == str(tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert zipfile.is_zipfile(tmp_path / "b.zip")
    nowhere = ktrdr(local_stack, "models", "download", model_id, "-o", str(tmp_path / "no/x.zip"))
    assert nowhere.exit_code == 1
    assert nowhere.stderr == f"error: {tmp_path / 'no'}: no such folder (for x.zip)\n"

    # A model with no backtests (the one train --follow made) goes, then comes back by import.
    models = json_of(ktrdr(local_stack, "--json", "models", "list"))
    spare = next(m["model_id"] for m in models if m["model_id"] != model_id)
    bundle = tmp_path / "spare.zip"
    assert ktrdr(local_stack, "models", "export", spare, str(bundle)).exit_code == 0
    deleted = ktrdr(local_stack, "models", "delete", spare)
    assert deleted.exit_code == 0 and f"deleted {spare}" in deleted.stdout
    gone = ktrdr(local_stack, "models", "show", spare)
    assert gone.exit_code == 1 and "HTTP 404" in gone.stderr
    imported = ktrdr(local_stack, "models", "import", str(bundle))
    assert imported.exit_code == 0, imported.stderr
    new_id = re.search(r"^imported (mdl_\w+) \(rsi_zones\)", imported.stdout).group(1)
    assert new_id == spare  # the same file is the same model: the re-import restores its id
    assert "trained on SYNTH/1d" in imported.stdout
    models = json_of(ktrdr(local_stack, "--json", "models", "list"))
    assert new_id in {m["model_id"] for m in models}
    same = json_of(ktrdr(local_stack, "--json", "models", "import", str(bundle)))
    assert same["model_id"] == new_id  # the same bundle again: the existing model
    missing = ktrdr(local_stack, "models", "import", str(tmp_path / "nope.zip"))
    assert missing.exit_code == 1 and "no such file" in missing.stderr


def test_quickstart_with_a_real_csv_and_json_output(local_stack, quickstart):
    csv = local_stack.work / "mine.csv"
    csv.write_text(simulate_csv(800, "1d", seed=11))  # stands in for a user's own file
    result = local_stack.ktrdr("--json", "quickstart", "--slot", str(local_stack.slot),
                               "--data", str(csv), "--symbol", "MINE", timeout=300)  # fmt: skip
    assert result.returncode == 0, f"{result.stderr}\n{local_stack.logs()}"
    document = json.loads(result.stdout)  # nothing but the document on stdout
    assert document["synthetic"] is False
    assert document["report"]["symbol"] == "MINE" and document["report"]["metrics"]
    assert document["model_id"].startswith("mdl_")
    assert re.fullmatch(PAGE, document["page"])


def test_quickstart_shows_the_model_finding_the_planted_effect(local_stack, quickstart):
    result, model_id, _ = quickstart
    out = result.stdout
    assert (
        "planted effect (ktrdr_core.simulator.RSI_REVERSION): after a close with RSI(14) ≤ 30 "
        "the price drifts up, after one ≥ 70 down" in out
    )
    found = re.search(
        r"^the model found the planted effect: balanced accuracy (\d\.\d+) against (\d\.\d+) "
        r"for the baseline \(\+(\d+\.\d) points; found means ≥ 10 points and trades\), "
        r"(\d+) trades, 1d_rsi_zone_(?:oversold|overbought) ranks (\d) of 6 in the explanation$",
        out,
        re.MULTILINE,
    )
    assert found, out
    accuracy, baseline, points, trades, rank = found.groups()
    assert float(accuracy) - float(baseline) >= 0.10 and float(points) >= 10.0
    assert int(trades) > 0 and int(rank) <= 3
    # The trades are the backtest's own, in its report.
    assert re.search(rf"^num_trades +{trades} ", out, re.MULTILINE)
    assert f"[6/6] checking model {model_id} for lookahead" in out
    assert re.search(
        r"^lookahead: PASS — 6 feature columns, the settled labels and the model's decisions at "
        r"50 cut points equal the full-data values$",
        out,
        re.MULTILINE,
    )


def test_without_the_planted_effect_the_same_seed_learns_next_to_nothing(local_stack, quickstart):
    """The control: the same market, seed and example without the effect. The model then stays
    within 3 points of the baseline, so the quickstart's figures come from the effect."""
    result = local_stack.ktrdr("--json", "quickstart", "--slot", str(local_stack.slot),
                               "--no-planted", timeout=300)  # fmt: skip
    assert result.returncode == 0, f"{result.stderr}\n{local_stack.logs()}"
    document = json.loads(result.stdout)
    assert document["synthetic"] is True and document["planted"] is False
    found = document["found"]
    assert found["points_above_baseline"] <= 3.0, found
    assert found["found"] is False
    assert document["lookahead"]["status"] == "pass"
    assert list((local_stack.home / "quickstart").glob("SYNTH_1d_seed7_plain.csv"))


def test_local_down_stops_every_process(local_stack):
    down = local_stack.ktrdr("local", "down", "--slot", str(local_stack.slot))
    assert down.returncode == 0
    assert down.stdout.strip() == "stopped api, training-worker, backtest-worker"
    row = status_row(local_stack)
    assert " no " in row and "-" in row
    unreachable = ktrdr(local_stack, "data", "list")
    assert unreachable.exit_code == 1
    assert "is the backend running? try `ktrdr local up`" in unreachable.stderr
    again = local_stack.ktrdr("local", "down", "--slot", str(local_stack.slot))
    assert again.stdout.strip() == f"nothing running in slot {local_stack.slot}"
    as_json = local_stack.ktrdr("--json", "local", "down", "--slot", str(local_stack.slot))
    assert json.loads(as_json.stdout) == {"stopped": []}
