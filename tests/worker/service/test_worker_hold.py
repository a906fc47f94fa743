"""The worker's hold file (KTRDR_WORKER_HOLD_FILE, ``WorkerConfig.hold_file``): while it
exists a training holds at its next epoch boundary, once that epoch's checkpoint is on the
backend, keeping its lease; removing the file lets it finish, a cancel ends it, a stop
releases it with a checkpoint for the next attempt. The other tests hold runs this way
instead of guessing how long a training lasts."""

from __future__ import annotations

import pytest

from ktrdr_core.protocol import AttemptOutcome, OperationState
from tests.support.stack import TINY_STRATEGY, held_with_checkpoint, wait_for_state
from tests.support.waiting import wait_until

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
EPOCHS = 4
TRAINING = {"training.epochs": EPOCHS, "training.batch_size": 64, "training.early_stopping": None}

# Heartbeats every 5 s: a cancel arrives within one, and a stall of several seconds still
# leaves the lease to the held attempt.
pytestmark = pytest.mark.parametrize("api", [{"lease_seconds": 15.0}], indirect=True)


def _logs(api):
    from tests.support.processes import log_tail

    return lambda: log_tail(api.log)


def test_a_held_training_keeps_its_place_and_lease_and_finishes_once_released(
    api, eurusd, thread_worker, tmp_path
):
    hold = tmp_path / "hold"
    worker = thread_worker("training", hold_file=hold)
    with api.client() as client:
        hold.touch()
        op = client.start_training(TINY_STRATEGY, TRAINING).operation_id
        held = wait_until(held_with_checkpoint(client, op), "the training held", 120, _logs(api))
        # Held after its first epoch, that epoch's checkpoint already on the backend.
        assert held.state == OperationState.RUNNING
        assert (held.progress.step, held.progress.total_steps) == (1, EPOCHS)
        assert held.progress.message == f"held after epoch 1: remove {hold} to continue"
        assert {"train_loss", "val_loss"} <= set(held.progress.metrics)  # kept from the epoch
        assert client.artifact_exists(held.checkpoint_sha256)
        assert worker.worker.snapshot()["progress"]["message"] == held.progress.message

        # Heartbeats go on while held: the lease is renewed, the run stays where it is.
        def renewed():
            view = client.get_operation(op)
            return view if view.lease_expires_at > held.lease_expires_at else None

        later = wait_until(renewed, "a heartbeat renewing the lease while held", 60, _logs(api))
        assert later.state == OperationState.RUNNING and later.attempt == 1
        assert later.progress == held.progress
        assert later.checkpoint_sha256 == held.checkpoint_sha256

        hold.unlink()
        done = wait_for_state(api, op, DONE, "to end", 120, _logs(api))
    assert done.state == OperationState.COMPLETED, done.error
    [attempt] = done.reproducibility.attempts
    assert (attempt.worker_id, attempt.outcome) == (worker.worker_id, AttemptOutcome.COMPLETED)
    summary = done.result["summary"]
    assert summary["epochs_run"] == EPOCHS and summary["resumed_from_epoch"] is None


def test_a_cancel_ends_a_held_training(api, eurusd, thread_worker, tmp_path):
    hold = tmp_path / "hold"
    thread_worker("training", hold_file=hold)
    with api.client() as client:
        hold.touch()
        op = client.start_training(TINY_STRATEGY, TRAINING).operation_id
        wait_until(held_with_checkpoint(client, op), "the training held", 120, _logs(api))
        client.cancel_operation(op)  # the file stays: the cancel alone ends the hold
        done = wait_for_state(api, op, DONE, "to end", 60, _logs(api))
    assert done.state == OperationState.CANCELLED
    [attempt] = done.reproducibility.attempts
    assert attempt.outcome == AttemptOutcome.CANCELLED  # confirmed by the worker
    assert hold.exists()


def test_a_stop_releases_a_held_training_with_a_checkpoint_to_resume_from(
    api, eurusd, thread_worker, tmp_path
):
    hold = tmp_path / "hold"
    first = thread_worker("training", hold_file=hold)
    with api.client() as client:
        hold.touch()
        op = client.start_training(TINY_STRATEGY, TRAINING).operation_id
        held = wait_until(held_with_checkpoint(client, op), "the training held", 120, _logs(api))
        first.stop()  # the file stays: the stop alone ends the hold
        released = client.get_operation(op)
        assert released.state == OperationState.PENDING
        [attempt] = released.reproducibility.attempts
        assert attempt.outcome == AttemptOutcome.RELEASED
        # Saved at the stop, before any batch of the next epoch.
        assert released.checkpoint_sha256 not in (None, held.checkpoint_sha256)
        assert client.artifact_exists(released.checkpoint_sha256)

        second = thread_worker("training")  # no hold file
        done = wait_for_state(api, op, DONE, "to end", 120, _logs(api))
    assert done.state == OperationState.COMPLETED, done.error
    assert [a.worker_id for a in done.reproducibility.attempts] == [
        first.worker_id,
        second.worker_id,
    ]
    summary = done.result["summary"]
    assert summary["resumed_from_epoch"] == held.progress.step == 1
    assert summary["epochs_run"] == EPOCHS
