"""Leases: expiry requeues, the attempt limit fails, late messages are refused, cancels land."""

from __future__ import annotations

import pytest

from tests.support.api import API, claim, register, training_inputs, upload_artifact
from tests.support.bundles import bundle_bytes


@pytest.fixture
def data_sha(client) -> str:
    return upload_artifact(client, b"timestamp,open,high,low,close,volume\n", "data")


@pytest.fixture
def op_id(backend, data_sha) -> str:
    return backend.operations.create(training_inputs(data_sha), references=[data_sha]).operation_id


def _beat(client, worker, op_id, attempt, **extra):
    body = {"operation_id": op_id, "attempt": attempt, **extra}
    return client.post(f"{API}/workers/{worker}/heartbeat", json=body)


def _expire(backend, clock, settings):
    clock.advance(settings.lease_seconds + 1)
    return backend.operations.expire_leases()


def _get(client, op_id):
    return client.get(f"{API}/operations/{op_id}").json()


def test_heartbeats_keep_the_lease(client, backend, clock, settings, op_id):
    register(client, "w1")
    offer = claim(client, "w1")
    for _ in range(5):
        clock.advance(settings.lease_seconds * 0.8)
        response = _beat(client, "w1", op_id, offer["attempt"], progress={"percent": 10})
        assert response.status_code == 200
        assert response.json() == {
            "cancel": False,
            "lease_expires_at": response.json()["lease_expires_at"],
        }
        assert backend.operations.expire_leases() == []
    assert _get(client, op_id)["state"] == "running"


def test_expired_lease_requeues_and_late_messages_from_the_old_attempt_are_refused(
    client, backend, clock, settings, op_id
):
    register(client, "w1")
    register(client, "w2")
    first = claim(client, "w1")
    changed = _expire(backend, clock, settings)
    assert [v.operation_id for v in changed] == [op_id]
    view = _get(client, op_id)
    assert view["state"] == "pending"
    assert view["reproducibility"]["attempts"][0]["outcome"] == "lease_expired"
    assert "no heartbeat from worker w1" in view["reproducibility"]["attempts"][0]["reason"]

    second = claim(client, "w2")
    assert second["operation_id"] == op_id and second["attempt"] == 2

    # The first worker wakes up and carries on as if nothing happened.
    late_beat = _beat(client, "w1", op_id, first["attempt"])
    assert late_beat.status_code == 409
    assert "attempt 2 on worker w2" in late_beat.json()["detail"]
    bundle = upload_artifact(client, bundle_bytes(), "bundle")
    late_done = client.post(
        f"{API}/workers/w1/operations/{op_id}/complete",
        json={"attempt": first["attempt"], "result": {"kind": "training", "bundle_sha256": bundle}},
    )
    assert late_done.status_code == 409
    view = _get(client, op_id)
    assert view["state"] == "running" and view["worker_id"] == "w2" and view["attempt"] == 2
    assert client.get(f"{API}/models").json() == []

    done = client.post(
        f"{API}/workers/w2/operations/{op_id}/complete",
        json={"attempt": 2, "result": {"kind": "training", "bundle_sha256": bundle}},
    )
    assert done.status_code == 200 and done.json()["state"] == "completed"
    assert [a["worker_id"] for a in done.json()["reproducibility"]["attempts"]] == ["w1", "w2"]


def test_operation_fails_after_max_attempts_with_the_reason(
    client, backend, clock, settings, op_id
):
    for attempt in range(1, settings.max_attempts + 1):
        register(client, f"w{attempt}")
        offer = claim(client, f"w{attempt}")
        assert offer["attempt"] == attempt
        _expire(backend, clock, settings)
    view = _get(client, op_id)
    assert view["state"] == "failed"
    assert f"gave up after {settings.max_attempts} lost lease(s)" in view["error"]
    assert claim(client, "w1") is None


def test_release_requeues_without_using_up_an_attempt(client, backend, clock, settings, op_id):
    register(client, "w1")
    register(client, "w2")
    offer = claim(client, "w1")
    response = client.post(
        f"{API}/workers/w1/operations/{op_id}/release", json={"attempt": offer["attempt"]}
    )
    assert response.json()["state"] == "pending"
    # Lost leases after a release: the release does not count towards the limit.
    for worker in ("w2", "w1"):
        assert claim(client, worker) is not None
        _expire(backend, clock, settings)
    assert _get(client, op_id)["state"] == "pending"


