"""Operations: every event of an operation's life, from its creation to its end.

The table of what may happen is :mod:`ktrdr_api.lifecycle`; the compare-and-set updates
are :mod:`ktrdr_api.store`; claims, heartbeats and lost leases are :mod:`ktrdr_api.leases`;
what completing each kind adds (a catalogued model, a dataset version) is a completion hook
the app registers (:mod:`ktrdr_api.completion`). This module adds the outcomes a worker
reports, the requests of users, and the ends of operations the backend runs itself.

A message naming an attempt that no longer holds the operation (it completed, failed, was
cancelled, or its lease passed to another attempt) raises ``OperationConflict`` (HTTP 409)
and changes nothing.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ktrdr_api import catalog
from ktrdr_api.completion import CompletionHook
from ktrdr_api.leases import Leases
from ktrdr_api.lifecycle import (
    C,
    Event,
    InvalidOutcome,
    OperationConflict,
    P,
    R,
    X,
)
from ktrdr_api.lifecycle import F as F
from ktrdr_api.models import Operation
from ktrdr_api.store import load
from ktrdr_api.views import stored_inputs, to_view
from ktrdr_core.protocol import (
    AttemptOutcome,
    Completion,
    Failure,
    OperationKind,
    OperationResultView,
    OperationState,
    OperationView,
    Progress,
    Release,
    WalkforwardResult,
)

_STORED: TypeAdapter[Any] = TypeAdapter(OperationResultView)


class Operations(Leases):
    """Creates operations and applies every event to them.

    ``completion_hooks`` maps an operation kind to what completing it adds, inside the
    completion's transaction (see :data:`ktrdr_api.completion.CompletionHook`); a kind
    without a hook stores the worker's result as sent.
    """

    def __init__(self, sessions: sessionmaker[Session], **options: Any):
        super().__init__(sessions, **options)
        self.completion_hooks: dict[OperationKind, CompletionHook] = {}

    # --- messages from the holding worker ---------------------------------------------

    def complete(self, worker_id: str, operation_id: str, completion: Completion) -> OperationView:
        """Record the result, with what the kind's completion hook adds to it."""
        now = self.clock()
        result = completion.result
        with self.sessions.begin() as session:
            op = self._held(session, operation_id, worker_id, completion.attempt, Event.COMPLETE)
            if op.cancel_requested:
                # The user's cancel came first (e.g. while the result was uploading): it wins,
                # so a cancelled operation never turns up completed with a new model.
                discarded = "cancelled on request; the result that arrived afterwards was discarded"
                self._finish(
                    session,
                    op,
                    event=Event.COMPLETE,
                    target=X,
                    now=now,
                    outcome=AttemptOutcome.CANCELLED,
                    reason=discarded,
                )
                return to_view(op)
            if result.kind != op.kind:
                raise InvalidOutcome(
                    f"operation {op.id} is a {op.kind} operation; "
                    f"the result is a {result.kind} result"
                )
            shas = [
                value
                for key, value in result.model_dump().items()
                if key.endswith("sha256") and value is not None
            ]
            missing = [sha for sha in shas if catalog.artifact(session, sha) is None]
            if missing:
                raise InvalidOutcome(
                    f"result names artifacts that were never uploaded: {', '.join(missing)}; "
                    "PUT them to /artifacts before completing"
                )
            catalog.add_references(session, shas, f"operation:{op.id}")
            progress = dict(op.progress or {}) | {"percent": 100.0}
            stored = result.model_dump(mode="json")
            hook = self.completion_hooks.get(OperationKind(op.kind))
            if hook is not None:
                stored |= hook(session, op, result, now)
            # Stored as the operation's view reads it back: a hook's field is checked here.
            stored = _STORED.validate_python(stored).model_dump(mode="json")
            self._finish(
                session,
                op,
                event=Event.COMPLETE,
                target=C,
                now=now,
                outcome=AttemptOutcome.COMPLETED,
                values={"result": stored, "progress": progress},
            )
            return to_view(op)

    def fail(self, worker_id: str, operation_id: str, failure: Failure) -> OperationView:
        now = self.clock()
        with self.sessions.begin() as session:
            op = self._held(session, operation_id, worker_id, failure.attempt, Event.FAIL)
            self._finish(
                session,
                op,
                event=Event.FAIL,
                target=OperationState.FAILED,
                now=now,
                outcome=AttemptOutcome.FAILED,
                reason=failure.error,
                values={"error": failure.error},
            )
            return to_view(op)

    def acknowledge_cancel(self, worker_id: str, operation_id: str, attempt: int) -> OperationView:
        now = self.clock()
        with self.sessions.begin() as session:
            op = self._held(session, operation_id, worker_id, attempt, Event.ACK_CANCEL)
            if not op.cancel_requested:
                raise OperationConflict(
                    f"operation {op.id} was not asked to cancel; report a failure or release it"
                )
            self._finish(
                session,
                op,
                event=Event.ACK_CANCEL,
                target=X,
                now=now,
                outcome=AttemptOutcome.CANCELLED,
                reason="cancelled on request",
            )
            return to_view(op)

    def release(self, worker_id: str, operation_id: str, release: Release) -> OperationView:
        """The holder gives the operation back; it is requeued (or cancelled if asked)."""
        now = self.clock()
        with self.sessions.begin() as session:
            op = self._held(session, operation_id, worker_id, release.attempt, Event.RELEASE)
            released: dict[str, Any] = {
                "event": Event.RELEASE,
                "now": now,
                "outcome": AttemptOutcome.RELEASED,
                "reason": release.reason,
            }
            if op.cancel_requested:
                self._finish(session, op, target=X, **released)
            else:
                self._requeue(session, op, **released)
            return to_view(op)

    # --- requests from users ----------------------------------------------------------

    def request_cancel(self, operation_id: str) -> OperationView:
        """Cancel a pending operation at once; flag a running one (its heartbeat says so)."""
        now = self.clock()
        with self.sessions.begin() as session:
            op = load(session, operation_id)
            state = OperationState(op.state)
            if state == P:
                self._apply(
                    session,
                    op,
                    Event.REQUEST_CANCEL,
                    X,
                    {
                        "finished_at": now,
                        "updated_at": now,
                        "pending_since": None,
                        "cancel_requested": True,
                        "error": "cancelled before it started",
                    },
                )
            elif state == R:
                self._apply(
                    session,
                    op,
                    Event.REQUEST_CANCEL,
                    R,
                    {"cancel_requested": True, "updated_at": now},
                )
            else:
                raise OperationConflict(f"operation {op.id} is already {state}: nothing to cancel")
            return to_view(op)

    def retry(self, operation_id: str) -> OperationView:
        """A new operation with the same inputs (and the last checkpoint).

        A walk-forward's retry reuses every child that completed (its folds' results are
        the same for the same seed and data) and runs only what failed or never ran.
        """
        with self.sessions() as session:
            op = load(session, operation_id)
            if op.state not in (F.value, X.value):
                raise OperationConflict(
                    f"operation {op.id} is {op.state}: only a failed or cancelled one is retried"
                )
            inputs = stored_inputs(op)
            references = catalog.references_of(session, f"operation:{op.id}")
            device, checkpoint = op.device, op.checkpoint_sha256
            strategy_name = op.strategy_name
            # A study's retry likewise keeps its completed trials and runs only the rest.
            if op.kind in (OperationKind.WALKFORWARD, OperationKind.TUNE):
                done = session.execute(
                    select(Operation.role, Operation.id).where(
                        Operation.parent_id == op.id, Operation.state == C.value
                    )
                )
                inputs = inputs.model_copy(update={"reuse": inputs.reuse | dict(done.all())})
        return self.create(
            inputs,
            device=device,
            references=references,
            checkpoint_sha256=checkpoint,
            retry_of=operation_id,
            strategy_name=strategy_name,
        )

    # --- operations the backend runs itself (walk-forwards) ----------------------------

    def report_progress(self, operation_id: str, progress: Progress) -> None:
        """Progress of an operation the backend runs itself (no lease to renew)."""
        with self.sessions.begin() as session:
            op = load(session, operation_id)
            if op.state != R.value or op.worker_id is not None:
                return
            values = {"progress": progress.model_dump(mode="json"), "updated_at": self.clock()}
            self._apply(session, op, Event.HEARTBEAT, R, values)

    def conclude(
        self,
        operation_id: str,
        target: OperationState,
        *,
        result: WalkforwardResult | None = None,
        error: str | None = None,
    ) -> OperationView:
        """End an operation the backend runs itself: completed (with ``result``), failed
        (with ``error``) or cancelled."""
        event_for = {C: Event.COMPLETE, F: Event.FAIL, X: Event.ACK_CANCEL}
        now = self.clock()
        with self.sessions.begin() as session:
            op = load(session, operation_id)
            if op.worker_id is not None:
                raise OperationConflict(f"operation {op.id} is run by worker {op.worker_id}")
            values: dict[str, Any] = {"finished_at": now, "updated_at": now}
            if target == C:
                values["result"] = None if result is None else result.model_dump(mode="json")
                values["progress"] = dict(op.progress or {}) | {"percent": 100.0}
            if error is not None:
                values["error"] = error
            self._apply(session, op, event_for[target], target, values)
            return to_view(op)
