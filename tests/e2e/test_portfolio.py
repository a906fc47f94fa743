"""A model trained on two real daily series — GOOG (the `backtesting` wheel) and the S&P 500
(the `arch` wheel) — through real processes: `ktrdr-api serve`, a training worker and a
torch-free backtest worker. The model is trained, backtested as one portfolio operation,
its report read back and checked against the identity (each sleeve is the single-symbol
backtest of the downloaded bundle with its capital, trade for trade; the portfolio is their
sum), shown by `ktrdr backtests show` as a process, and walked forward over both symbols."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ktrdr_core.protocol import OperationState
from tests.support.cli import run_ktrdr
from tests.support.market_data import goog_canonical_csv, sp500_daily_csv
from tests.support.stack import TWO_SYMBOL_STRATEGY, ApiServer, WorkerProcess, wait_for_state

pytestmark = pytest.mark.slow  # three processes, one of them imports torch

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
TOKEN = "pf-secret"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("portfolio")
    # A long lease: a heartbeat starved on a busy machine must not requeue an operation.
    api = ApiServer(folder / "home", lease_seconds=30.0, token=TOKEN).start()
    workers = [
        WorkerProcess(
            kind, api, folder / "workers", worker_id=f"pf-{kind}", torch_free=kind == "backtest"
        )
        for kind in ("training", "backtest")
    ]
    for worker in workers:
        worker.wait_registered()
    files = {
        "GOOG": goog_canonical_csv(folder / "GOOG_1d.csv"),
        "SP500": sp500_daily_csv(folder / "SP500_1d.csv", first="2004-01-01", last="2013-03-01"),
    }
    with api.client() as client:
        for symbol, path in files.items():
            client.import_data(symbol, "1d", path)
    yield api, workers, files
    for worker in workers:
        worker.stop()
    api.stop()


def _logs(workers) -> str:
    return "\n".join(worker.logs() for worker in workers)


def _frame(path) -> pd.DataFrame:
    frame = pd.read_csv(path, index_col="timestamp", parse_dates=True)
    return frame.astype("float64")


def _series(pairs) -> pd.Series:
    return pd.Series([v for _, v in pairs], index=pd.DatetimeIndex([t for t, _ in pairs]))


def test_train_backtest_show_a_portfolio_of_two_real_series(stack, tmp_path):
    from ktrdr_worker.models.backtest import backtest_model

    api, workers, files = stack
    with api.client() as client:
        training = client.start_training(TWO_SYMBOL_STRATEGY)
        trained = wait_for_state(
            api, training.operation_id, DONE, "training", 300, lambda: _logs(workers)
        )
        assert trained.state == OperationState.COMPLETED, trained.error
        [model] = client.list_models()
        assert sorted(ref.symbol for ref in model.data) == ["GOOG", "SP500"]

        backtest = client.start_backtest(model.model_id)
        tested = wait_for_state(
            api, backtest.operation_id, DONE, "backtest", 300, lambda: _logs(workers)
        )
        assert tested.state == OperationState.COMPLETED, tested.error
        report = client.backtest_report(backtest.operation_id)
        bundle = tmp_path / "bundle.zip"
        client.download_artifact(model.bundle_sha256, bundle)

    # --- the report's shape: a portfolio section, one single-symbol report per symbol ---
    assert report["format"] == "ktrdr-backtest-report/2"
    assert list(report["symbols"]) == ["GOOG", "SP500"] and report["period"] == "test"
    portfolio = report["portfolio"]
    assert portfolio["weights"] == {"GOOG": 0.25, "SP500": 0.75}
    assert portfolio["capital"] == 100_000 and portfolio["rebalancing"] == "none"
    for symbol, section in report["symbols"].items():
        assert section["format"] == "ktrdr-backtest-report/1" and section["symbol"] == symbol
        assert {"signal_counts", "buy_and_hold", "trades", "zero_trade_reason"} <= set(section)
    summary = tested.result["summary"]
    assert summary["metrics"] == portfolio["metrics"] and summary["symbols"] == ["GOOG", "SP500"]

    # --- the identity: each sleeve is the single-symbol backtest with its capital ---
    for symbol, weight in portfolio["weights"].items():
        alone = backtest_model(
            bundle,
            _frame(files[symbol]),
            symbol=symbol,
            start=report["start"],
            end=report["end"],
            backtest={"capital": 100_000 * weight},
            inference="numpy",
        ).report
        sleeve = report["symbols"][symbol]
        assert sleeve["trades"] == alone["trades"], symbol
        assert sleeve["equity"] == alone["equity"], symbol
    sleeves = {s: _series(r["equity"]) for s, r in report["symbols"].items()}
    union = sleeves["GOOG"].index.union(sleeves["SP500"].index)
    summed = sum(
        sleeves[s].reindex(union).ffill().fillna(100_000 * w)
        for s, w in portfolio["weights"].items()
    )
    equity = _series(portfolio["equity"])
    assert list(equity.index) == list(union)
    assert equity.to_numpy() == pytest.approx(summed.to_numpy(), rel=1e-12)
    assert sum(portfolio["contributions"].values()) == pytest.approx(
        portfolio["metrics"]["total_return"]
    )

    # --- `ktrdr backtests show`, a real process: the portfolio, then each symbol ---
    def ktrdr(*args: str):
        return run_ktrdr(
            "--url", api.url, "--token", TOKEN, *args, home=tmp_path / "cli", cwd=tmp_path
        )

    shown = ktrdr("backtests", "show", backtest.operation_id)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "as a portfolio of GOOG, SP500" in out and "contribution" in out
    assert (
        out.index("portfolio of")
        < out.index("on GOOG, its sleeve")
        < out.index("on SP500, its sleeve")
    )
    one = ktrdr("backtests", "show", backtest.operation_id, "--symbol", "sp500")
    assert one.returncode == 0, one.stderr
    assert "on SP500, a sleeve of a portfolio" in one.stdout and "GOOG" not in one.stdout
    unknown = ktrdr("backtests", "show", backtest.operation_id, "--symbol", "MSFT")
    assert unknown.returncode == 1 and "it covers GOOG, SP500" in unknown.stderr
    as_json = json.loads(ktrdr("--json", "backtests", "show", backtest.operation_id).stdout)
    assert as_json["portfolio"]["metrics"] == portfolio["metrics"]


def test_walk_forward_over_both_symbols(stack, tmp_path):
    api, workers, _ = stack
    with api.client() as client:
        started = client.start_walkforward(TWO_SYMBOL_STRATEGY, folds=2, train_blocks=2)
        done = wait_for_state(
            api, started.operation_id, DONE, "walk-forward", 600, lambda: _logs(workers)
        )
        assert done.state == OperationState.COMPLETED, done.error
        report = client.walkforward_report(started.operation_id)
        view = client.get_walkforward(started.operation_id)
        tests = {c.role: c.operation_id for c in view.children if c.role.startswith("backtest:")}
        by_role = {role: client.backtest_report(op) for role, op in tests.items()}
    fold_reports = list(by_role.values())
    assert report["symbols"] == ["GOOG", "SP500"] and report["summary"]["folds"] == 2
    assert all(r["format"] == "ktrdr-backtest-report/2" for r in fold_reports)
    # The stitched numbers are the portfolio's: its trades are every sleeve's of every fold.
    assert report["trades"] == sum(
        len(s["trades"]) for r in fold_reports for s in r["symbols"].values()
    )
    for row in report["folds"]:
        fold = by_role[f"backtest:{row['fold']}"]["portfolio"]
        assert row["total_return"] == fold["metrics"]["total_return"]
        assert row["buy_and_hold_return"] == fold["buy_and_hold"]["total_return"]

    # compare and runs diff read a portfolio's numbers as the whole's, each symbol's beside.
    def ktrdr(*args: str):
        return run_ktrdr(
            "--url", api.url, "--token", TOKEN, *args, home=tmp_path / "cli", cwd=tmp_path
        )

    fold0 = by_role["backtest:0"]["portfolio"]["metrics"]
    compared = ktrdr("backtests", "compare", tests["backtest:0"], started.operation_id)
    assert compared.returncode == 0, compared.stderr
    [row] = [line for line in compared.stdout.splitlines() if line.startswith("total_return")]
    assert f"{fold0['total_return'] * 100:.2f}%" in row
    assert f"{report['metrics']['total_return'] * 100:.2f}%" in row
    shown = ktrdr("walkforwards", "show", started.operation_id)
    assert shown.returncode == 0, shown.stderr
    assert "a portfolio of GOOG, SP500 in every fold" in shown.stdout
    diffed = ktrdr("runs", "diff", tests["backtest:0"], tests["backtest:1"])
    assert diffed.returncode == 0, diffed.stderr
    assert "GOOG.total_return" in diffed.stdout and "SP500.sharpe" in diffed.stdout
