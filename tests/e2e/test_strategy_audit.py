"""`ktrdr strategies audit` end to end: the CLI as a process, the API and a training worker as
real processes, real market data (GOOG daily, EURUSD hourly and its 4-hour bars). The audit
passes on the three shipped examples; with --train it trains twice and checks
reproducibility; --json carries every check. The checks' ability to catch what they exist to
catch is tests/worker/strategy_audit."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ktrdr_core.examples import read_example
from ktrdr_core.protocol import WorkerStatus
from tests.support.cli import run_ktrdr
from tests.support.market_data import eurusd_csv, goog_daily_csv
from tests.support.stack import ApiServer, WorkerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # two processes, one of them imports torch; two real trainings

WHOLE = ("--start", "2004-01-01", "--end", "2018-12-31")


def four_hour_csv(hourly: Path, dest: Path) -> Path:
    """EURUSD's hourly bars aggregated into 4-hour bars (open of the first, extremes, close of
    the last, summed volume), bars opening at 00:00, 04:00, …; without pandas."""
    buckets: dict[str, list[list[str]]] = {}
    with hourly.open(newline="") as raw:
        rows = csv.reader(raw)
        next(rows)
        for stamp, *values in rows:
            hour = int(stamp[11:13])
            buckets.setdefault(f"{stamp[:11]}{hour - hour % 4:02d}:00:00Z", []).append(values)
    with dest.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for stamp, bars in buckets.items():
            writer.writerow([
                stamp, bars[0][0], max(float(b[1]) for b in bars),
                min(float(b[2]) for b in bars), bars[-1][3], sum(float(b[4]) for b in bars),
            ])  # fmt: skip
    return dest


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    api = ApiServer(root / "home", lease_seconds=60.0).start()
    worker = WorkerProcess("training", api, root / "worker", worker_id="audit-trainer")
    try:
        with api.client() as client:
            client.import_data("GOOG", "1d", goog_daily_csv(root / "goog.csv"))
            hourly = eurusd_csv(root / "eurusd_1h.csv")
            client.import_data("EURUSD", "1h", hourly)
            client.import_data("EURUSD", "4h", four_hour_csv(hourly, root / "eurusd_4h.csv"))

            def registered() -> bool:
                status = {w.worker_id: w.status for w in client.list_workers()}
                return status.get(worker.worker_id) == WorkerStatus.IDLE

            wait_until(registered, "the training worker registered", 120, worker.logs)
        for name in ("rsi_zones", "macd_bollinger_mtf", "volatility_triple_barrier"):
            (root / f"{name}.yaml").write_text(read_example(name))
        yield api, worker, root
    finally:
        worker.stop()
        api.stop()


def audit(stack, *args: str):
    api, worker, root = stack
    result = run_ktrdr("--url", api.url, "strategies", "audit", *args, home=root / "cli",
                       cwd=root, timeout=600)  # fmt: skip
    return result, f"{result.stdout}\n{result.stderr}\n{worker.logs()}"


@pytest.mark.parametrize(
    ("example", "symbol", "columns"),
    [
        ("rsi_zones", "GOOG", 6),
        ("macd_bollinger_mtf", "EURUSD", 13),
        ("volatility_triple_barrier", "EURUSD", 12),
    ],
)
def test_the_examples_pass_on_real_data(stack, example, symbol, columns):
    result, logs = audit(stack, f"{example}.yaml", "--symbol", symbol, *WHOLE)
    assert result.returncode == 0, logs
    out = result.stdout
    assert f"audit of {example} on {symbol}" in out
    assert (
        f"PASS  lookahead (hard): {columns} feature columns, the settled labels at 50 cut points"
        in out
    )
    assert "PASS  leakage (hard): the embargo of" in out
    assert "skip  reproducibility: runs only with --train" in out
    assert "skip  significance: needs a model: give --model ID or --train" in out
    assert out.rstrip().endswith("verdict: no hard check failed")


def test_train_checks_reproducibility_and_json_carries_every_check(stack):
    result, logs = audit(stack, "rsi_zones.yaml", "--symbol", "GOOG", *WHOLE, "--train")
    assert result.returncode == 0, logs
    out = result.stdout
    assert "model trained by the audit" in out
    assert "PASS  lookahead (hard): 6 feature columns, the settled labels and the model's " \
           "decisions at 50 cut points" in out  # fmt: skip
    assert "PASS  reproducibility: two trainings with seed 7 on cpu: identical weights" in out
    assert "significance: " in out

    # --json is a global option, so it goes before the command: every check, as data.
    api, _, root = stack
    document = run_ktrdr(
        "--url", api.url, "--json", "strategies", "audit", "rsi_zones.yaml", "--symbol", "GOOG",
        *WHOLE, "--check", "lookahead", "--cuts", "7", home=root / "cli", cwd=root, timeout=300,
    )  # fmt: skip
    assert document.returncode == 0, document.stderr
    document = json.loads(document.stdout)
    assert document["passed"] is True and document["symbol"] == "GOOG"
    checks = {check["name"]: check for check in document["checks"]}
    assert list(checks) == ["lookahead", "warmup", "leakage", "reproducibility", "significance"]
    assert checks["lookahead"]["status"] == "pass" and checks["lookahead"]["evidence"]["cuts"] == 7
    assert {checks[n]["status"] for n in list(checks)[1:]} == {"skipped"}


def test_bad_arguments_are_refused_before_anything_runs(stack):
    unknown, _ = audit(stack, "rsi_zones.yaml", "--symbol", "GOOG", "--check", "lookahed")
    assert unknown.returncode == 2
    assert "--check lookahed: known checks are lookahead, warmup, leakage" in unknown.stderr
    both, _ = audit(stack, "rsi_zones.yaml", "--symbol", "GOOG", "--train", "--model", "mdl_x")
    assert both.returncode == 2 and "give --model ID or --train, not both" in both.stderr
    missing, _ = audit(stack, "rsi_zones.yaml", "--symbol", "AAPL", *WHOLE)
    assert missing.returncode == 1 and "AAPL" in missing.stderr


def test_a_failed_hard_check_exits_1_and_names_the_offence(tmp_path):
    """The CLI's side of a failure: the worker is played by the test, which answers the audit
    with the lookahead offence a leaky feature gives (the checks finding it is
    tests/worker/strategy_audit). The CLI prints it and exits 1."""
    import subprocess

    from ktrdr_core.protocol import OperationKind, StrategyAuditResult, WorkerRegistration
    from ktrdr_core.strategy_audit import AuditCheck, CheckStatus, StrategyAuditReport
    from tests.support.processes import BIN, process_env

    api = ApiServer(tmp_path / "home", lease_seconds=60.0).start()
    try:
        (tmp_path / "rsi_zones.yaml").write_text(read_example("rsi_zones"))
        with api.client() as client:
            client.import_data("GOOG", "1d", goog_daily_csv(tmp_path / "goog.csv"))
            client.register_worker(
                WorkerRegistration(worker_id="played", kind=OperationKind.TRAINING)
            )
            cli = subprocess.Popen(
                [str(BIN / "ktrdr"), "--url", api.url, "strategies", "audit", "rsi_zones.yaml",
                 "--symbol", "GOOG", *WHOLE, "--check", "lookahead"],
                env=process_env(home=tmp_path / "cli"), cwd=tmp_path, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            try:
                offer = None
                while offer is None and cli.poll() is None:
                    offer = client.claim("played", timeout_s=2)
                assert offer is not None, cli.communicate()
                bar = "2010-03-01T00:00:00+00:00"
                offence = {"what": "feature", "column": "1d_roc_10_raw", "bar": bar, "cut": bar,
                           "truncated_value": None, "full_value": 281.5}  # fmt: skip
                check = AuditCheck(
                    name="lookahead", status=CheckStatus.FAIL, hard=True,
                    summary="feature 1d_roc_10_raw at bar 2010-03-01T00:00:00+00:00 reads ahead",
                    evidence={"first_offence": offence},
                )  # fmt: skip
                report = StrategyAuditReport(
                    strategy_name="rsi_zones", strategy_hash="h", symbol="GOOG", timeframe="1d",
                    bars=2148, first="2004-08-19T00:00:00+00:00", last="2013-03-01T00:00:00+00:00",
                    checks=[check], passed=False,
                )  # fmt: skip
                client.complete_operation(
                    "played", offer.operation_id, offer.attempt, StrategyAuditResult(report=report)
                )
                out, err = cli.communicate(timeout=120)
            finally:
                if cli.poll() is None:  # never leave the CLI running
                    cli.kill()
                    cli.communicate()
        assert cli.returncode == 1, f"{out}\n{err}"
        assert "FAIL  lookahead (hard): feature 1d_roc_10_raw at bar 2010-03-01" in out
        assert (
            "first offence: feature 1d_roc_10_raw at 2010-03-01T00:00:00+00:00 (data cut at "
            "2010-03-01T00:00:00+00:00): NaN on the cut data, 281.5 on all of it" in out
        )
        assert "verdict: a hard check failed (lookahead)" in out
    finally:
        api.stop()
