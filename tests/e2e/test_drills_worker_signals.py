"""Drills with a second training worker waiting: SIGTERM hands the operation over at once,
and a frozen worker's late completion is refused without touching the attempt that replaced
it. (tests/worker/service/test_worker_process.py covers one worker at a time.)"""

from __future__ import annotations

import signal
import time

import pytest

from ktrdr_core.errors import ApiError
from ktrdr_core.protocol import AttemptOutcome, OperationState, TrainingResult
from tests.support.market_data import eurusd_csv
from tests.support.proxy import GatedProxy
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
# Held at an epoch boundary by the workers' hold file while the test signals: a few epochs do.
RESUMABLE = {"training.epochs": 4, "training.batch_size": 32, "training.early_stopping": None}
# One epoch, no checkpoint (the interval is past the end): the only upload is the bundle.
SHORT = {"training.epochs": 1, "training.checkpoint_interval": 100}


def _logs(*workers):
    return lambda: "\n".join(worker.logs() for worker in workers)


def test_sigterm_hands_the_operation_to_the_waiting_worker_long_before_the_lease_ends(tmp_path):
    # Nothing in this test may wait for a lease to run out, however slow the machine: a handover
    # is the release's doing, never an expiry's.
    lease = 600.0
    api = ApiServer(tmp_path / "home", lease_seconds=lease, token="signal-secret").start()
    hold = tmp_path / "hold"  # either worker may claim the run: both hold while it exists
    env = {"KTRDR_WORKER_HOLD_FILE": str(hold)}
    workers = [
        WorkerProcess("training", api, tmp_path / "workers", worker_id=name, env=env)
        for name in ("term-a", "term-b")
    ]
    logs = _logs(*workers)
    try:
        with api.client() as client:
            client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "eurusd.csv"))
            for worker in workers:
                worker.wait_registered()
            hold.touch()
            op = client.start_training(TINY_STRATEGY, RESUMABLE).operation_id

            seen = wait_until(
                held_with_checkpoint(client, op), "the training held with a checkpoint", 180, logs
            )
            [leaving] = [w for w in workers if w.worker_id == seen.worker_id]
            [staying] = [w for w in workers if w is not leaving]

            signalled = time.monotonic()
            leaving.signal(signal.SIGTERM)  # ends the hold: released with a checkpoint

            def taken_over():
                view = client.get_operation(op)
                return view if view.attempt == 2 and view.worker_id == staying.worker_id else None

            # The release requeued it and woke the waiting worker: no lease ran out.
            wait_until(taken_over, "the other worker to take over", 120, logs)
            handover_s = time.monotonic() - signalled
            assert leaving.wait_exit() == 0, leaving.logs()
            hold.unlink()  # the taken-over attempt may hold one epoch on: let it finish
            done = wait_for_state(api, op, DONE, "to end", 400, logs)
        assert done.state == OperationState.COMPLETED, done.error
        first, second = done.reproducibility.attempts
        assert (first.worker_id, first.outcome) == (leaving.worker_id, AttemptOutcome.RELEASED)
        assert (second.worker_id, second.outcome) == (staying.worker_id, AttemptOutcome.COMPLETED)
        # The checkpoint taken at the signal, before any batch of the epoch after the hold.
        assert done.result["summary"]["resumed_from_epoch"] == seen.progress.step
        assert done.result["summary"]["epochs_run"] == RESUMABLE["training.epochs"]
        print(f"handed over {handover_s:.1f} s after SIGTERM (lease {lease:.0f} s)")
    finally:
        for worker in workers:
            worker.stop()
        api.stop()


def test_a_frozen_workers_late_completion_is_refused_and_the_requeued_attempt_stands(tmp_path):
    # Long enough that the rescuer's heartbeats (every lease / 3) keep its attempt on a busy
    # machine; the frozen worker's lease runs out all the same, as it sends none.
    api = ApiServer(tmp_path / "home", lease_seconds=10.0, token="frozen-secret").start()
    proxy = GatedProxy(api.port)  # the frozen worker's link: its upload is held part-way
    frozen = WorkerProcess("training", api, tmp_path / "workers", worker_id="frozen",
                           env={"KTRDR_API_URL": proxy.url})  # fmt: skip
    workers = [frozen]
    logs = _logs(*workers)
    try:
        with api.client() as client:
            client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "eurusd.csv"))
            frozen.wait_registered()
            # Hold the bundle upload after its first KiB (a bundle is several).
            proxy.gate("up", match=b"POST /api/v1/artifacts?kind=bundle", after_bytes=1024)
            op = client.start_training(TINY_STRATEGY, SHORT).operation_id

            def uploading() -> bool:
                view = client.get_operation(op)
                assert not view.state.is_terminal, view.error
                return proxy.held.is_set()

            wait_until(uploading, "the bundle upload held", 120, logs)
            frozen.signal(signal.SIGSTOP)  # no heartbeats, no progress: a stalled host
            try:
                # The held bytes may go on: the stopped worker sends nothing more.
                proxy.release()
                wait_until(
                    lambda: client.get_operation(op).state == OperationState.PENDING,
                    "the frozen worker's lease to expire",
                    60,
                    logs,
                )
                rescuer = WorkerProcess("training", api, tmp_path / "workers", worker_id="rescuer")
                workers.append(rescuer)
                wait_until(
                    lambda: client.get_operation(op).worker_id == "rescuer",
                    "the other worker to claim the requeued operation",
                    120,
                    logs,
                )
            finally:
                frozen.signal(signal.SIGCONT)
            done = wait_for_state(api, op, DONE, "to end", 180, logs)

            # What the frozen worker did after it woke: its completion of attempt 1 was refused.
            wait_until(lambda: "no longer held by this attempt" in frozen.log.read_text(),
                       "the frozen worker's refused completion", 30, logs)  # fmt: skip
            # And so is the same completion sent again by hand: 409, nothing changes.
            with pytest.raises(ApiError) as late:
                late_result = TrainingResult(
                    bundle_sha256=done.result["bundle_sha256"], summary=done.result["summary"]
                )
                client.complete_operation("frozen", op, 1, late_result)
            assert late.value.status == 409 and "already completed" in str(late.value)
            after = client.get_operation(op)
            models = [m for m in client.list_models() if m.training_operation_id == op]
        assert done.state == OperationState.COMPLETED, done.error
        first, second = done.reproducibility.attempts
        assert (first.worker_id, first.outcome) == ("frozen", AttemptOutcome.LEASE_EXPIRED)
        assert (second.worker_id, second.outcome) == ("rescuer", AttemptOutcome.COMPLETED)
        assert after == done  # the refused completion changed nothing
        [model] = models  # one model for the operation: the rescuer's
        assert model.bundle_sha256 == done.result["bundle_sha256"]
        # Alive and free again (it goes idle just after the line the wait above read).
        wait_until(lambda: frozen.health()["status"] in ("idle", "reconnecting"),
                   "the frozen worker idle again", 30, logs)  # fmt: skip
    finally:
        for worker in workers:
            worker.stop()
        proxy.close()
        api.stop()
