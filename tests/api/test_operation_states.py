"""The operation state machine: every event in every state, allowed or refused without harm."""

from __future__ import annotations

import pytest

from ktrdr_api.lifecycle import (
    TRANSITIONS,
    Event,
    OperationConflict,
    check_transition,
)
from ktrdr_api.operations import Operations
from ktrdr_core.protocol import (
    Completion,
    Failure,
    Heartbeat,
    OperationState,
    Progress,
    Release,
    TrainingResult,
)
from tests.support.api import register, training_inputs, upload_artifact
from tests.support.bundles import bundle_bytes

P, R, C, F, X = (
    OperationState.PENDING,
    OperationState.RUNNING,
    OperationState.COMPLETED,
    OperationState.FAILED,
    OperationState.CANCELLED,
)

# Written out by hand: a change to TRANSITIONS must be a change to this table too.
EXPECTED = {
    (P, Event.CLAIM): {R},
    (P, Event.REQUEST_CANCEL): {X},
    (R, Event.HEARTBEAT): {R},
    (R, Event.COMPLETE): {C, X},
    (R, Event.FAIL): {F},
    (R, Event.REQUEST_CANCEL): {R},
    (R, Event.ACK_CANCEL): {X},
    (R, Event.EXPIRE_LEASE): {P, F, X},
    (R, Event.RELEASE): {P, X},
}


