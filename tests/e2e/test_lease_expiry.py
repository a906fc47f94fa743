"""A worker that dies mid-training (SIGKILL: no release, no last heartbeat) loses its lease;
the backend requeues the operation and another worker resumes it from the last checkpoint
the dead one uploaded, instead of from epoch 0.

(tests/worker/service/test_worker_process.py covers the stalled worker, SIGSTOP, that
resumes its own requeued operation; here the next worker is another process.)"""

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

pytestmark = pytest.mark.slow  # two worker processes that import torch

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
# Few epochs: the run is held at an epoch boundary (the workers' hold file) while the test
# kills its worker, so nothing depends on how fast it trains.
EPOCHS = 4
RESUMABLE = {"training.epochs": EPOCHS, "training.batch_size": 64, "training.early_stopping": None}


@pytest.fixture
def stack(tmp_path):
    """The backend (3 s lease), two training workers sharing one hold file (not there yet)."""
    api = ApiServer(tmp_path / "home", lease_seconds=3.0, token="lease-secret").start()
    hold = tmp_path / "hold"
    env = {"KTRDR_WORKER_HOLD_FILE": str(hold)}
    workers = [
        WorkerProcess("training", api, tmp_path / "workers", worker_id=name, env=env)
        for name in ("trainer-a", "trainer-b")
    ]
    yield api, workers, hold
    for worker in workers:
        worker.stop()
    api.stop()


def test_a_killed_workers_operation_is_requeued_and_resumed_elsewhere(stack, tmp_path):
    api, workers, hold = stack

    def logs() -> str:
        return "\n".join(worker.logs() for worker in workers)

    with api.client() as client:
        client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "eurusd.csv"))
        for worker in workers:
            worker.wait_registered()
        hold.touch()
        op = client.start_training(TINY_STRATEGY, RESUMABLE).operation_id

        # Held at an epoch boundary, that epoch's checkpoint on the backend: it stays there.
        seen = wait_until(
            held_with_checkpoint(client, op), "the training held with a checkpoint", 180, logs
        )
        [dead] = [w for w in workers if w.worker_id == seen.worker_id]
        [survivor] = [w for w in workers if w is not dead]
        dead.process.kill()  # no release, no heartbeat: only the lease can tell
        dead.process.wait()
        hold.unlink()  # the survivor's attempt, and the reference run, go through unheld

        done = wait_for_state(api, op, DONE, "to end", 240, logs)
        # The reference: the same training, never interrupted, on the same kind of worker
        # (CPU, one thread, same seed).
        reference = client.start_training(TINY_STRATEGY, RESUMABLE).operation_id
        uninterrupted = wait_for_state(api, reference, DONE, "the reference run", 240, logs)
        models = {m.training_operation_id: m for m in client.list_models()}

    assert done.state == OperationState.COMPLETED, done.error
    assert uninterrupted.state == OperationState.COMPLETED, uninterrupted.error
    first, second = done.reproducibility.attempts
    assert first.worker_id == dead.worker_id and first.outcome == AttemptOutcome.LEASE_EXPIRED
    assert f"no heartbeat from worker {dead.worker_id}" in first.reason
    assert second.worker_id == survivor.worker_id and second.outcome == AttemptOutcome.COMPLETED
    summary = done.result["summary"]
    # Resumed from the dead worker's upload: the checkpoint of the epoch it held at.
    assert summary["resumed_from_epoch"] == seen.progress.step >= 1
    assert summary["epochs_run"] == EPOCHS  # the history carries on across the resume
    # Resumed mid-run on another process, the model is bit-for-bit the uninterrupted one: the
    # checkpoint holds weights, optimizer, scheduler, both generators and the shuffle order.
    resumed_weights = models[op].metadata["weights"]["sha256"]
    assert resumed_weights == models[reference].metadata["weights"]["sha256"]
    reference_summary = uninterrupted.result["summary"]
    assert reference_summary["resumed_from_epoch"] is None
    # Every epoch's losses and accuracies too (timings aside).
    timing = {"elapsed_s", "samples_per_s"}

    def learning(history):
        return [{k: v for k, v in epoch.items() if k not in timing} for epoch in history]

    assert learning(summary["history"]) == learning(reference_summary["history"])
