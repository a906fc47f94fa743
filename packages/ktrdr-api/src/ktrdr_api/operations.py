"""The operation state machine: every state change of every operation happens here.

States: ``pending → running → completed | failed | cancelled``, plus ``running → pending``
when a lease is lost or given back. ``TRANSITIONS`` is the whole table; ``check_transition``
is the only gate. Each change is a conditional UPDATE (``WHERE state = … AND attempt = …``)
committed before the caller answers, so two racing messages cannot both win, on SQLite or
PostgreSQL, in one process or several.

Attempts: each claim starts attempt ``n + 1`` and hands that number to the worker; every
later message from the worker names it. A message naming an attempt that no longer holds
the operation (it completed, failed, was cancelled, or its lease passed to another attempt)
raises ``OperationConflict`` (HTTP 409) and changes nothing.

Lost leases (the worker stopped heartbeating, or asked for new work while holding the
operation) requeue it, until ``max_attempts`` leases have been lost; then it fails with
the reason. A voluntary release (SIGTERM) requeues without counting against that limit.

Every change is logged (logger ``ktrdr_api.operations``, with ``operation_id``,
``worker_id``, ``event``, ``state``, ``attempt``, ``kind``) and reported to
``Operations.on_transition`` once its transaction has committed, never before: a refused or
rolled-back change leaves no trace.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Row, bindparam, event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ktrdr_api import catalog, dispatch
from ktrdr_api.models import Operation, Worker
from ktrdr_core.bundles import BundleManifest
from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import (
    AttemptOutcome,
    AttemptRecord,
    ClaimResponse,
    Completion,
    Device,
    Failure,
    Heartbeat,
    HeartbeatResponse,
    OperationInputs,
    OperationKind,
    OperationState,
    OperationView,
    Progress,
    Release,
    Reproducibility,
)

P = OperationState.PENDING
R = OperationState.RUNNING
C = OperationState.COMPLETED
F = OperationState.FAILED
X = OperationState.CANCELLED

log = logging.getLogger("ktrdr_api.operations")


class Event(StrEnum):
    """Everything that can happen to an operation."""

    CLAIM = "claim"  # a worker takes it
    HEARTBEAT = "heartbeat"  # the holder reports progress and renews the lease
    COMPLETE = "complete"
    FAIL = "fail"
    REQUEST_CANCEL = "request_cancel"  # a user asks; a running one gets a flag
    ACK_CANCEL = "ack_cancel"  # the holder confirms it stopped
    EXPIRE_LEASE = "expire_lease"  # no heartbeat in time, or the holder moved on
    RELEASE = "release"  # the holder gives it back (shutting down)


TRANSITIONS: Mapping[tuple[OperationState, Event], frozenset[OperationState]] = {
    (P, Event.CLAIM): frozenset({R}),
    (P, Event.REQUEST_CANCEL): frozenset({X}),
    (R, Event.HEARTBEAT): frozenset({R}),
    # Cancelled when a cancel was asked for while the result was on its way.
    (R, Event.COMPLETE): frozenset({C, X}),
    (R, Event.FAIL): frozenset({F}),
    (R, Event.REQUEST_CANCEL): frozenset({R}),
    (R, Event.ACK_CANCEL): frozenset({X}),
    # Requeued; failed after too many lost leases; cancelled when a cancel was pending.
    (R, Event.EXPIRE_LEASE): frozenset({P, F, X}),
    (R, Event.RELEASE): frozenset({P, X}),
}
"""(state, event) → the states it may lead to. A pair not listed is forbidden."""


class OperationError(KtrdrError):
    pass


class OperationNotFound(OperationError):
    """No such operation (HTTP 404)."""


class WorkerNotFound(OperationError):
    """The worker never registered, or its record was lost (HTTP 404: register again)."""


class OperationConflict(OperationError):
    """The message does not fit the operation's current state (HTTP 409); nothing changed."""


