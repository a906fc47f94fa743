"""`ktrdr-worker training` as a real process: /health, SIGTERM hands the operation back with a
fresh checkpoint, another worker resumes from it; a worker frozen past its lease finds the
operation gone (409), drops its run, and picks the operation up again from the checkpoint."""

from __future__ import annotations

import signal

import httpx
import pytest

from ktrdr_core.protocol import AttemptOutcome, OperationState
from tests.support.stack import TINY_STRATEGY, held_with_checkpoint, wait_for_state
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # each test starts worker processes that import torch

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
# Few epochs: what the tests look at is held in place by the hold file, never raced.
EPOCHS = 4
RESUMABLE = {"training.epochs": EPOCHS, "training.batch_size": 64, "training.early_stopping": None}


@pytest.mark.parametrize("api", [{"lease_seconds": 600}], indirect=True)  # never requeued
def test_health_then_sigterm_releases_with_a_checkpoint_and_another_worker_resumes(
    api, eurusd, process_worker, tmp_path
):
    hold = tmp_path / "hold"
    env = {"KTRDR_WORKER_HOLD_FILE": str(hold)}
    first = process_worker("training", "first", env=env)
    first.wait_registered()
    idle = first.health()
    assert idle["status"] == "idle" and idle["worker_id"] == "first" and idle["kind"] == "training"
    assert httpx.get(f"http://127.0.0.1:{first.health_port}/nothing").status_code == 404

    with api.client() as client:
        hold.touch()
        op = client.start_training(TINY_STRATEGY, RESUMABLE).operation_id
        held = wait_until(
            held_with_checkpoint(client, op, attempt=1),
            "the training held with a checkpoint",
            120,
            first.logs,
        )
        step = held.progress.step
        assert held.progress.message == f"held after epoch {step}: remove {hold} to continue"
        assert client.artifact_exists(held.checkpoint_sha256)
        busy = first.health()
        assert busy["status"] == "busy" and busy["operation_id"] == op
        assert busy["progress"]["step"] == step and busy["progress"]["total_steps"] == EPOCHS

        first.signal(signal.SIGTERM)  # ends the hold; the run stops at its next batch check
        assert first.wait_exit() == 0, first.logs()
        released = client.get_operation(op)
        assert released.state == OperationState.PENDING, first.logs()
        [attempt] = released.reproducibility.attempts
        assert attempt.outcome == AttemptOutcome.RELEASED
        # The checkpoint taken at the signal, not the one of the epoch boundary it held at.
        assert released.checkpoint_sha256 not in (None, held.checkpoint_sha256)
        assert client.artifact_exists(released.checkpoint_sha256)

        hold.unlink()  # the resumed attempt runs through
        second = process_worker("training", "second", env=env)
        done = wait_for_state(api, op, DONE, "to end", 180, second.logs)
    assert done.state == OperationState.COMPLETED, done.error
    assert [a.worker_id for a in done.reproducibility.attempts] == ["first", "second"]
    summary = done.result["summary"]
    # Stopped before any batch of the next epoch: the signal's checkpoint is at the held epoch.
    assert summary["resumed_from_epoch"] == step
    assert summary["epochs_run"] == EPOCHS  # the history carries on across the resume


@pytest.mark.parametrize("api", [{"lease_seconds": 3.0}], indirect=True)  # frozen: lost soon
def test_a_frozen_worker_drops_the_lost_attempt_and_resumes_its_operation(
    api, eurusd, process_worker, tmp_path
):
    hold = tmp_path / "hold"
    worker = process_worker("training", "frozen", env={"KTRDR_WORKER_HOLD_FILE": str(hold)})
    worker.wait_registered()
    with api.client() as client:
        hold.touch()
        op = client.start_training(TINY_STRATEGY, RESUMABLE).operation_id
        seen = wait_until(
            held_with_checkpoint(client, op, attempt=1),
            "the training held with a checkpoint",
            120,
            worker.logs,
        )

        worker.signal(signal.SIGSTOP)  # a stalled host: no heartbeats, no progress
        try:
            wait_until(
                lambda: client.get_operation(op).state == OperationState.PENDING,
                "the lease to expire and the operation to be requeued",
                60,
                worker.logs,
            )
        finally:
            worker.signal(signal.SIGCONT)
        # Back to life and still held (the file is there), the worker's next heartbeat gets
        # 409: that alone ends the hold; it drops the run, claims the requeued operation as a
        # new attempt, resumes from the held epoch's checkpoint and holds again one epoch on.
        again = wait_until(
            held_with_checkpoint(client, op, attempt=2, epoch=seen.progress.step + 1),
            "the second attempt held one epoch on",
            120,
            worker.logs,
        )
        assert again.worker_id == "frozen"
        assert again.checkpoint_sha256 != seen.checkpoint_sha256
        hold.unlink()
        done = wait_for_state(api, op, DONE, "to end", 180, worker.logs)
    assert done.state == OperationState.COMPLETED, done.error
    first, second = done.reproducibility.attempts
    assert first.outcome == AttemptOutcome.LEASE_EXPIRED and first.worker_id == "frozen"
    assert second.outcome == AttemptOutcome.COMPLETED and second.worker_id == "frozen"
    # Held, it trained no further than the epoch whose checkpoint it had uploaded.
    assert done.result["summary"]["resumed_from_epoch"] == seen.progress.step
    assert done.result["summary"]["epochs_run"] == EPOCHS
    log = worker.log.read_text()
    assert "409" in log and "lost operation" in log
