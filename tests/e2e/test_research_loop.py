"""The research loop with real processes on each database: `ktrdr-api serve` (token auth on),
one `ktrdr-worker training` and one `ktrdr-worker backtest`. Real EURUSD hourly bars are
imported through the API, a small strategy is trained, its model backtested, and the report
and the page's series and HTML report read back — everything over HTTP, as the CLI would."""

from __future__ import annotations

import signal

import pytest

from ktrdr_core.protocol import OperationState, WorkerStatus
from tests.support.market_data import eurusd_csv
from tests.support.stack import TINY_STRATEGY, ApiServer, WorkerProcess, wait_for_state
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # three processes per database, two of them import torch

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}


@pytest.fixture
def stack(database_url, tmp_path):
    # A long lease: a heartbeat starved on a busy machine must not requeue an operation (the
    # test reads who ran each one); nothing here waits for a lease to run out.
    api = ApiServer(tmp_path / "home", database_url=database_url, token="e2e-secret",
                    lease_seconds=30.0).start()  # fmt: skip
    workers = [
        WorkerProcess(kind, api, tmp_path / "workers", worker_id=f"e2e-{kind}")
        for kind in ("training", "backtest")
    ]
    yield api, workers
    for worker in workers:
        worker.stop()
    api.stop()


def test_import_train_backtest_report(stack, tmp_path):
    api, (trainer, tester) = stack

    def logs() -> str:
        return "\n".join(worker.logs() for worker in (trainer, tester))

    with api.client() as client:
        data = client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "EURUSD_1h.csv"))
        assert data.rows == 5000 and data.first.year == 2017

        def both_idle() -> bool:
            status = {w.worker_id: w.status for w in client.list_workers()}
            return all(status.get(w.worker_id) == WorkerStatus.IDLE for w in (trainer, tester))

        wait_until(both_idle, "both workers registered", 120, logs)

        # --- train ---
        training = client.start_training(TINY_STRATEGY, {"training.epochs": 4})
        trained = wait_for_state(api, training.operation_id, DONE, "training", 120, logs)
        assert trained.state == OperationState.COMPLETED, trained.error
        assert trained.reproducibility.attempts[0].worker_id == trainer.worker_id
        assert trained.reproducibility.data_checksums == {"EURUSD/1h@1": data.checksum}
        summary = trained.result["summary"]
        assert summary["epochs_run"] >= 1 and summary["symbols"] == ["EURUSD"]
        [model] = client.list_models()
        assert model.training_operation_id == training.operation_id
        assert trained.result["model_id"] == model.model_id
        assert model.metadata["feature_names"] == summary["feature_names"]
        assert model.data[0].checksum == data.checksum

        # --- backtest the model on the test period it never trained on ---
        backtest = client.start_backtest(model.model_id, settings={"capital": 50_000})
        tested = wait_for_state(api, backtest.operation_id, DONE, "backtest", 120, logs)
        assert tested.state == OperationState.COMPLETED, tested.error
        assert tested.reproducibility.attempts[0].worker_id == tester.worker_id
        report = client.backtest_report(backtest.operation_id)
        assert report["symbol"] == "EURUSD" and report["timeframe"] == "1h"
        assert report["period"] == "test" and report["bars"] > 100
        assert report["bundle_sha256"] == model.bundle_sha256
        assert report["config"]["capital"] == 50_000
        assert report["start"] >= summary["splits"]["test"]["start"]
        assert len(report["equity"]) == report["bars"]
        assert {"sharpe", "max_drawdown", "total_return"} <= set(report["metrics"])
        assert tested.result["summary"]["trades"] == len(report["trades"])
        series = client.backtest_series(backtest.operation_id)
        page = series["symbols"]["EURUSD"]
        assert page["metrics"] == report["metrics"] and len(page["trades"]) == len(report["trades"])
        html = tmp_path / "report.html"
        client.download_backtest_html(backtest.operation_id, html)
        assert "TradingView Lightweight Charts" in html.read_text()

    # Both workers are idle again (the count moves once a job is cleaned up, just after its
    # completion), and stop cleanly when told to.
    for worker in (trainer, tester):

        def idle_after_one(worker=worker) -> bool:
            health = worker.health()
            return health["status"] == "idle" and health["jobs_done"] == 1

        wait_until(idle_after_one, f"{worker.worker_id} idle after one job", 30, logs)
        worker.signal(signal.SIGTERM)
    assert [trainer.wait_exit(), tester.wait_exit()] == [0, 0]
