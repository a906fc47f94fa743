"""The operation store: rows read and changed only by compare-and-set updates.

Each change is a conditional UPDATE (``WHERE state = … AND attempt = …``) checked against
:data:`ktrdr_api.lifecycle.TRANSITIONS` and committed before the caller answers, so two
racing messages cannot both win, on SQLite or PostgreSQL, in one process or several.

Every change is logged and reported to ``on_transition`` once its transaction has
committed, never before: a refused or rolled-back change leaves no trace.

:class:`ktrdr_api.operations.Operations` builds every event of the lifecycle on top of this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ktrdr_api import catalog
from ktrdr_api.ids import new_id, utcnow
from ktrdr_api.lifecycle import (
    Event,
    OperationConflict,
    OperationNotFound,
    P,
    R,
    Transition,
    X,
    check_transition,
)
from ktrdr_api.models import Operation, Worker
from ktrdr_api.views import BY_ID, to_view
from ktrdr_core.protocol import (
    SERVED_BY,
    AttemptOutcome,
    ChildRole,
    OperationKind,
    OperationState,
    OperationView,
    Progress,
)

_NOTES = "ktrdr_transitions"  # key in Session.info: transitions waiting for the commit


def note(session: Session, transition: Transition) -> None:
    """Remember ``transition`` until its transaction commits (then it is logged and
    reported) or rolls back (then it is dropped)."""
    session.info.setdefault(_NOTES, []).append(transition)


def noted(session: Session) -> list[Transition]:
    """The transitions ``session``'s transaction has noted so far (not yet committed)."""
    return list(session.info.get(_NOTES, ()))


def load(session: Session, operation_id: str) -> Operation:
    """The operation's row; OperationNotFound naming the id when there is none."""
    op = session.get(Operation, operation_id)
    if op is None:
        raise OperationNotFound(f"no operation {operation_id!r}")
    return op