def test_transition_table_is_exactly_the_designed_one():
    assert {key: set(value) for key, value in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize("state", list(OperationState))
@pytest.mark.parametrize("event", list(Event))
def test_check_transition_allows_only_listed_pairs(state, event):
    for target in OperationState:
        if target in EXPECTED.get((state, event), set()):
            check_transition(state, event, target)
        else:
            with pytest.raises(OperationConflict):
                check_transition(state, event, target)


def test_terminal_states_have_no_way_out():
    for (state, _event), _targets in TRANSITIONS.items():
        assert not state.is_terminal


# --- the same table, driven through the real service on a real database -----------------

WORKER, OTHER = "w-main", "w-other"


@pytest.fixture
def ops(backend, client) -> Operations:
    register(client, WORKER)
    register(client, OTHER)
    return backend.operations


@pytest.fixture
def data_sha(client) -> str:
    return upload_artifact(client, b"timestamp,open,high,low,close,volume\n", "data")


@pytest.fixture
def bundle_sha(client) -> str:
    return upload_artifact(client, bundle_bytes(), "bundle")


def _worker(ops, worker_id):
    return ops.begin_claim(worker_id, 0)


def _claim(ops, worker_id):
    return ops.try_claim(_worker(ops, worker_id))


def make(ops: Operations, state: str, clock, bundle_sha: str, data_sha: str):
    """An operation brought into ``state`` by legal events; returns (id, attempt)."""
    op = ops.create(training_inputs(data_sha), references=[data_sha])
    if state == "pending":
        return op.operation_id, 0
    offer = _claim(ops, WORKER)
    assert offer is not None and offer.operation_id == op.operation_id
    attempt = offer.attempt
    if state == "running":
        pass
    elif state == "running_cancel_requested":
        ops.request_cancel(op.operation_id)
    elif state == "completed":
        result = TrainingResult(bundle_sha256=bundle_sha)
        ops.complete(WORKER, op.operation_id, Completion(attempt=attempt, result=result))
    elif state == "failed":
        ops.fail(WORKER, op.operation_id, Failure(attempt=attempt, error="boom"))
    elif state == "cancelled":
        ops.request_cancel(op.operation_id)
        ops.acknowledge_cancel(WORKER, op.operation_id, attempt)
    else:
        raise AssertionError(state)
    return op.operation_id, attempt


def apply(ops: Operations, event: str, op_id: str, attempt: int, clock, bundle_sha: str):
    """Send ``event`` as the holder (attempt ``attempt`` on WORKER) or as a user."""
    attempt = max(attempt, 1)
    if event == "claim":
        return _claim(ops, OTHER)
    if event == "heartbeat":
        beat = Heartbeat(operation_id=op_id, attempt=attempt, progress=Progress(percent=50))
        return ops.heartbeat(WORKER, beat)
    if event == "complete":
        result = TrainingResult(bundle_sha256=bundle_sha)
        return ops.complete(WORKER, op_id, Completion(attempt=attempt, result=result))
    if event == "fail":
        return ops.fail(WORKER, op_id, Failure(attempt=attempt, error="late failure"))
    if event == "request_cancel":
        return ops.request_cancel(op_id)
    if event == "ack_cancel":
        return ops.acknowledge_cancel(WORKER, op_id, attempt)
    if event == "release":
        return ops.release(WORKER, op_id, Release(attempt=attempt))
    if event == "expire_lease":
        clock.advance(ops.lease.total_seconds() + 1)
        return ops.expire_leases()
    raise AssertionError(event)


# state -> event -> resulting state, or "409" when refused (and nothing may change).
OUTCOMES = {
    "pending": {
        "claim": "running",
        "heartbeat": "409",
        "complete": "409",
        "fail": "409",
        "request_cancel": "cancelled",
        "ack_cancel": "409",
        "release": "409",
        "expire_lease": "pending",
    },
    "running": {
        "claim": "running",  # another worker gets nothing
        "heartbeat": "running",
        "complete": "completed",
        "fail": "failed",
        "request_cancel": "running",
        "ack_cancel": "409",  # nobody asked it to cancel
        "release": "pending",
        "expire_lease": "pending",
    },
    "running_cancel_requested": {
        "claim": "running",
        "heartbeat": "running",
        "complete": "cancelled",  # the cancel came first: the late result is discarded
        "fail": "failed",
        "request_cancel": "running",
        "ack_cancel": "cancelled",
        "release": "cancelled",
        "expire_lease": "cancelled",
    },
    **{
        terminal: {
            "claim": terminal,
            "heartbeat": "409",
            "complete": "409",
            "fail": "409",
            "request_cancel": "409",
            "ack_cancel": "409",
            "release": "409",
            "expire_lease": terminal,
        }
        for terminal in ("completed", "failed", "cancelled")
    },
}

CASES = [(state, event, out) for state, row in OUTCOMES.items() for event, out in row.items()]


@pytest.mark.parametrize(("state", "event", "expected"), CASES)
def test_every_event_in_every_state(ops, clock, bundle_sha, data_sha, state, event, expected):
    op_id, attempt = make(ops, state, clock, bundle_sha, data_sha)
    before = ops.get(op_id)
    if expected == "409":
        with pytest.raises(OperationConflict):
            apply(ops, event, op_id, attempt, clock, bundle_sha)
        after = ops.get(op_id)
        # Refused means untouched: same state, attempt, progress, result and history.
        assert after.model_dump(exclude={"updated_at"}) == before.model_dump(exclude={"updated_at"})
        return
    apply(ops, event, op_id, attempt, clock, bundle_sha)
    after = ops.get(op_id)
    assert after.state == expected
    if event == "request_cancel" and state == "running":
        assert after.cancel_requested
    if state.startswith("running") and event == "claim":
        assert after.worker_id == WORKER  # the other worker did not take it over


def test_heartbeat_of_a_cancel_requested_operation_says_cancel(ops, clock, bundle_sha, data_sha):
    op_id, attempt = make(ops, "running", clock, bundle_sha, data_sha)
    beat = Heartbeat(operation_id=op_id, attempt=attempt)
    assert ops.heartbeat(WORKER, beat).cancel is False
    ops.request_cancel(op_id)
    assert ops.heartbeat(WORKER, beat).cancel is True
    assert ops.acknowledge_cancel(WORKER, op_id, attempt).state == X


def test_second_completion_is_refused_and_result_kept(ops, clock, bundle_sha, data_sha, client):
    op_id, attempt = make(ops, "completed", clock, bundle_sha, data_sha)
    other_bundle = upload_artifact(client, bundle_bytes(weights=b"other weights"), "bundle")
    with pytest.raises(OperationConflict, match="already completed"):
        ops.complete(
            WORKER,
            op_id,
            Completion(attempt=attempt, result=TrainingResult(bundle_sha256=other_bundle)),
        )
    assert ops.get(op_id).result["bundle_sha256"] == bundle_sha


def test_retry_of_failed_operation_creates_a_new_pending_one(ops, clock, bundle_sha, data_sha):
    op_id, _ = make(ops, "failed", clock, bundle_sha, data_sha)
    retried = ops.retry(op_id)
    assert retried.operation_id != op_id
    assert retried.state == P
    assert retried.retry_of == op_id
    assert retried.inputs == ops.get(op_id).inputs
    assert ops.get(op_id).state == F  # history is not rewritten


@pytest.mark.parametrize("state", ["pending", "running", "completed"])
def test_retry_refused_unless_failed_or_cancelled(ops, clock, bundle_sha, data_sha, state):
    op_id, _ = make(ops, state, clock, bundle_sha, data_sha)
    with pytest.raises(OperationConflict, match="only a failed or cancelled one"):
        ops.retry(op_id)


def test_progress_and_attempt_history_are_recorded(ops, clock, bundle_sha, data_sha):
    op_id, attempt = make(ops, "running", clock, bundle_sha, data_sha)
    progress = Progress(
        percent=42.5, step=17, total_steps=40, message="epoch 17", metrics={"loss": 0.3}
    )
    ops.heartbeat(WORKER, Heartbeat(operation_id=op_id, attempt=attempt, progress=progress))
    view = ops.get(op_id)
    assert view.progress == progress
    assert view.reproducibility.worker_id == WORKER
    assert [a.attempt for a in view.reproducibility.attempts] == [1]
    assert view.reproducibility.seed == 7
    assert view.reproducibility.data_checksums == {"GOOG/1d@1": data_sha}
