"""Drill: cancel an operation in each phase — queued, data download, training, result upload —
and it ends `cancelled` within a few seconds, with the worker free for the next operation.

Each phase is held by the test, never raced: the worker talks to the backend through a relay
(tests/support/proxy.py) whose gate holds the data download or the bundle upload part-way
until the test lets it go, and the training holds at an epoch boundary while the worker's
hold file (KTRDR_WORKER_HOLD_FILE) exists. How each phase stops:

- queued: the backend cancels a pending operation at once;
- data download: the worker checks the cancel flag (from its heartbeat) as each piece of the
  file arrives, drops the transfer and leaves no partial file in its cache;
- training: checked before every batch (and a cancel ends a hold at once);
- upload: one HTTP request that is not cut short; the backend refuses to turn a cancelled
  operation into a completed one, so the result that arrives after the cancel is discarded.
"""

from __future__ import annotations

import time

import pytest

from ktrdr_core.protocol import AttemptOutcome, OperationState
from tests.support.market_data import eurusd_csv
from tests.support.proxy import GatedProxy
from tests.support.stack import TINY_STRATEGY, ApiServer, WorkerProcess, wait_for_state
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # a worker process that imports torch, six trainings

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
CANCEL_LIMIT_S = 15.0  # "within a few seconds", generous for a loaded CI machine
# More epochs than the test lets run: it holds the training after its first epoch.
LONG = {"training.epochs": 20, "training.early_stopping": None}
# One epoch, no checkpoint (the interval is past the end): the only upload is the bundle.
SHORT = {"training.epochs": 1, "training.checkpoint_interval": 100}


@pytest.fixture
def stack(tmp_path):
    api = ApiServer(tmp_path / "home", lease_seconds=6.0, token="cancel-secret").start()
    proxy = GatedProxy(api.port)
    hold = tmp_path / "hold"  # while it exists, a training holds after each epoch
    worker = WorkerProcess(
        "training",
        api,
        tmp_path / "workers",
        worker_id="trainer",
        env={"KTRDR_API_URL": proxy.url, "KTRDR_WORKER_HOLD_FILE": str(hold)},
    )
    yield api, proxy, worker, hold
    worker.stop()
    proxy.release()
    proxy.close()
    api.stop()


def _cancelled_in_time(api, client, op: str, logs) -> float:
    """Ask to cancel ``op``; wait for `cancelled`; returns the seconds it took."""
    asked = time.monotonic()
    client.cancel_operation(op)
    _wait_cancelled(api, op, logs)
    return time.monotonic() - asked


def _wait_cancelled(api, op: str, logs) -> None:
    view = wait_for_state(api, op, DONE, "to end after the cancel", CANCEL_LIMIT_S, logs)
    assert view.state == OperationState.CANCELLED, view.error


def _phase(client, op: str, starts: str):
    def reached():
        view = client.get_operation(op)
        assert not view.state.is_terminal, view.error
        return view.state == OperationState.RUNNING and view.progress.message.startswith(starts)

    return reached


def _held(proxy: GatedProxy, client, op: str):
    """The gate holds the transfer (and the operation has not ended some other way)."""

    def held() -> bool:
        view = client.get_operation(op)
        assert not view.state.is_terminal, view.error
        return proxy.held.is_set()

    return held


def _worker_knows(worker: WorkerProcess, op: str):
    """The worker logged the cancel, which it does after setting its cancel flag."""
    return lambda: f"operation {op} was cancelled; stopping" in worker.log.read_text()