class InvalidOutcome(OperationError):
    """A completion is malformed: wrong kind, or names artifacts never uploaded (HTTP 422)."""


def check_transition(state: OperationState, event: Event, target: OperationState) -> None:
    """Raise OperationConflict unless ``event`` may take an operation from ``state`` to
    ``target``."""
    allowed = TRANSITIONS.get((state, event), frozenset())
    if target not in allowed:
        if not allowed:
            raise OperationConflict(f"cannot {event.value.replace('_', ' ')}: it is {state}")
        raise OperationConflict(
            f"{event.value} leads from {state} to {sorted(allowed)}, not {target}"
        )


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A short random id such as ``op_3f9c0a1b2d4e`` (48 random bits)."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Transition:
    """One committed change of one operation (``source`` is None for a creation)."""

    operation_id: str
    kind: str
    event: str
    source: OperationState | None
    target: OperationState
    attempt: int
    worker_id: str | None
    reason: str | None = None

    def log(self) -> None:
        level = _LOG_LEVELS.get(self.event, logging.INFO)
        if not log.isEnabledFor(level):
            return
        change = f"{self.source} -> {self.target}" if self.source else str(self.target)
        by = f" (worker {self.worker_id}, attempt {self.attempt})" if self.worker_id else ""
        why = f": {self.reason}" if self.reason else ""
        log.log(
            level,
            f"operation {self.operation_id} {self.event}: {change}{by}{why}",
            extra={
                "operation_id": self.operation_id,
                "worker_id": self.worker_id,
                "attempt": self.attempt,
                "kind": self.kind,
                "event": self.event,
                "state": self.target.value,
            },
        )


_LOG_LEVELS: dict[str, int] = {
    Event.EXPIRE_LEASE: logging.WARNING,  # a worker vanished or stalled
    Event.FAIL: logging.WARNING,
    Event.HEARTBEAT: logging.DEBUG,  # every few seconds per running operation
}

_NOTES = "ktrdr_transitions"  # key in Session.info: transitions waiting for the commit


def _note(session: Session, transition: Transition) -> None:
    session.info.setdefault(_NOTES, []).append(transition)


@dataclass(frozen=True)
class WorkerInfo:
    """What dispatch needs to know about a claiming worker."""

    worker_id: str
    kind: OperationKind
    device: Device
    versions: dict[str, str]


