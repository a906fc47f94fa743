"""`ktrdr-worker training` as a real process: /health, SIGTERM hands the operation back with a
fresh checkpoint, another worker resumes from it; a worker frozen past its lease finds the
operation gone (409), drops its run, and picks the operation up again from the checkpoint."""

from __future__ import annotations

import signal

import httpx
import pytest
from ktrdr_stack import TINY_STRATEGY, wait_for_state, wait_until

from ktrdr_core.protocol import AttemptOutcome, OperationState

pytestmark = pytest.mark.slow  # each test starts worker processes that import torch

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
EPOCHS = 40
RESUMABLE = {"training.epochs": EPOCHS, "training.batch_size": 64, "training.early_stopping": None}


def _running_with_checkpoint(client, operation_id, min_step=1):
    def check():
        view = client.get_operation(operation_id)
        assert not view.state.is_terminal, view.error
        return view if (view.progress.step or 0) >= min_step and view.checkpoint_sha256 else None

    return check


def test_health_then_sigterm_releases_with_a_checkpoint_and_another_worker_resumes(
    api, eurusd, process_worker
):
    first = process_worker("training", "first")
    first.wait_registered()
    idle = first.health()
    assert idle["status"] == "idle" and idle["worker_id"] == "first" and idle["kind"] == "training"
    assert httpx.get(f"http://127.0.0.1:{first.health_port}/nothing").status_code == 404

    with api.client() as client:
        op = client.start_training(TINY_STRATEGY, RESUMABLE).operation_id
        before = wait_until(_running_with_checkpoint(client, op), "a checkpoint", 120, first.logs)
        busy = first.health()
        assert busy["status"] == "busy" and busy["operation_id"] == op
        assert busy["progress"]["total_steps"] == EPOCHS

        first.signal(signal.SIGTERM)
        assert first.wait_exit() == 0, first.logs()
        released = client.get_operation(op)
        assert released.state == OperationState.PENDING, first.logs()
        [attempt] = released.reproducibility.attempts
        assert attempt.outcome == AttemptOutcome.RELEASED
        # The checkpoint taken at the signal, newer than any seen while it ran.
        assert released.checkpoint_sha256 not in (None, before.checkpoint_sha256)
        assert client.artifact_exists(released.checkpoint_sha256)

        second = process_worker("training", "second")
        done = wait_for_state(api, op, DONE, "to end", 180, second.logs)
    assert done.state == OperationState.COMPLETED, done.error
    assert [a.worker_id for a in done.reproducibility.attempts] == ["first", "second"]
    summary = done.result["summary"]
    assert summary["resumed_from_epoch"] >= before.progress.step
    assert summary["epochs_run"] == EPOCHS  # the history carries on across the resume


def test_a_frozen_worker_drops_the_lost_attempt_and_resumes_its_operation(
    api, eurusd, process_worker
):
    worker = process_worker("training", "frozen")
    worker.wait_registered()
    with api.client() as client:
        op = client.start_training(TINY_STRATEGY, RESUMABLE).operation_id
        seen = wait_until(_running_with_checkpoint(client, op), "a checkpoint", 120, worker.logs)

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
        # Back to life, the worker's next heartbeat gets 409: it drops the run, claims the
        # requeued operation as a new attempt and resumes from the checkpoint.
        done = wait_for_state(api, op, DONE, "to end", 180, worker.logs)
    assert done.state == OperationState.COMPLETED, done.error
    first, second = done.reproducibility.attempts
    assert first.outcome == AttemptOutcome.LEASE_EXPIRED and first.worker_id == "frozen"
    assert second.outcome == AttemptOutcome.COMPLETED and second.worker_id == "frozen"
    # A heartbeat carries epoch k's progress with a checkpoint of epoch k - 1 at least (epoch
    # k's own is written just after its progress is recorded).
    assert done.result["summary"]["resumed_from_epoch"] >= seen.progress.step - 1
    log = worker.log.read_text()
    assert "409" in log and "lost operation" in log
