"""Who gets what: kinds, queue order, GPU first, devices, and long polls woken at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from ktrdr_api.dispatch import GPU_GRACE_S, may_take
from ktrdr_api.models import Operation
from ktrdr_core.protocol import BacktestInputs, Device
from tests.support.api import API, claim, register, training_inputs, upload_artifact
from tests.support.waiting import wait_until


@pytest.fixture
def data_sha(client) -> str:
    return upload_artifact(client, b"timestamp,open,high,low,close,volume\n", "data")


def _training(backend, data_sha, device=None):
    return backend.operations.create(
        training_inputs(data_sha), device=device, references=[data_sha]
    ).operation_id


def _backtest(backend, data_sha):
    inputs = BacktestInputs(model_id="mdl_000000000000", bundle_sha256=data_sha, data=[])
    return backend.operations.create(inputs).operation_id


def _op(kind="training", device=None, pending_for_s=0.0):
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return Operation(kind=kind, device=device, pending_since=now - timedelta(seconds=pending_for_s))


NOW = datetime(2025, 1, 1, tzinfo=UTC)
GRACE = timedelta(seconds=GPU_GRACE_S)


@pytest.mark.parametrize(
    ("worker", "op", "gpu_waiting", "expected"),
    [
        (Device.CPU, _op(), False, True),  # nobody better is waiting
        (Device.CPU, _op(), True, False),  # left to the waiting GPU worker
        (Device.CPU, _op(pending_for_s=GPU_GRACE_S + 1), True, True),  # grace over
        (Device.CUDA, _op(), True, True),
        (Device.CPU, _op(kind="backtest"), True, True),  # GPU first is for training
        (Device.CPU, _op(device="cpu"), True, True),  # asks for the CPU: no GPU may take it
        (Device.CPU, _op(device="cuda"), False, False),  # strategy asks for a GPU
        (Device.CUDA, _op(device="cuda"), False, True),
        (Device.MPS, _op(device="cuda"), False, False),
    ],
)
def test_dispatch_rule(worker, op, gpu_waiting, expected):
    assert may_take(worker, op, gpu_waiting=gpu_waiting, now=NOW, grace=GRACE) is expected


def test_worker_gets_only_its_kind_oldest_first(client, backend, data_sha, clock):
    for name in ("t1", "t2", "t3"):
        register(client, name)
    register(client, "tester", kind="backtest")
    first = _training(backend, data_sha)
    clock.advance(1)
    second = _training(backend, data_sha)
    bt = _backtest(backend, data_sha)
    assert claim(client, "tester")["operation_id"] == bt
    assert claim(client, "t1")["operation_id"] == first
    assert claim(client, "t2")["operation_id"] == second
    assert claim(client, "t3") is None


def test_claim_carries_inputs_attempt_and_lease(client, backend, data_sha, clock, settings):
    register(client, "trainer")
    op_id = _training(backend, data_sha)
    offer = claim(client, "trainer")
    assert offer["operation_id"] == op_id
    assert offer["kind"] == "training"
    assert offer["attempt"] == 1
    assert offer["inputs"]["strategy_hash"] == "a" * 64
    assert offer["inputs"]["data"][0]["checksum"] == data_sha
    lease = datetime.fromisoformat(offer["lease_expires_at"])
    assert lease == clock.now + timedelta(seconds=settings.lease_seconds)
    worker = client.get(f"{API}/workers").json()[0]
    assert worker["status"] == "busy" and worker["current_operation_id"] == op_id


def test_unregistered_worker_is_told_to_register(client):
    response = client.post(f"{API}/workers/ghost/claim", json={"timeout_s": 0})
    assert response.status_code == 404
    assert "register" in response.json()["detail"]


def _claim_in_thread(client, worker_id, timeout_s, results):
    thread = threading.Thread(
        target=lambda: results.__setitem__(worker_id, claim(client, worker_id, timeout_s))
    )
    thread.start()
    return thread


def test_training_goes_to_the_waiting_gpu_worker(client, backend, data_sha):
    register(client, "cpu-1")
    register(client, "gpu-1", device="cuda")
    results: dict = {}
    # The fake clock stands still, so the grace period cannot run out under the CPU worker;
    # both polls are far longer than the test, so neither ends by itself on a slow machine.
    cpu = _claim_in_thread(client, "cpu-1", 60, results)
    gpu = _claim_in_thread(client, "gpu-1", 60, results)
    wait_until(lambda: len(backend.dispatcher.waiting()) == 2, "both workers long-polling")
    op_id = _training(backend, data_sha)
    gpu.join()
    assert results["gpu-1"]["operation_id"] == op_id
    assert "cpu-1" not in results, "the CPU worker's poll ended while the GPU worker waited"
    # The CPU worker is still polling and was passed over; with no GPU worker waiting now,
    # the next training ends its wait.
    assert [w for w, *_ in backend.dispatcher.waiting()] == ["cpu-1"]
    second = _training(backend, data_sha)
    cpu.join()
    assert results["cpu-1"]["operation_id"] == second


def test_cpu_worker_takes_training_when_no_gpu_worker_waits(client, backend, data_sha):
    register(client, "cpu-1")
    register(client, "gpu-busy", device="cuda")  # registered, but not polling
    op_id = _training(backend, data_sha)
    assert claim(client, "cpu-1")["operation_id"] == op_id


def test_cpu_worker_takes_training_after_the_grace(client, backend, data_sha, clock):
    register(client, "cpu-1")
    register(client, "gpu-1", device="cuda")
    op_id = _training(backend, data_sha)
    ops = backend.operations
    ops.begin_claim("gpu-1", 60)  # the GPU worker's long poll has begun (and lasts)
    cpu = ops.begin_claim("cpu-1", 0)
    assert ops.try_claim(cpu) is None  # left to the GPU worker
    clock.advance(GPU_GRACE_S + 0.5)
    assert ops.try_claim(cpu).operation_id == op_id


def test_operation_that_needs_cuda_waits_for_a_cuda_worker(client, backend, data_sha):
    register(client, "cpu-1")
    register(client, "gpu-1", device="cuda")
    op_id = _training(backend, data_sha, device="cuda")
    assert claim(client, "cpu-1") is None
    assert claim(client, "gpu-1")["operation_id"] == op_id


def test_new_operation_wakes_a_long_polling_worker(client, backend, data_sha):
    """The waiting claim must be woken by the creation itself: periodic re-checks are off,
    so without the notification it would sit out its full timeout and return 204."""
    backend.dispatcher.recheck_s = 3600
    register(client, "trainer")
    results: dict = {}
    thread = _claim_in_thread(client, "trainer", 30, results)
    wait_until(lambda: len(backend.dispatcher.waiting()) == 1, "worker long-polling")
    op_id = _training(backend, data_sha)
    thread.join()
    assert results["trainer"]["operation_id"] == op_id


def test_two_workers_never_get_the_same_operation(client, backend, data_sha):
    for n in range(4):
        register(client, f"w{n}")
    ops = [_training(backend, data_sha) for _ in range(3)]
    results: dict = {}
    threads = [_claim_in_thread(client, f"w{n}", 1.0, results) for n in range(4)]
    for thread in threads:
        thread.join()
    got = [r["operation_id"] for r in results.values() if r is not None]
    assert sorted(got) == sorted(ops)
