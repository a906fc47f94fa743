"""Drill: the backend is SIGKILLed mid-training and started again on the same database. The
worker keeps training while it is gone, finds it again, reports, completes: one attempt, one
operation, one model — on SQLite and on PostgreSQL. (test_worker_loop.py has the in-process
variant on SQLite.)"""

from __future__ import annotations

import pytest

from ktrdr_core.protocol import AttemptOutcome, OperationState
from tests.support.market_data import eurusd_csv
from tests.support.stack import TINY_STRATEGY, ApiServer, WorkerProcess, wait_for_state
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # a worker process that imports torch, per database

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
# Long enough on a fast, idle machine (about 25 ms an epoch) for the first heartbeat (10 s,
# a third of the lease) to report progress, and for another to fail during the outage.
EPOCHS = 1000
TRAINING = {"training.epochs": EPOCHS, "training.batch_size": 32, "training.early_stopping": None}


def test_worker_carries_on_through_a_backend_crash_and_completes_once(database_url, tmp_path):
    # The lease outlives the outage: the same attempt carries on.
    api = ApiServer(tmp_path / "home", lease_seconds=30.0, database_url=database_url,
                    token="restart-secret").start()  # fmt: skip
    worker = WorkerProcess("training", api, tmp_path / "workers", worker_id="survivor")
    try:
        with api.client() as client:
            client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "eurusd.csv"))
            worker.wait_registered()
            op = client.start_training(TINY_STRATEGY, TRAINING).operation_id

            def training():
                view = client.get_operation(op)
                assert not view.state.is_terminal, view.error
                return view if (view.progress.step or 0) >= 2 and view.checkpoint_sha256 else None

            wait_until(training, "epochs and a checkpoint", 180, worker.logs)

        api.kill()  # no shutdown, no goodbye

        # While the backend is gone the worker goes on with the same operation.
        def progressed_alone():
            health = worker.health()
            assert health is not None and health["operation_id"] == op, health
            return health if health["progress"]["step"] >= step_at_kill + 2 else None

        step_at_kill = worker.health()["progress"]["step"]
        alone = wait_until(progressed_alone, "epochs while the backend is down", 60, worker.logs)
        assert alone["status"] == "busy"
        # Down long enough for the worker to notice: a heartbeat (every 10 s) fails.
        wait_until(lambda: f"heartbeat for {op} failed" in worker.log.read_text(),
                   "a failed heartbeat", 30, worker.logs)  # fmt: skip

        api.start()  # same port, same database
        done = wait_for_state(api, op, DONE, "to end after the restart", 400, worker.logs)
        with api.client() as client:
            operations = client.list_operations()
            models = client.list_models()
            workers = client.list_workers()
        log = worker.log.read_text()
    finally:
        worker.stop()
        api.stop()

    assert done.state == OperationState.COMPLETED, done.error
    [attempt] = done.reproducibility.attempts  # not requeued, not run twice
    assert (attempt.worker_id, attempt.outcome) == ("survivor", AttemptOutcome.COMPLETED)
    assert [o.operation_id for o in operations] == [op]  # nothing lost, nothing added
    [model] = models
    assert model.training_operation_id == op and done.result["model_id"] == model.model_id
    assert done.result["summary"]["epochs_run"] == EPOCHS
    assert done.result["summary"]["resumed_from_epoch"] is None  # carried on, not restarted
    assert [w.worker_id for w in workers] == ["survivor"]
    assert f"heartbeat for {op} failed" in log  # it noticed the outage and waited it out
    assert api.starts == 2