class OperationStore:
    """Reads, and the conditional updates every lifecycle event is made of.

    ``clock`` returns the current aware UTC time (tests pass a fake one). ``on_pending`` is
    called with an operation kind after a commit made an operation of that kind claimable;
    ``on_transition`` with every committed :class:`Transition`.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        lease_seconds: float,
        max_attempts: int,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.sessions = sessions
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.clock = clock
        self.on_pending: Callable[[str], None] = lambda _kind: None
        self.on_transition: Callable[[Transition], None] = lambda _transition: None
        self._engine = sessions.kw["bind"]  # the engine the sessions are bound to
        event.listen(sessions, "after_commit", self._committed)
        event.listen(sessions, "after_rollback", _forget)

    def _committed(self, session: Session) -> None:
        """Log and report the transitions a transaction made, now that they are durable;
        an operation made pending (created, requeued) is announced to the workers that can
        claim it."""
        for transition in session.info.pop(_NOTES, ()):
            transition.log()
            self.on_transition(transition)
            if transition.target == OperationState.PENDING:
                self.on_pending(transition.kind)

    # --- creation and reads -----------------------------------------------------------

    def create(self, inputs: Any, **options: Any) -> OperationView:
        """Persist a new operation, in a transaction of its own; ``options`` as for
        :meth:`add`. A second child of one role raises OperationConflict."""
        try:
            with self.sessions.begin() as session:
                view = to_view(self.add(session, inputs, **options))
        except IntegrityError:
            parent_id = options.get("parent_id")
            if parent_id is None:
                raise
            raise OperationConflict(f"{parent_id} already has its {options.get('role')}") from None
        return view

    def add(
        self,
        session: Session,
        inputs: Any,
        *,
        device: str | None = None,
        references: Iterable[str] = (),
        checkpoint_sha256: str | None = None,
        retry_of: str | None = None,
        strategy_name: str | None = None,
        parent_id: str | None = None,
        role: ChildRole | str | None = None,
    ) -> Operation:
        """Add a new operation to the caller's transaction: it exists (and workers hear of
        it) only if that transaction commits. Returns the flushed row.

        ``inputs`` is one of the protocol's operation inputs; ``references`` are artifact
        sha256s it reads. An operation a worker runs starts pending; a walk-forward, which
        the backend runs itself, starts running. ``parent_id``/``role`` make it a
        walk-forward's child (one per role: a second one fails at commit with
        IntegrityError). ``strategy_name`` defaults to the inputs'.
        """
        now = self.clock()
        orchestrated = SERVED_BY[OperationKind(inputs.kind)] is None
        op = Operation(
            id=new_id("op"),
            kind=inputs.kind,
            state=(R if orchestrated else P).value,
            created_at=now,
            updated_at=now,
            started_at=now if orchestrated else None,
            pending_since=None if orchestrated else now,
            device=None if device in (None, "auto") else device,
            inputs=inputs.model_dump(mode="json"),
            progress=Progress().model_dump(mode="json"),
            attempt=0,
            attempts=[],
            cancel_requested=False,
            checkpoint_sha256=checkpoint_sha256,
            retry_of=retry_of,
            strategy_name=strategy_name or getattr(inputs, "strategy_name", None),
            parent_id=parent_id,
            role=None if role is None else str(role),  # stored as text: ChildRole.parse reads it
        )
        session.add(op)
        # The id is ours, not the database's: op and its references go in one flush.
        catalog.add_references(session, references, f"operation:{op.id}", new_referrer=True)
        session.flush()
        reason = f"retry of {retry_of}" if retry_of else None
        if parent_id:
            reason = f"{role} of {parent_id}"
        state = OperationState(op.state)
        note(
            session,
            Transition(op.id, op.kind, "create", None, state, 0, None, reason, op.parent_id),
        )
        return op

    def get(self, operation_id: str) -> OperationView:
        # The hottest read (status polling): a plain connection and a Core select skip the
        # ORM session's bookkeeping, a tenth of the request.
        with self._engine.connect() as connection:
            row = connection.execute(BY_ID, {"id": operation_id}).first()
        if row is None:
            raise OperationNotFound(f"no operation {operation_id!r}")
        return to_view(row)

    def list_operations(
        self,
        *,
        kind: OperationKind | None = None,
        state: OperationState | None = None,
        limit: int = 100,
        strategy_name: str | None = None,
        top_level: bool = False,
    ) -> list[OperationView]:
        """Newest first, at most ``limit``; ``top_level``: without child operations (the
        folds of walk-forwards, the trials of studies)."""
        query = select(Operation).order_by(Operation.created_at.desc(), Operation.id).limit(limit)
        if top_level:
            query = query.where(Operation.parent_id.is_(None))
        if kind is not None:
            query = query.where(Operation.kind == kind.value)
        if strategy_name is not None:
            query = query.where(Operation.strategy_name == strategy_name)
        if state is not None:
            query = query.where(Operation.state == state.value)
        with self.sessions() as session:
            return [to_view(op) for op in session.scalars(query)]

    def children(self, parent_id: str) -> list[OperationView]:
        """A walk-forward's child operations, oldest first."""
        query = (
            select(Operation)
            .where(Operation.parent_id == parent_id)
            .order_by(Operation.created_at, Operation.id)
        )
        with self.sessions() as session:
            return [to_view(op) for op in session.scalars(query)]

    def children_of(self, parent_ids: list[str]) -> dict[str, list[OperationView]]:
        """The child operations of each of ``parent_ids`` (oldest first), in one query."""
        found: dict[str, list[OperationView]] = {parent: [] for parent in parent_ids}
        if not parent_ids:
            return found
        query = (
            select(Operation)
            .where(Operation.parent_id.in_(parent_ids))
            .order_by(Operation.created_at, Operation.id)
        )
        with self.sessions() as session:
            for op in session.scalars(query):
                found[op.parent_id].append(to_view(op))
        return found

    def running_ids(self, kind: OperationKind) -> list[str]:
        query = select(Operation.id).where(Operation.kind == kind.value, Operation.state == R)
        with self.sessions() as session:
            return list(session.scalars(query))

    # --- conditional updates ----------------------------------------------------------

    def _held(
        self, session: Session, operation_id: str, worker_id: str, attempt: int | None, event: Event
    ) -> Operation:
        """Load the operation, or raise OperationConflict when this attempt does not hold it."""
        op = load(session, operation_id)
        state = OperationState(op.state)
        if state.is_terminal:
            raise OperationConflict(
                f"{event.value} refused: operation {op.id} is already {state} "
                f"(attempt {op.attempt}); drop it"
            )
        if state == P:
            raise OperationConflict(
                f"{event.value} refused: operation {op.id} was requeued after attempt {attempt} "
                "lost its lease; drop it"
            )
        if op.attempt != attempt or op.worker_id != worker_id:
            raise OperationConflict(
                f"{event.value} refused: attempt {attempt} on worker {worker_id} no longer holds "
                f"operation {op.id}; attempt {op.attempt} on worker {op.worker_id} does"
            )
        return op

    def _apply(
        self,
        session: Session,
        op: Operation,
        event: Event,
        target: OperationState,
        values: dict[str, Any],
        *,
        reason: str | None = None,
    ) -> None:
        """Compare-and-set: move ``op`` to ``target`` only if nobody changed it meanwhile.

        The change is noted for the log; ``reason`` (why it failed, was requeued, …) goes
        with it.
        """
        state = OperationState(op.state)
        check_transition(state, event, target)
        result = session.execute(
            update(Operation)
            .where(
                Operation.id == op.id,
                Operation.state == state.value,
                Operation.attempt == op.attempt,
            )
            .values(state=target.value, **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise OperationConflict(
                f"operation {op.id} changed concurrently; {event.value} refused"
            )
        reason = reason or values.get("error")
        note(
            session,
            Transition(
                op.id, op.kind, event, state, target, op.attempt, op.worker_id, reason, op.parent_id
            ),
        )
        # Keep the in-memory row in step for the caller's view (no reload round trip).
        session.expunge(op)
        op.state = target.value
        for key, value in values.items():
            setattr(op, key, value)

    def _finish(
        self,
        session: Session,
        op: Operation,
        *,
        event: Event,
        target: OperationState,
        now: datetime,
        outcome: AttemptOutcome,
        reason: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        """End the holding attempt with ``outcome`` at ``now`` and the operation in
        ``target``."""
        values = values or {}
        self._release_worker(session, op)
        ended = {
            "attempts": _end_attempt(op, now, outcome, reason),
            "finished_at": now,
            "updated_at": now,
            "lease_expires_at": None,
        }
        self._apply(
            session, op, event, target, ended | values, reason=values.get("error") or reason
        )

    def _requeue(
        self,
        session: Session,
        op: Operation,
        *,
        event: Event,
        now: datetime,
        outcome: AttemptOutcome,
        reason: str,
    ) -> None:
        """End the holding attempt with ``outcome`` at ``now`` and put the operation back in
        the queue."""
        self._release_worker(session, op)
        values = {
            "attempts": _end_attempt(op, now, outcome, reason),
            "worker_id": None,
            "lease_expires_at": None,
            "pending_since": now,
            "updated_at": now,
        }
        self._apply(session, op, event, P, values, reason=reason)

    def _lose_lease(self, session: Session, op: Operation, *, now: datetime, reason: str) -> None:
        """The holder is gone: requeue, or fail after ``max_attempts`` lost leases, or
        cancel when a cancel was asked for."""
        lost = 1 + sum(a.get("outcome") == AttemptOutcome.LEASE_EXPIRED for a in op.attempts)
        expired: dict[str, Any] = {
            "event": Event.EXPIRE_LEASE,
            "now": now,
            "outcome": AttemptOutcome.LEASE_EXPIRED,
        }
        if op.cancel_requested:
            values = {"error": f"cancelled on request; the worker never confirmed ({reason})"}
            self._finish(session, op, target=X, reason=reason, values=values, **expired)
        elif lost >= self.max_attempts:
            error = (
                f"gave up after {lost} lost lease(s) (KTRDR_MAX_ATTEMPTS={self.max_attempts}); "
                f"last: {reason}"
            )
            failed = OperationState.FAILED
            values = {"error": error}
            self._finish(session, op, target=failed, reason=reason, values=values, **expired)
        else:
            self._requeue(session, op, reason=reason, **expired)

    @staticmethod
    def _release_worker(session: Session, op: Operation) -> None:
        if op.worker_id:
            session.execute(
                update(Worker)
                .where(Worker.id == op.worker_id, Worker.current_operation_id == op.id)
                .values(current_operation_id=None)
            )


def _end_attempt(
    op: Operation, now: datetime, outcome: AttemptOutcome, reason: str | None
) -> list[dict[str, Any]]:
    attempts = [dict(a) for a in op.attempts]
    if attempts and attempts[-1]["attempt"] == op.attempt:
        attempts[-1] |= {"ended_at": now.isoformat(), "outcome": outcome.value, "reason": reason}
    return attempts


def _forget(session: Session) -> None:
    """A rolled-back transaction changed nothing: drop what it noted."""
    session.info.pop(_NOTES, None)
