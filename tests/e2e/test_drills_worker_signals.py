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
from tests.support.proxy import ThrottledProxy
from tests.support.stack import TINY_STRATEGY, ApiServer, WorkerProcess, wait_for_state
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # two worker processes that import torch

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
# Long enough on a fast, idle machine (about 25 ms an epoch) to outlast the first heartbeat,
# which is when the backend learns of a checkpoint (heartbeats go every lease / 3).
RESUMABLE = {"training.epochs": 1000, "training.batch_size": 32, "training.early_stopping": None}
# One epoch, no checkpoint (the interval is past the end): the only upload is the bundle.
SHORT = {"training.epochs": 1, "training.checkpoint_interval": 100}


def _logs(*workers):
    return lambda: "\n".join(worker.logs() for worker in workers)


def test_sigterm_hands_the_operation_to_the_waiting_worker_long_before_the_lease_ends(tmp_path):
    lease = 30.0  # nothing in this test may wait for a lease to run out
    api = ApiServer(tmp_path / "home", lease_seconds=lease, token="signal-secret").start()
    workers = [
        WorkerProcess("training", api, tmp_path / "workers", worker_id=name)
        for name in ("term-a", "term-b")
    ]
    logs = _logs(*workers)
    try:
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
            [leaving] = [w for w in workers if w.worker_id == seen.worker_id]
            [staying] = [w for w in workers if w is not leaving]

            signalled = time.monotonic()
            leaving.signal(signal.SIGTERM)

            def taken_over():
                view = client.get_operation(op)
                return view if view.attempt == 2 and view.worker_id == staying.worker_id else None

            # Well within the lease: the release requeued it and woke the waiting worker.
            wait_until(taken_over, "the other worker to take over", lease / 3, logs)
            handover_s = time.monotonic() - signalled
            assert leaving.wait_exit() == 0, leaving.logs()
            done = wait_for_state(api, op, DONE, "to end", 400, logs)
        assert done.state == OperationState.COMPLETED, done.error
        first, second = done.reproducibility.attempts
        assert (first.worker_id, first.outcome) == (leaving.worker_id, AttemptOutcome.RELEASED)
        assert (second.worker_id, second.outcome) == (staying.worker_id, AttemptOutcome.COMPLETED)
        # The checkpoint taken at the signal is newer than any seen while it ran.
        assert done.result["summary"]["resumed_from_epoch"] >= seen.progress.step
        assert done.result["summary"]["epochs_run"] == RESUMABLE["training.epochs"]
        print(f"handed over {handover_s:.1f} s after SIGTERM (lease {lease:.0f} s)")
    finally:
        for worker in workers:
            worker.stop()
        api.stop()


def test_a_frozen_workers_late_completion_is_refused_and_the_requeued_attempt_stands(tmp_path):
    api = ApiServer(tmp_path / "home", lease_seconds=3.0, token="frozen-secret").start()
    proxy = ThrottledProxy(api.port)  # the frozen worker's slow link: its upload takes seconds
    frozen = WorkerProcess("training", api, tmp_path / "workers", worker_id="frozen",
                           env={"KTRDR_API_URL": proxy.url})  # fmt: skip
    workers = [frozen]
    logs = _logs(*workers)
    try:
        with api.client() as client:
            client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "eurusd.csv"))
            frozen.wait_registered()
            # Measure the bundle on a normal run, then slow the link to ~6 s per bundle.
            warmup = client.start_training(TINY_STRATEGY, SHORT).operation_id
            assert wait_for_state(api, warmup, DONE, "a first training", 120, logs).state == (
                OperationState.COMPLETED
            )
            [first_model] = client.list_models()
            proxy.up_rate = first_model.size / 6

            op = client.start_training(TINY_STRATEGY, SHORT).operation_id

            def uploading() -> bool:
                view = client.get_operation(op)
                assert not view.state.is_terminal, view.error
                return view.progress.message.startswith("uploading the model bundle")

            wait_until(uploading, "the bundle upload", 120, logs)
            frozen.signal(signal.SIGSTOP)  # no heartbeats, no progress: a stalled host
            try:
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
            proxy.up_rate = None
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
        assert frozen.health()["status"] in ("idle", "reconnecting")  # alive and free again
    finally:
        for worker in workers:
            worker.stop()
        proxy.close()
        api.stop()