class Operations:
    """Creates operations and applies every event to them.

    ``read_bundle(sha256)`` returns a stored model bundle's validated manifest (raising
    BundleError when the file is no usable bundle). ``ingest_data(session, op, result, now)``
    catalogues the CSV a data fetch uploaded as the next dataset version and returns what the
    result records about it (raising DataInvalid when the file breaks a rule). ``clock``
    returns the current aware UTC time (tests pass a fake one). ``on_pending`` is called with
    an operation kind after a commit made an operation of that kind claimable (the dispatcher
    wakes its waiting workers).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        lease_seconds: float,
        max_attempts: int,
        gpu_grace_s: float = dispatch.GPU_GRACE_S,
        read_bundle: Callable[[str], BundleManifest],
        ingest_data: Callable[[Session, Operation, Any, datetime], dict[str, Any]] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.sessions = sessions
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.gpu_grace = timedelta(seconds=gpu_grace_s)
        self.clock = clock
        self.on_pending: Callable[[str], None] = lambda _kind: None
        self.on_transition: Callable[[Transition], None] = lambda _transition: None
        self._read_bundle = read_bundle
        self._ingest_data = ingest_data
        self._engine = sessions.kw["bind"]  # the engine the sessions are bound to
        event.listen(sessions, "after_commit", self._committed)
        event.listen(sessions, "after_rollback", _forget)

    def _committed(self, session: Session) -> None:
        """Log and report the transitions a transaction made, now that they are durable."""
        for transition in session.info.pop(_NOTES, ()):
            transition.log()
            self.on_transition(transition)

    # --- creation and reads -----------------------------------------------------------

    def create(
        self,
        inputs: Any,
        *,
        device: str | None = None,
        references: Iterable[str] = (),
        checkpoint_sha256: str | None = None,
        retry_of: str | None = None,
        strategy_name: str | None = None,
        parent_id: str | None = None,
        role: str | None = None,
    ) -> OperationView:
        """Persist a new operation; ``references`` are artifact sha256s it reads.

        ``inputs`` is one of the protocol's operation inputs. An operation a worker runs
        starts pending; a walk-forward, which the backend runs itself, starts running.
        ``parent_id``/``role`` make it a walk-forward's child (one per role: a second one
        raises OperationConflict). ``strategy_name`` defaults to the inputs'.
        """
        now = self.clock()
        orchestrated = dispatch.SERVED_BY[OperationKind(inputs.kind)] is None
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
            role=role,
        )
        try:
            with self.sessions.begin() as session:
                session.add(op)
                # The id is ours, not the database's: op and its references go in one flush.
                catalog.add_references(session, references, f"operation:{op.id}", new_referrer=True)
                session.flush()
                view = to_view(op)
                reason = f"retry of {retry_of}" if retry_of else None
                if parent_id:
                    reason = f"{role} of {parent_id}"
                state = OperationState(op.state)
                _note(session, Transition(op.id, op.kind, "create", None, state, 0, None, reason))
        except IntegrityError:
            if parent_id is None:
                raise
            raise OperationConflict(f"{parent_id} already has its {role}") from None
        if not orchestrated:
            self.on_pending(op.kind)
        return view

    def get(self, operation_id: str) -> OperationView:
        # The hottest read (status polling): a plain connection and a Core select skip the
        # ORM session's bookkeeping, a tenth of the request.
        with self._engine.connect() as connection:
            row = connection.execute(_BY_ID, {"id": operation_id}).first()
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
    ) -> list[OperationView]:
        """Newest first, at most ``limit``."""
        query = select(Operation).order_by(Operation.created_at.desc(), Operation.id).limit(limit)
        if kind is not None:
            query = query.where(Operation.kind == kind.value)
        if strategy_name is not None:
            query = query.where(Operation.strategy_name == strategy_name)
        if state is not None:
            query = query.where(Operation.state == state.value)
        with self.sessions() as session:
            return [to_view(op) for op in session.scalars(query)]

    # --- claims -----------------------------------------------------------------------

    def begin_claim(self, worker_id: str) -> WorkerInfo:
        """Mark the worker seen and take back any operation it still holds.

        A worker runs one operation at a time, so asking for work while holding one means
        that run was abandoned (the worker restarted under the same id): its lease is lost
        now rather than after the lease runs out.
        """
        now = self.clock()
        with self.sessions.begin() as session:
            worker = session.get(Worker, worker_id)
            if worker is None:
                raise WorkerNotFound(f"worker {worker_id!r} is not registered: register first")
            worker.last_seen_at = now
            held = session.scalars(
                select(Operation).where(
                    Operation.state == R.value, Operation.worker_id == worker_id
                )
            ).all()
            for op in held:
                reason = (
                    f"worker {worker_id} asked for new work while holding attempt {op.attempt}: "
                    "that run was abandoned"
                )
                self._lose_lease(session, op, now, reason)
            worker.current_operation_id = None
            info = WorkerInfo(
                worker_id=worker.id,
                kind=OperationKind(worker.kind),
                device=Device(worker.device),
                versions=dict(worker.versions or {}),
            )
        for op in held:
            self.on_pending(op.kind)
        return info

    def try_claim(self, worker: WorkerInfo, *, gpu_waiting: bool) -> ClaimResponse | None:
        """Give ``worker`` the operation dispatch picks for it, or None when none fits.

        ``gpu_waiting``: a GPU worker of the same kind is long-polling right now.
        """
        now = self.clock()
        with self.sessions() as session:
            candidates = dispatch.candidates(
                session, worker, now=now, gpu_waiting=gpu_waiting, grace=self.gpu_grace
            )
        for op_id in candidates:
            claimed = self._claim_one(op_id, worker, now)
            if claimed is not None:
                return claimed
        return None

    def _claim_one(self, op_id: str, worker: WorkerInfo, now: datetime) -> ClaimResponse | None:
        check_transition(P, Event.CLAIM, R)
        with self.sessions.begin() as session:
            op = session.get(Operation, op_id)
            if op is None or op.state != P.value:
                return None  # another worker was faster
            attempt = op.attempt + 1
            lease_expires_at = now + self.lease
            record = AttemptRecord(
                attempt=attempt,
                worker_id=worker.worker_id,
                worker_versions=worker.versions,
                claimed_at=now,
            )
            taken = session.execute(
                update(Operation)
                .where(Operation.id == op_id, Operation.state == P.value)
                .where(Operation.attempt == op.attempt)
                .values(
                    state=R.value,
                    attempt=attempt,
                    attempts=[*op.attempts, record.model_dump(mode="json")],
                    worker_id=worker.worker_id,
                    lease_expires_at=lease_expires_at,
                    started_at=op.started_at or now,
                    pending_since=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:
                return None
            session.execute(
                update(Worker)
                .where(Worker.id == worker.worker_id)
                .values(current_operation_id=op_id, last_seen_at=now)
            )
            _note(
                session,
                Transition(op_id, op.kind, Event.CLAIM, P, R, attempt, worker.worker_id),
            )
            inputs = op.inputs
            kind = op.kind
            checkpoint = op.checkpoint_sha256
        return ClaimResponse(
            operation_id=op_id,
            kind=OperationKind(kind),
            attempt=attempt,
            lease_expires_at=lease_expires_at,
            lease_seconds=self.lease.total_seconds(),
            inputs=inputs,
            checkpoint_sha256=checkpoint,
        )

    # --- messages from the holding worker ---------------------------------------------

    def heartbeat(self, worker_id: str, beat: Heartbeat) -> HeartbeatResponse:
        """Renew the worker's liveness and, with an operation, its lease and progress."""
        now = self.clock()
        with self.sessions.begin() as session:
            worker = session.get(Worker, worker_id)
            if worker is None:
                raise WorkerNotFound(f"worker {worker_id!r} is not registered: register first")
            worker.last_seen_at = now
            if beat.operation_id is None:
                return HeartbeatResponse(cancel=False)
            op = self._held(session, beat.operation_id, worker_id, beat.attempt, Event.HEARTBEAT)
            lease_expires_at = now + self.lease
            values: dict[str, Any] = {"lease_expires_at": lease_expires_at, "updated_at": now}
            if beat.progress is not None:
                values["progress"] = beat.progress.model_dump(mode="json")
            if beat.checkpoint_sha256 is not None:
                if catalog.artifact(session, beat.checkpoint_sha256) is None:
                    raise InvalidOutcome(
                        f"checkpoint {beat.checkpoint_sha256} was not uploaded: "
                        "PUT it to /artifacts first"
                    )
                catalog.add_references(session, [beat.checkpoint_sha256], f"operation:{op.id}")
                values["checkpoint_sha256"] = beat.checkpoint_sha256
            self._apply(session, op, Event.HEARTBEAT, R, values)
            return HeartbeatResponse(cancel=op.cancel_requested, lease_expires_at=lease_expires_at)

    def complete(self, worker_id: str, operation_id: str, completion: Completion) -> OperationView:
        """Record the result; a training result also catalogues its model bundle."""
        now = self.clock()
        result = completion.result
        with self.sessions.begin() as session:
            op = self._held(session, operation_id, worker_id, completion.attempt, Event.COMPLETE)
            if op.cancel_requested:
                # The user's cancel came first (e.g. while the result was uploading): it wins,
                # so a cancelled operation never turns up completed with a new model.
                self._finish(
                    session,
                    op,
                    Event.COMPLETE,
                    X,
                    now,
                    AttemptOutcome.CANCELLED,
                    "cancelled on request; the result that arrived afterwards was discarded",
                    {},
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
            if result.kind == "training":
                # Catalogued in the same transaction, so the result can name the model a
                # researcher backtests next.
                model = catalog.create_model(
                    session,
                    op,
                    result.bundle_sha256,  # type: ignore[union-attr]
                    read_bundle=self._read_bundle,
                    now=now,
                )
                stored["model_id"] = model.id
            elif result.kind == "data_fetch":
                # The new dataset version is catalogued with the completion, so the result
                # names it and a half-finished fetch never leaves a version behind.
                if self._ingest_data is None:
                    raise InvalidOutcome("this backend was built without a data ingester")
                stored["dataset"] = self._ingest_data(session, op, result, now)
            self._finish(
                session,
                op,
                Event.COMPLETE,
                C,
                now,
                AttemptOutcome.COMPLETED,
                None,
                {"result": stored, "progress": progress},
            )
            return to_view(op)

    def fail(self, worker_id: str, operation_id: str, failure: Failure) -> OperationView:
        now = self.clock()
        with self.sessions.begin() as session:
            op = self._held(session, operation_id, worker_id, failure.attempt, Event.FAIL)
            self._finish(
                session,
                op,
                Event.FAIL,
                F,
                now,
                AttemptOutcome.FAILED,
                failure.error,
                {"error": failure.error},
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
                Event.ACK_CANCEL,
                X,
                now,
                AttemptOutcome.CANCELLED,
                "cancelled on request",
                {},
            )
            return to_view(op)

    def release(self, worker_id: str, operation_id: str, release: Release) -> OperationView:
        """The holder gives the operation back; it is requeued (or cancelled if asked)."""
        now = self.clock()
        with self.sessions.begin() as session:
            op = self._held(session, operation_id, worker_id, release.attempt, Event.RELEASE)
            if op.cancel_requested:
                self._finish(
                    session,
                    op,
                    Event.RELEASE,
                    X,
                    now,
                    AttemptOutcome.RELEASED,
                    release.reason,
                    {},
                )
            else:
                self._requeue(
                    session, op, Event.RELEASE, now, AttemptOutcome.RELEASED, release.reason
                )
            view = to_view(op)
        if view.state == P:
            self.on_pending(view.kind)
        return view

    # --- requests from users ----------------------------------------------------------

    def request_cancel(self, operation_id: str) -> OperationView:
        """Cancel a pending operation at once; flag a running one (its heartbeat says so)."""
        now = self.clock()
        with self.sessions.begin() as session:
            op = _load(session, operation_id)
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
            op = _load(session, operation_id)
            if op.state not in (F.value, X.value):
                raise OperationConflict(
                    f"operation {op.id} is {op.state}: only a failed or cancelled one is retried"
                )
            inputs = _inputs(op)
            references = catalog.references_of(session, f"operation:{op.id}")
            device, checkpoint = op.device, op.checkpoint_sha256
            strategy_name = op.strategy_name
            if op.kind == OperationKind.WALKFORWARD:
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

    def children(self, parent_id: str) -> list[OperationView]:
        """A walk-forward's child operations, oldest first."""
        query = (
            select(Operation)
            .where(Operation.parent_id == parent_id)
            .order_by(Operation.created_at, Operation.id)
        )
        with self.sessions() as session:
            return [to_view(op) for op in session.scalars(query)]

    def running_ids(self, kind: OperationKind) -> list[str]:
        query = select(Operation.id).where(Operation.kind == kind.value, Operation.state == R)
        with self.sessions() as session:
            return list(session.scalars(query))

    def report_progress(self, operation_id: str, progress: Progress) -> None:
        """Progress of an operation the backend runs itself (no lease to renew)."""
        with self.sessions.begin() as session:
            op = _load(session, operation_id)
            if op.state != R.value or op.worker_id is not None:
                return
            values = {"progress": progress.model_dump(mode="json"), "updated_at": self.clock()}
            self._apply(session, op, Event.HEARTBEAT, R, values)

    def conclude(
        self,
        operation_id: str,
        target: OperationState,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> OperationView:
        """End an operation the backend runs itself: completed (with ``result``), failed
        (with ``error``) or cancelled."""
        event_for = {C: Event.COMPLETE, F: Event.FAIL, X: Event.ACK_CANCEL}
        now = self.clock()
        with self.sessions.begin() as session:
            op = _load(session, operation_id)
            if op.worker_id is not None:
                raise OperationConflict(f"operation {op.id} is run by worker {op.worker_id}")
            values: dict[str, Any] = {"finished_at": now, "updated_at": now}
            if target == C:
                values["result"] = result
                values["progress"] = dict(op.progress or {}) | {"percent": 100.0}
            if error is not None:
                values["error"] = error
            self._apply(session, op, event_for[target], target, values)
            return to_view(op)

    # --- leases -----------------------------------------------------------------------

    def expire_leases(self) -> list[OperationView]:
        """Apply EXPIRE_LEASE to every running operation whose lease has run out."""
        now = self.clock()
        changed: list[OperationView] = []
        with self.sessions() as session:
            expired = session.scalars(
                select(Operation.id).where(
                    Operation.state == R.value, Operation.lease_expires_at < now
                )
            ).all()
        for op_id in expired:
            with self.sessions.begin() as session:
                op = session.get(Operation, op_id)
                if op is None or op.state != R.value or op.lease_expires_at >= now:
                    continue  # a heartbeat or completion got there first
                expired_at = f"{op.lease_expires_at:%Y-%m-%dT%H:%M:%SZ}"
                reason = (
                    f"lease of attempt {op.attempt} expired at {expired_at}: "
                    f"no heartbeat from worker {op.worker_id}"
                )
                try:
                    self._lose_lease(session, op, now, reason)
                except OperationConflict:
                    continue
                changed.append(to_view(op))
        for view in changed:
            if view.state == P:
                self.on_pending(view.kind)
        return changed

    # --- internals --------------------------------------------------------------------

    def _held(
        self,
        session: Session,
        operation_id: str,
        worker_id: str,
        attempt: int | None,
        event: Event,
    ) -> Operation:
        """Load the operation, or raise OperationConflict when this attempt does not hold it."""
        op = _load(session, operation_id)
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
        _note(
            session,
            Transition(op.id, op.kind, event, state, target, op.attempt, op.worker_id, reason),
        )
        # Keep the in-memory row in step for the caller's view (no reload round trip).
        session.expunge(op)
        op.state = target.value
        for key, value in values.items():
            setattr(op, key, value)

    def _end_attempt(
        self, op: Operation, now: datetime, outcome: AttemptOutcome, reason: str | None
    ) -> list[dict[str, Any]]:
        attempts = [dict(a) for a in op.attempts]
        if attempts and attempts[-1]["attempt"] == op.attempt:
            attempts[-1] |= {
                "ended_at": now.isoformat(),
                "outcome": outcome.value,
                "reason": reason,
            }
        return attempts

    def _release_worker(self, session: Session, op: Operation) -> None:
        if op.worker_id:
            session.execute(
                update(Worker)
                .where(Worker.id == op.worker_id, Worker.current_operation_id == op.id)
                .values(current_operation_id=None)
            )

    def _finish(
        self,
        session: Session,
        op: Operation,
        event: Event,
        target: OperationState,
        now: datetime,
        outcome: AttemptOutcome,
        reason: str | None,
        values: dict[str, Any],
    ) -> None:
        self._release_worker(session, op)
        self._apply(
            session,
            op,
            event,
            target,
            {
                "attempts": self._end_attempt(op, now, outcome, reason),
                "finished_at": now,
                "updated_at": now,
                "lease_expires_at": None,
                **values,
            },
            reason=values.get("error") or reason,
        )

    def _requeue(
        self,
        session: Session,
        op: Operation,
        event: Event,
        now: datetime,
        outcome: AttemptOutcome,
        reason: str,
    ) -> None:
        self._release_worker(session, op)
        self._apply(
            session,
            op,
            event,
            P,
            {
                "attempts": self._end_attempt(op, now, outcome, reason),
                "worker_id": None,
                "lease_expires_at": None,
                "pending_since": now,
                "updated_at": now,
            },
            reason=reason,
        )

    def _lose_lease(self, session: Session, op: Operation, now: datetime, reason: str) -> None:
        lost = 1 + sum(a.get("outcome") == AttemptOutcome.LEASE_EXPIRED for a in op.attempts)
        if op.cancel_requested:
            self._finish(
                session,
                op,
                Event.EXPIRE_LEASE,
                X,
                now,
                AttemptOutcome.LEASE_EXPIRED,
                reason,
                {"error": f"cancelled on request; the worker never confirmed ({reason})"},
            )
        elif lost >= self.max_attempts:
            error = (
                f"gave up after {lost} lost lease(s) (KTRDR_MAX_ATTEMPTS={self.max_attempts}); "
                f"last: {reason}"
            )
            self._finish(
                session,
                op,
                Event.EXPIRE_LEASE,
                F,
                now,
                AttemptOutcome.LEASE_EXPIRED,
                reason,
                {"error": error},
            )
        else:
            self._requeue(
                session, op, Event.EXPIRE_LEASE, now, AttemptOutcome.LEASE_EXPIRED, reason
            )


def _forget(session: Session) -> None:
    """A rolled-back transaction changed nothing: drop what it noted."""
    session.info.pop(_NOTES, None)


def _load(session: Session, operation_id: str) -> Operation:
    op = session.get(Operation, operation_id)
    if op is None:
        raise OperationNotFound(f"no operation {operation_id!r}")
    return op


_INPUTS: TypeAdapter[Any] = TypeAdapter(OperationInputs)


def _inputs(op: Operation | Row[Any]) -> Any:
    """The operation's inputs as their protocol model (chosen by their ``kind``)."""
    return _INPUTS.validate_python(op.inputs)


_BY_ID = select(Operation.__table__).where(Operation.__table__.c.id == bindparam("id"))


def to_view(op: Operation | Row[Any]) -> OperationView:
    """The API's picture of one operation (an ORM object or a row of its table), with its
    reproducibility record."""
    inputs = _inputs(op)
    return OperationView(
        operation_id=op.id,
        kind=OperationKind(op.kind),
        state=OperationState(op.state),
        progress=Progress.model_validate(op.progress or {}),
        created_at=op.created_at,
        updated_at=op.updated_at,
        started_at=op.started_at,
        finished_at=op.finished_at,
        cancel_requested=op.cancel_requested,
        attempt=op.attempt,
        worker_id=op.worker_id,
        lease_expires_at=op.lease_expires_at,
        inputs=inputs,
        reproducibility=Reproducibility(
            # Not every kind has a strategy, data or a seed (a data fetch has none of them).
            strategy_hash=getattr(inputs, "strategy_hash", None),
            data_checksums={
                f"{d.symbol}/{d.timeframe}@{d.version}": d.checksum
                for d in getattr(inputs, "data", ())
            },
            seed=getattr(inputs, "seed", None),
            versions=inputs.versions,
            worker_id=op.attempts[-1]["worker_id"] if op.attempts else None,
            attempts=[AttemptRecord.model_validate(a) for a in op.attempts],
        ),
        error=op.error,
        result=op.result,
        checkpoint_sha256=op.checkpoint_sha256,
        retry_of=op.retry_of,
        strategy_name=op.strategy_name,
        parent_id=op.parent_id,
        role=op.role,
    )