def test_worker_restarted_under_the_same_id_gives_up_its_old_attempt(client, op_id):
    register(client, "w1")
    first = claim(client, "w1")
    register(client, "w1")  # the process restarted
    second = claim(client, "w1")
    assert second["operation_id"] == op_id and second["attempt"] == first["attempt"] + 1
    attempts = _get(client, op_id)["reproducibility"]["attempts"]
    assert "abandoned" in attempts[0]["reason"]


def test_checkpoint_survives_a_requeue(client, backend, clock, settings, op_id):
    register(client, "w1")
    register(client, "w2")
    offer = claim(client, "w1")
    checkpoint = upload_artifact(client, b"epoch 20 weights", "checkpoint")
    assert (
        _beat(client, "w1", op_id, offer["attempt"], checkpoint_sha256=checkpoint).status_code
        == 200
    )
    _expire(backend, clock, settings)
    resumed = claim(client, "w2")
    assert resumed["checkpoint_sha256"] == checkpoint


def test_heartbeat_naming_a_checkpoint_never_uploaded_is_refused(client, op_id):
    register(client, "w1")
    offer = claim(client, "w1")
    response = _beat(client, "w1", op_id, offer["attempt"], checkpoint_sha256="f" * 64)
    assert response.status_code == 422
    assert "was not uploaded" in response.json()["detail"]


def test_cancel_pending_is_immediate(client, op_id):
    response = client.post(f"{API}/operations/{op_id}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    register(client, "w1")
    assert claim(client, "w1") is None
    again = client.post(f"{API}/operations/{op_id}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_cancel_running_reaches_the_worker_through_its_heartbeat(client, op_id):
    register(client, "w1")
    offer = claim(client, "w1")
    assert client.post(f"{API}/operations/{op_id}/cancel").json()["state"] == "running"
    assert _beat(client, "w1", op_id, offer["attempt"]).json()["cancel"] is True
    ack = client.post(
        f"{API}/workers/w1/operations/{op_id}/cancelled", json={"attempt": offer["attempt"]}
    )
    assert ack.status_code == 200 and ack.json()["state"] == "cancelled"
    assert _beat(client, "w1", op_id, offer["attempt"]).status_code == 409


def test_cancelled_operation_whose_worker_vanished_ends_cancelled(
    client, backend, clock, settings, op_id
):
    register(client, "w1")
    claim(client, "w1")
    client.post(f"{API}/operations/{op_id}/cancel")
    _expire(backend, clock, settings)
    view = _get(client, op_id)
    assert view["state"] == "cancelled"
    assert "never confirmed" in view["error"]


def test_failure_is_recorded_and_retry_runs_again(client, op_id):
    register(client, "w1")
    offer = claim(client, "w1")
    failed = client.post(
        f"{API}/workers/w1/operations/{op_id}/fail",
        json={"attempt": offer["attempt"], "error": "labels are 97 % HOLD"},
    )
    assert failed.json()["state"] == "failed" and failed.json()["error"] == "labels are 97 % HOLD"
    retry = client.post(f"{API}/operations/{op_id}/retry")
    assert retry.status_code == 201
    assert claim(client, "w1")["operation_id"] == retry.json()["operation_id"]


def test_operations_list_filters(client, backend, data_sha, op_id):
    backend.operations.create(training_inputs(data_sha), references=[data_sha])
    client.post(f"{API}/operations/{op_id}/cancel")
    pending = client.get(f"{API}/operations", params={"state": "pending"}).json()
    cancelled = client.get(f"{API}/operations", params={"state": "cancelled"}).json()
    assert len(pending) == 1 and [v["operation_id"] for v in cancelled] == [op_id]
    assert client.get(f"{API}/operations", params={"kind": "backtest"}).json() == []
    bad = client.get(f"{API}/operations", params={"state": "sleeping"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "state"]


def test_sweeper_in_the_lifespan_requeues_by_itself(settings, tmp_path):
    """A real app with a short lease and a real clock: nobody calls expire_leases by hand."""
    from fastapi.testclient import TestClient

    from ktrdr_api.app import create_app
    from tests.support.waiting import wait_until

    fast = settings.model_copy(update={"lease_seconds": 0.2})
    with TestClient(create_app(fast, sweep_interval_s=0.05)) as live:
        backend = live.app.state.backend
        data = upload_artifact(live, b"x", "data")
        op = backend.operations.create(training_inputs(data), references=[data])
        register(live, "w1")
        assert claim(live, "w1")["operation_id"] == op.operation_id
        wait_until(lambda: backend.operations.get(op.operation_id).state == "pending", "the sweep")
