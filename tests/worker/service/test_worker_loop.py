"""The worker loop (in a thread of this process) against a real backend process: it claims,
trains with progress and checkpoints, completes, stops on cancel, reports failures, and finds
the backend again after a restart without anyone's help."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ktrdr_core.errors import ApiError
from ktrdr_core.protocol import AttemptOutcome, OperationState, WorkerStatus
from tests.support.stack import TINY_STRATEGY, held_with_checkpoint, wait_for_state
from tests.support.waiting import wait_until

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
# Runs that are interrupted: held at an epoch boundary by the worker's hold file while the
# test acts, so their length does not matter.
EPOCHS = 4
HELD = {"training.epochs": EPOCHS, "training.batch_size": 64, "training.early_stopping": None}


def _logs(api):
    from tests.support.processes import log_tail

    return lambda: log_tail(api.log)


def test_training_completes_with_bundle_result_and_reproducibility(api, eurusd, thread_worker):
    worker = thread_worker("training")
    with api.client() as client:
        started = client.start_training(TINY_STRATEGY, {"training.epochs": 3})
        view = wait_for_state(api, started.operation_id, DONE, "to end", logs=_logs(api))
        assert view.state == OperationState.COMPLETED, view.error
        summary = view.result["summary"]
        assert summary["format"] == "ktrdr-training-result/1"
        assert summary["epochs_run"] == 3 and summary["symbols"] == ["EURUSD"]
        assert summary["resumed_from_epoch"] is None
        [model] = client.list_models()
        assert model.bundle_sha256 == view.result["bundle_sha256"]
        assert model.training_operation_id == started.operation_id
        assert model.metadata["feature_names"] == summary["feature_names"]
        [attempt] = view.reproducibility.attempts
        assert attempt.worker_id == worker.worker_id
        assert attempt.outcome == AttemptOutcome.COMPLETED
        assert attempt.worker_versions["torch"].startswith("2.")
    # One snapshot for both: the job count and the state change under separate locks.
    wait_until(
        lambda: (
            (s := worker.worker.snapshot())["jobs_done"] == 1
            and s["status"] in ("idle", "reconnecting")
        ),
        "the worker to be idle after its job",
    )


def test_progress_and_checkpoints_reach_the_backend_and_cancel_stops_the_job(
    api, eurusd, thread_worker, tmp_path
):
    hold = tmp_path / "hold"
    worker = thread_worker("training", hold_file=hold)
    with api.client() as client:
        hold.touch()
        long = client.start_training(TINY_STRATEGY, HELD)
        seen = wait_until(
            held_with_checkpoint(client, long.operation_id),
            "epoch progress and a checkpoint",
            120,
            _logs(api),
        )
        assert seen.state == OperationState.RUNNING
        assert seen.progress.step == 1 and seen.progress.total_steps == EPOCHS
        assert "epoch" in seen.progress.message
        assert {"train_loss", "val_loss"} <= set(seen.progress.metrics)
        assert 0 < seen.progress.percent < 100
        assert client.artifact_exists(seen.checkpoint_sha256)

        client.cancel_operation(long.operation_id)  # ends the hold
        cancelled = wait_for_state(api, long.operation_id, DONE, "to end", logs=_logs(api))
        assert cancelled.state == OperationState.CANCELLED
        # The worker confirmed it: not the "never confirmed" of a lease that ran out.
        assert cancelled.reproducibility.attempts[0].outcome == AttemptOutcome.CANCELLED

        # And it goes on working (unheld).
        hold.unlink()
        short = client.start_training(TINY_STRATEGY, {"training.epochs": 1})
        done = wait_for_state(api, short.operation_id, DONE, "to end", logs=_logs(api))
        assert done.state == OperationState.COMPLETED, done.error
        assert done.reproducibility.attempts[0].worker_id == worker.worker_id


def test_a_job_that_cannot_run_fails_with_the_reason(api, eurusd, thread_worker):
    thread_worker("training")
    thread_worker("backtest")
    with api.client() as client:
        trained = client.start_training(TINY_STRATEGY, {"training.epochs": 1})
        assert wait_for_state(api, trained.operation_id, DONE, "to end").state == "completed"
        [model] = client.list_models()
        # A period after the last bar never reaches a worker: the backend names what is missing.
        with pytest.raises(ApiError) as refused:
            client.start_backtest(
                model.model_id, start="2030-01-01T00:00:00Z", end="2030-02-01T00:00:00Z"
            )
        assert refused.value.status == 422 and "from 2030-01-01 to 2030-02-01" in str(refused.value)
        # From the very first bar: no warm-up before it, which only the worker can count; the
        # engine's own words come back as the error.
        first = model.data[0].first
        backtest = client.start_backtest(model.model_id, start=first, end=first + timedelta(days=5))
        view = wait_for_state(api, backtest.operation_id, DONE, "to end", logs=_logs(api))
    assert view.state == OperationState.FAILED
    assert "ModelBacktestError" in view.error and "warm-up" in view.error


def test_worker_registers_again_after_the_backend_restarts_on_a_fresh_database(
    api, thread_worker, tmp_path
):
    worker = thread_worker("backtest")

    def listed_idle():
        with api.client() as client:
            return any(
                w.worker_id == worker.worker_id and w.status == WorkerStatus.IDLE
                for w in client.list_workers()
            )

    wait_until(listed_idle, "the worker registered", 60)
    api.kill()
    api.start(home=tmp_path / "fresh-home")  # same port, an empty database
    wait_until(listed_idle, "the worker registered on the new backend", 60, _logs(api))
    assert worker.error is None


# The lease outlives any outage: the one attempt is never requeued, however slow the restart.
@pytest.mark.parametrize("api", [{"lease_seconds": 600.0}], indirect=True)
def test_a_backend_crash_mid_training_does_not_lose_the_job(api, eurusd, thread_worker, tmp_path):
    hold = tmp_path / "hold"
    worker = thread_worker("training", hold_file=hold)
    with api.client() as client:
        hold.touch()
        started = client.start_training(TINY_STRATEGY, HELD)
        wait_until(
            held_with_checkpoint(client, started.operation_id),
            "the training held mid-run",
            120,
            _logs(api),
        )
    api.kill()
    hold.unlink()  # the remaining epochs run while the backend is gone

    def uploading():
        progress = worker.worker.snapshot().get("progress") or {}
        return progress.get("message", "").startswith("uploading the model bundle")

    # Every epoch done, the bundle upload retrying until the backend is back.
    wait_until(uploading, "the training to end while the backend is down", 120, _logs(api))
    api.start()  # same database
    view = wait_for_state(api, started.operation_id, DONE, "to end", 120, _logs(api))
    assert view.state == OperationState.COMPLETED, view.error
    [attempt] = view.reproducibility.attempts  # the same attempt carried on
    assert attempt.worker_id == worker.worker_id
    summary = view.result["summary"]
    assert summary["epochs_run"] == EPOCHS and summary["resumed_from_epoch"] is None


def test_health_endpoint_follows_the_worker(api, thread_worker):
    import httpx

    from ktrdr_worker.service.health import HealthServer

    worker = thread_worker("backtest")
    health = HealthServer(worker.worker.snapshot).start()
    url = f"http://127.0.0.1:{health.port}/health"
    try:
        idle = wait_until(
            lambda: (r := httpx.get(url)).json()["status"] == "idle" and r, "an idle worker"
        )
        assert idle.status_code == 200
        assert idle.json()["worker_id"] == worker.worker_id and idle.json()["operation_id"] is None
        worker.stop()
        stopped = httpx.get(url)
        assert stopped.status_code == 503 and stopped.json()["status"] == "stopped"
    finally:
        health.stop()


@pytest.mark.parametrize("api", [{"token": "right-token"}], indirect=True)
def test_a_worker_the_backend_refuses_stops_with_the_reason(api, tmp_path, runtime):
    from ktrdr_worker.service import Worker, WorkerConfig
    from ktrdr_worker.service.worker import WorkerFatalError

    config = WorkerConfig(
        kind="training", api_url=api.url, api_token="wrong-token", cache_dir=tmp_path / "c"
    )
    with pytest.raises(WorkerFatalError, match="401"):
        Worker(config, runtime).run()
