"""The state machine on SQLite and on a real PostgreSQL server: a lost lease, a late
message, a completion, and racing claims that must never hand one operation out twice."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from ktrdr_api.app import create_app
from ktrdr_api.artifacts import ArtifactStore
from ktrdr_api.lifecycle import OperationConflict
from ktrdr_core.protocol import Completion, Heartbeat, Progress, TrainingResult
from ktrdr_core.settings import Settings
from tests.support.api import FakeClock, training_inputs
from tests.support.bundles import bundle_bytes


@pytest.fixture
def live(database_url, tmp_path):
    clock = FakeClock()
    settings = Settings(home=tmp_path, database_url=database_url, lease_seconds=30)
    with TestClient(create_app(settings, clock=clock, sweep_interval_s=3600)) as client:
        yield client, client.app.state.backend, clock


def _artifact(backend, data: bytes, kind: str) -> str:
    from ktrdr_api import catalog
    from ktrdr_core.protocol import ArtifactKind

    store: ArtifactStore = backend.store
    stored = store.put_bytes(data)
    with backend.sessions.begin() as session:
        catalog.record_artifact(
            session, stored.sha256, ArtifactKind(kind), stored.size, backend.operations.clock()
        )
    return stored.sha256


def _register(client, worker_id):
    client.post("/api/v1/workers", json={"worker_id": worker_id, "kind": "training"})


def test_lease_loss_late_message_and_completion(live):
    client, backend, clock = live
    ops = backend.operations
    data = _artifact(backend, b"csv", "data")
    bundle = _artifact(backend, bundle_bytes(), "bundle")
    op = ops.create(training_inputs(data), references=[data])
    for worker in ("w1", "w2"):
        _register(client, worker)

    first = ops.try_claim(ops.begin_claim("w1", 0))
    ops.heartbeat(
        "w1", Heartbeat(operation_id=op.operation_id, attempt=1, progress=Progress(percent=5))
    )
    clock.advance(31)
    [requeued] = ops.expire_leases()
    assert requeued.state == "pending" and requeued.progress.percent == 5
    second = ops.try_claim(ops.begin_claim("w2", 0))
    assert (first.attempt, second.attempt) == (1, 2)

    late = Completion(attempt=1, result=TrainingResult(bundle_sha256=bundle))
    with pytest.raises(OperationConflict, match="attempt 2 on worker w2"):
        ops.complete("w1", op.operation_id, late)
    done = ops.complete("w2", op.operation_id, Completion(attempt=2, result=late.result))
    assert done.state == "completed"
    assert [a.outcome for a in done.reproducibility.attempts] == ["lease_expired", "completed"]
    assert done.created_at.tzinfo is not None and done.finished_at == clock.now


def test_racing_claims_hand_each_operation_out_once(live):
    client, backend, _clock = live
    ops = backend.operations
    data = _artifact(backend, b"csv", "data")
    created = {ops.create(training_inputs(data), references=[data]).operation_id for _ in range(5)}
    workers = [f"w{n}" for n in range(8)]
    for worker in workers:
        _register(client, worker)
    got: dict[str, str | None] = {}
    barrier = threading.Barrier(len(workers))

    def run(worker):
        info = ops.begin_claim(worker, 0)
        barrier.wait()
        offer = ops.try_claim(info)
        got[worker] = offer.operation_id if offer else None

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handed = [op for op in got.values() if op is not None]
    assert sorted(handed) == sorted(created)  # each exactly once, none left behind