def test_cancel_in_every_phase_ends_cancelled_and_frees_the_worker(stack, tmp_path):
    api, proxy, worker, hold = stack
    took: dict[str, float] = {}
    with api.client() as client:
        data = client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "eurusd.csv"))
        worker.wait_registered()
        head = client.request("HEAD", f"/artifacts/{data.checksum}")
        data_bytes = int(head.headers["content-length"])

        # --- data download: held after 8 KiB of the response, cancelled while held ---
        first, budget = 8192, 4096
        assert data_bytes > first + budget
        proxy.gate("down", match=f"GET /api/v1/artifacts/{data.checksum}".encode(),
                   after_bytes=first)  # fmt: skip
        download = client.start_training(TINY_STRATEGY, LONG).operation_id
        wait_until(_held(proxy, client, download), "the download held", 120, worker.logs)
        wait_until(_phase(client, download, "downloading data"), "the download's progress", 30,
                   worker.logs)  # fmt: skip
        asked = time.monotonic()
        client.cancel_operation(download)
        wait_until(_worker_knows(worker, download), "the worker to hear of the cancel",
                   CANCEL_LIMIT_S, worker.logs)  # fmt: skip
        # A few more bytes: the worker checks its flag as they arrive and drops the transfer.
        proxy.release(budget)
        _wait_cancelled(api, download, worker.logs)
        took["data download"] = time.monotonic() - asked
        assert proxy.moved_on_gated <= first + budget < data_bytes
        wait_until(lambda: worker.health()["jobs_done"] == 1, "the job to be cleaned up", 30,
                   worker.logs)  # fmt: skip
        cached = [p for p in (tmp_path / "workers" / "cache").rglob("*") if p.is_file()]
        assert cached == [], f"a cancelled download left files behind: {cached}"
        proxy.release()

        # --- training, held after its first epoch, with a second operation queued behind ---
        hold.touch()
        training = client.start_training(TINY_STRATEGY, LONG).operation_id
        wait_until(_phase(client, training, "held after epoch"), "the training held", 120,
                   worker.logs)  # fmt: skip
        queued = client.start_training(TINY_STRATEGY, LONG).operation_id
        assert client.get_operation(queued).state == OperationState.PENDING
        took["queued"] = _cancelled_in_time(api, client, queued, worker.logs)
        took["training"] = _cancelled_in_time(api, client, training, worker.logs)
        stopped = client.get_operation(training)
        # The worker confirmed it stopped, not a lease that ran out.
        assert stopped.reproducibility.attempts[-1].outcome == AttemptOutcome.CANCELLED
        hold.unlink()  # the trainings below must not hold

        # --- the worker is free: it takes the next operation and completes it ---
        free = client.start_training(TINY_STRATEGY, SHORT).operation_id
        done = wait_for_state(api, free, DONE, "a training after the cancels", 120, worker.logs)
        assert done.state == OperationState.COMPLETED, done.error
        assert done.reproducibility.attempts[0].worker_id == worker.worker_id
        [model] = client.list_models()

        # --- upload: the bundle held part-way, cancelled while held, then let through ---
        assert model.size > 2048
        proxy.gate("up", match=b"POST /api/v1/artifacts?kind=bundle", after_bytes=1024)
        upload = client.start_training(TINY_STRATEGY, SHORT).operation_id
        wait_until(_held(proxy, client, upload), "the upload held", 120, worker.logs)
        wait_until(_phase(client, upload, "uploading the model bundle"), "the upload's progress",
                   30, worker.logs)  # fmt: skip
        asked = time.monotonic()
        view = client.cancel_operation(upload)
        assert view.state == OperationState.RUNNING and view.cancel_requested
        # The worker knows, and still does not cut the upload short: one HTTP request.
        wait_until(_worker_knows(worker, upload), "the worker to hear of the cancel",
                   CANCEL_LIMIT_S, worker.logs)  # fmt: skip
        proxy.release()
        _wait_cancelled(api, upload, worker.logs)
        took["upload"] = time.monotonic() - asked
        cancelled = client.get_operation(upload)
        assert cancelled.result is None
        [attempt] = cancelled.reproducibility.attempts
        assert attempt.outcome == AttemptOutcome.CANCELLED
        assert "discarded" in attempt.reason  # the bundle arrived after the cancel
        assert [m.model_id for m in client.list_models()] == [model.model_id]  # no new model

        after = client.start_training(TINY_STRATEGY, SHORT).operation_id
        done = wait_for_state(api, after, DONE, "a training after the upload", 120, worker.logs)
        assert done.state == OperationState.COMPLETED, done.error

        for op in (download, queued, training, upload):
            assert client.get_operation(op).state == OperationState.CANCELLED
    print("cancel took (s):", {phase: round(s, 2) for phase, s in took.items()})

    def idle_after_five():  # queued never ran; the count moves once the job is cleaned up
        health = worker.health()
        return health["status"] == "idle" and health["jobs_done"] == 5

    wait_until(idle_after_five, "the worker idle after five jobs", 30, worker.logs)
