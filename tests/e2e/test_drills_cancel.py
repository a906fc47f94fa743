"""Drill: cancel an operation in each phase — queued, data download, training, result upload —
and it ends `cancelled` within a few seconds, with the worker free for the next operation.

The training worker talks to the backend through a throttled relay (ktrdr_stack.ThrottledProxy),
a slow link, so the download and the upload last long enough to cancel while they run; no
test-only switch in the worker. How each phase stops:

- queued: the backend cancels a pending operation at once;
- data download: the worker checks the cancel flag (from its heartbeat) as each piece of the
  file arrives, drops the transfer and leaves no partial file in its cache;
- training: checked before every batch;
- upload: one HTTP request that is not cut short; the backend refuses to turn a cancelled
  operation into a completed one, so the result that arrives after the cancel is discarded.
"""

from __future__ import annotations

import time

import pytest
from ktrdr_stack import (
    TINY_STRATEGY,
    ApiServer,
    ThrottledProxy,
    WorkerProcess,
    eurusd_csv,
    wait_for_state,
    wait_until,
)

from ktrdr_core.protocol import AttemptOutcome, OperationState

pytestmark = pytest.mark.slow  # a worker process that imports torch, six trainings

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
CANCEL_LIMIT_S = 15.0  # "within a few seconds", generous for a loaded CI machine
LONG = {"training.epochs": 500, "training.batch_size": 32, "training.early_stopping": None}
# One epoch, no checkpoint (the interval is past the end): the only upload is the bundle.
SHORT = {"training.epochs": 1, "training.checkpoint_interval": 100}


@pytest.fixture
def stack(tmp_path):
    api = ApiServer(tmp_path / "home", lease_seconds=6.0, token="cancel-secret").start()
    proxy = ThrottledProxy(api.port)
    worker = WorkerProcess(
        "training",
        api,
        tmp_path / "workers",
        worker_id="trainer",
        env={"KTRDR_API_URL": proxy.url},
    )
    yield api, proxy, worker
    worker.stop()
    proxy.close()
    api.stop()


def _cancelled_in_time(api, client, op: str, logs) -> float:
    """Ask to cancel ``op``; wait for `cancelled`; returns the seconds it took."""
    asked = time.monotonic()
    client.cancel_operation(op)
    view = wait_for_state(api, op, DONE, "to end after the cancel", CANCEL_LIMIT_S, logs)
    took = time.monotonic() - asked
    assert view.state == OperationState.CANCELLED, view.error
    return took


def _phase(client, op: str, starts: str):
    def reached():
        view = client.get_operation(op)
        assert not view.state.is_terminal, view.error
        return view.state == OperationState.RUNNING and view.progress.message.startswith(starts)

    return reached


def test_cancel_in_every_phase_ends_cancelled_and_frees_the_worker(stack, tmp_path):
    api, proxy, worker = stack
    took: dict[str, float] = {}
    with api.client() as client:
        data = client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "eurusd.csv"))
        worker.wait_registered()
        head = client.request("HEAD", f"/artifacts/{data.checksum}")
        data_bytes = int(head.headers["content-length"])

        # --- data download: ~20 s over a 16 KB/s link, cancelled a moment in ---
        proxy.down_rate = data_bytes / 20
        download = client.start_training(TINY_STRATEGY, LONG).operation_id
        wait_until(_phase(client, download, "downloading data"), "the download", 60, worker.logs)
        took["data download"] = _cancelled_in_time(api, client, download, worker.logs)
        assert proxy.moved["down"] < data_bytes, "the download finished before the cancel"
        cached = [p for p in (tmp_path / "workers" / "cache").rglob("*") if p.is_file()]
        assert cached == [], f"a cancelled download left files behind: {cached}"
        proxy.down_rate = None

        # --- training, with a second operation queued behind it ---
        training = client.start_training(TINY_STRATEGY, LONG).operation_id
        wait_until(_phase(client, training, "epoch"), "training epochs", 120, worker.logs)
        queued = client.start_training(TINY_STRATEGY, LONG).operation_id
        assert client.get_operation(queued).state == OperationState.PENDING
        took["queued"] = _cancelled_in_time(api, client, queued, worker.logs)
        took["training"] = _cancelled_in_time(api, client, training, worker.logs)
        stopped = client.get_operation(training)
        # The worker confirmed it stopped, not a lease that ran out.
        assert stopped.reproducibility.attempts[-1].outcome == AttemptOutcome.CANCELLED

        # --- the worker is free: it takes the next operation and completes it ---
        free = client.start_training(TINY_STRATEGY, SHORT).operation_id
        done = wait_for_state(api, free, DONE, "a training after the cancels", 120, worker.logs)
        assert done.state == OperationState.COMPLETED, done.error
        assert done.reproducibility.attempts[0].worker_id == worker.worker_id
        [model] = client.list_models()

        # --- upload: the bundle takes ~3 s over the slow link ---
        proxy.up_rate = model.size / 3
        upload = client.start_training(TINY_STRATEGY, SHORT).operation_id
        wait_until(_phase(client, upload, "uploading the model bundle"), "the upload", 120,
                   worker.logs)  # fmt: skip
        took["upload"] = _cancelled_in_time(api, client, upload, worker.logs)
        cancelled = client.get_operation(upload)
        assert cancelled.result is None
        [attempt] = cancelled.reproducibility.attempts
        assert attempt.outcome == AttemptOutcome.CANCELLED
        assert "discarded" in attempt.reason  # the bundle arrived after the cancel
        assert [m.model_id for m in client.list_models()] == [model.model_id]  # no new model
        proxy.up_rate = None

        after = client.start_training(TINY_STRATEGY, SHORT).operation_id
        done = wait_for_state(api, after, DONE, "a training after the upload", 120, worker.logs)
        assert done.state == OperationState.COMPLETED, done.error

        for op in (download, queued, training, upload):
            assert client.get_operation(op).state == OperationState.CANCELLED
    print("cancel took (s):", {phase: round(s, 2) for phase, s in took.items()})
    health = worker.health()
    assert health["status"] == "idle" and health["jobs_done"] == 5  # queued never ran
