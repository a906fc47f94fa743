"""Drill: the backend is SIGKILLed mid-training and started again on the same database. The
worker keeps training while it is gone, finds it again, reports, completes: one attempt, one
operation, one model — on SQLite and on PostgreSQL. (test_worker_loop.py has the in-process
variant on SQLite.)"""

from __future__ import annotations

import pytest

from ktrdr_core.protocol import AttemptOutcome, OperationState
from tests.support.market_data import eurusd_csv
from tests.support.stack import (
    TINY_STRATEGY,
    ApiServer,
    WorkerProcess,
    held_with_checkpoint,
    wait_for_state,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # a worker process that imports torch, per database

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
# Held mid-run by the worker's hold file until the backend is down: a few epochs do.
EPOCHS = 4
TRAINING = {"training.epochs": EPOCHS, "training.batch_size": 32, "training.early_stopping": None}


def test_worker_carries_on_through_a_backend_crash_and_completes_once(database_url, tmp_path):
    # The lease outlives any outage, however slow the restart: the same attempt carries on.
    api = ApiServer(tmp_path / "home", lease_seconds=600.0, database_url=database_url,
                    token="restart-secret").start()  # fmt: skip
    hold = tmp_path / "hold"
    worker = WorkerProcess("training", api, tmp_path / "workers", worker_id="survivor",
                           env={"KTRDR_WORKER_HOLD_FILE": str(hold)})  # fmt: skip
    try:
        with api.client() as client:
            client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "eurusd.csv"))
            worker.wait_registered()
            hold.touch()
            op = client.start_training(TINY_STRATEGY, TRAINING).operation_id

            wait_until(
                held_with_checkpoint(client, op),
                "the training held mid-run with a checkpoint",
                180,
                worker.logs,
            )

        api.kill()  # no shutdown, no goodbye
        hold.unlink()  # the remaining epochs run while the backend is gone

        # While the backend is gone the worker goes on with the same operation: every epoch,
        # then the bundle upload, which retries until the backend is back.
        def uploading():
            health = worker.health()
            assert health is not None and health["operation_id"] == op, health
            message = health["progress"]["message"]
            return health if message.startswith("uploading the model bundle") else None

        alone = wait_until(uploading, "the training done while the backend is down", 120,
                           worker.logs)  # fmt: skip
        assert alone["status"] == "busy"
        # The worker noticed: the heartbeat sent as the upload began failed.
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
