"""A worker's status is what the backend last heard from it: idle and busy workers that go
silent show as lost after two heartbeat intervals and offline after a lease, and come back
as soon as they are heard from again; a pending operation no live worker can take says so."""

from __future__ import annotations

from ktrdr_core.protocol import heartbeat_interval
from tests.support.api import API, claim, register, training_inputs, upload_artifact


def _status(client, worker_id: str) -> str:
    [worker] = [w for w in client.get(f"{API}/workers").json() if w["worker_id"] == worker_id]
    return worker["status"]


def _heartbeat(client, worker_id: str, op_id: str, attempt: int = 1) -> None:
    response = client.post(
        f"{API}/workers/{worker_id}/heartbeat",
        json={"operation_id": op_id, "attempt": attempt, "progress": {"percent": 10.0}},
    )
    assert response.status_code == 200, response.text


def test_an_idle_worker_that_stops_polling_is_lost_then_offline(client, clock, settings):
    register(client, "quiet")
    assert claim(client, "quiet") is None  # a poll that ends: heard from now
    beat = heartbeat_interval(settings.lease_seconds)
    clock.advance(2 * beat - 0.5)
    assert _status(client, "quiet") == "idle"
    clock.advance(1.0)
    assert _status(client, "quiet") == "lost"
    clock.advance(settings.lease_seconds - 2 * beat)
    assert _status(client, "quiet") == "offline"
    assert claim(client, "quiet") is None  # back: polling again
    assert _status(client, "quiet") == "idle"


def test_a_busy_worker_that_stops_beating_is_lost_then_offline(client, backend, clock, settings):
    data = upload_artifact(client, b"timestamp,open,high,low,close,volume\n", "data")
    op_id = backend.operations.create(training_inputs(data), references=[data]).operation_id
    register(client, "runner")
    assert claim(client, "runner")["operation_id"] == op_id
    assert _status(client, "runner") == "busy"
    beat = heartbeat_interval(settings.lease_seconds)
    clock.advance(2 * beat + 0.5)
    assert _status(client, "runner") == "lost"
    _heartbeat(client, "runner", op_id)
    assert _status(client, "runner") == "busy"
    clock.advance(settings.lease_seconds + 0.5)
    assert _status(client, "runner") == "offline"


def test_a_pending_operation_says_why_no_worker_takes_it(client, backend, clock, settings):
    data = upload_artifact(client, b"timestamp,open,high,low,close,volume\n", "data")
    op_id = backend.operations.create(
        training_inputs(data), device="cuda", references=[data]
    ).operation_id

    def waiting() -> str | None:
        shown = client.get(f"{API}/operations/{op_id}").json()["waiting"]
        listed = {v["operation_id"]: v for v in client.get(f"{API}/operations").json()}
        assert listed[op_id]["waiting"] == shown
        return shown

    assert waiting() == "waiting: no training worker is registered and reachable"
    register(client, "cpu-only")
    assert waiting() == "waiting: no registered training worker offers cuda"
    register(client, "gpu", device="cuda")
    assert waiting() is None
    clock.advance(settings.lease_seconds + 1)  # both fall silent
    assert waiting() == "waiting: no training worker is registered and reachable"
