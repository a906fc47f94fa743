"""A worker that dies mid-training (SIGKILL: no release, no last heartbeat) loses its lease;
the backend requeues the operation and another worker resumes it from the last checkpoint
the dead one uploaded, instead of from epoch 0.

(tests/worker/service/test_worker_process.py covers the stalled worker, SIGSTOP, that
resumes its own requeued operation; here the next worker is another process.)"""

from __future__ import annotations

import pytest

from ktrdr_core.protocol import AttemptOutcome, OperationState
from tests.support.market_data import eurusd_csv
from tests.support.stack import TINY_STRATEGY, ApiServer, WorkerProcess, wait_for_state
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # two worker processes that import torch

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
EPOCHS = 30
RESUMABLE = {"training.epochs": EPOCHS, "training.batch_size": 64, "training.early_stopping": None}


@pytest.fixture
def stack(tmp_path):
    api = ApiServer(tmp_path / "home", lease_seconds=3.0, token="lease-secret").start()
    workers = [
        WorkerProcess("training", api, tmp_path / "workers", worker_id=name)
        for name in ("trainer-a", "trainer-b")
    ]
    yield api, workers
    for worker in workers:
        worker.stop()
    api.stop()


def test_a_killed_workers_operation_is_requeued_and_resumed_elsewhere(stack, tmp_path):
    api, workers = stack

    def logs() -> str:
        return "\n".join(worker.logs() for worker in workers)

    with api.client() as client:
        client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "eurusd.csv"))
        for worker in workers:
            worker.wait_registered()
        op = client.start_training(TINY_STRATEGY, RESUMABLE).operation_id

        def checkpointed():
            view = client.get_operation(op)
            assert not view.state.is_terminal, view.error
            return view if (view.progress.step or 0) >= 2 and view.checkpoint_sha256 else None

        seen = wait_until(checkpointed, "a checkpoint", 180, logs)
        [dead] = [w for w in workers if w.worker_id == seen.worker_id]
        [survivor] = [w for w in workers if w is not dead]
        dead.process.kill()  # no release, no heartbeat: only the lease can tell
        dead.process.wait()

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
    # Resumed from the dead worker's upload: its checkpoint trails its progress by an epoch
    # at most (epoch k's checkpoint is written just after epoch k's progress is reported).
    assert summary["resumed_from_epoch"] >= seen.progress.step - 1 >= 1
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
