"""Leases: a claim starts one, heartbeats renew it, an expiry loses it.

Attempts: each claim starts attempt ``n + 1`` and hands that number to the worker; every
later message from the worker names it (see :meth:`OperationStore._held`).

Lost leases (the worker stopped heartbeating, or asked for new work while holding the
operation) requeue it, until ``max_attempts`` leases have been lost; then it fails with
the reason. A voluntary release (SIGTERM) requeues without counting against that limit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ktrdr_api import catalog, dispatch
from ktrdr_api.dispatch import WorkerInfo
from ktrdr_api.ids import utcnow
from ktrdr_api.lifecycle import (
    Event,
    InvalidOutcome,
    OperationConflict,
    P,
    R,
    Transition,
    WorkerNotFound,
    check_transition,
    log,
)
from ktrdr_api.models import Operation, Worker
from ktrdr_api.store import OperationStore, load, note
from ktrdr_api.views import to_view
from ktrdr_core.protocol import (
    AttemptRecord,
    ClaimResponse,
    Device,
    Heartbeat,
    HeartbeatResponse,
    OperationKind,
    OperationState,
    OperationView,
)


class Leases(OperationStore):
    """Claims, heartbeats and lease expiries; ``gpu_grace_s`` is dispatch's GPU-first wait."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        lease_seconds: float,
        max_attempts: int,
        gpu_grace_s: float = dispatch.GPU_GRACE_S,
        clock: Callable[[], datetime] = utcnow,
    ):
        super().__init__(
            sessions, lease_seconds=lease_seconds, max_attempts=max_attempts, clock=clock
        )
        self.gpu_grace = timedelta(seconds=gpu_grace_s)

    # --- claims -----------------------------------------------------------------------

    def begin_claim(self, worker_id: str, timeout_s: float) -> WorkerInfo:
        """Mark the worker seen and long-polling for ``timeout_s`` seconds (``polling_until``,
        read by every API process), and take back any operation it still holds.

        A worker runs one operation at a time, so asking for work while holding one means
        that run was abandoned (the worker restarted under the same id): its lease is lost
        now rather than after the lease runs out.
        """
        now = self.clock()
        with self.sessions.begin() as session:
            worker = _seen(session, worker_id, now)
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
                self._lose_lease(session, op, now=now, reason=reason)
            worker.current_operation_id = None
            worker.polling_until = now + timedelta(seconds=timeout_s)
            return WorkerInfo(
                worker_id=worker.id,
                kind=OperationKind(worker.kind),
                device=Device(worker.device),
                versions=dict(worker.versions or {}),
            )

    def hung_up(self, worker_id: str) -> None:
        """The worker hung up during its long poll: it no longer polls, and was last heard
        from when the poll began. (A poll that runs to its end writes nothing: its
        ``polling_until`` is when the worker was last heard from.)"""
        with self.sessions.begin() as session:
            session.execute(update(Worker).where(Worker.id == worker_id).values(polling_until=None))

    def try_claim(self, worker: WorkerInfo) -> ClaimResponse | None:
        """Give ``worker`` the operation dispatch picks for it, or None when none fits."""
        now = self.clock()
        with self.sessions() as session:
            candidates = dispatch.candidates(session, worker, now=now, grace=self.gpu_grace)
        for op_id in candidates:
            claimed = self._claim_one(op_id, worker, now)
            if claimed is not None:
                return claimed
        return None

    def _claim_one(self, op_id: str, worker: WorkerInfo, now: datetime) -> ClaimResponse | None:
        check_transition(P, Event.CLAIM, R)
        with self.sessions.begin() as session:
            # PostgreSQL: lock the row, or skip it at once when another claim holds it (that
            # claimer moves on to the next candidate instead of queueing behind the lock).
            # SQLite has no row locks: one writer at a time, and the conditional update below
            # keeps a second claim out on both.
            op = session.scalars(
                select(Operation)
                .where(Operation.id == op_id, Operation.state == P.value)
                .with_for_update(skip_locked=True)
            ).first()
            if op is None:
                return None  # another worker was faster, or is claiming it right now
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
                .values(current_operation_id=op_id, last_seen_at=now, polling_until=None)
            )
            note(
                session,
                Transition(
                    op_id, op.kind, Event.CLAIM, P, R, attempt, worker.worker_id, None, op.parent_id
                ),
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
            _seen(session, worker_id, now)
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

    # --- leases -----------------------------------------------------------------------

    def expire_leases(self) -> list[OperationView]:
        """Apply EXPIRE_LEASE to every running operation whose lease has run out.

        An operation whose expiry cannot be handled (a row this version cannot read) is
        failed with the reason and logged with its id; the others are handled all the same.
        """
        now = self.clock()
        changed: list[OperationView] = []
        with self.sessions() as session:
            expired = session.scalars(
                select(Operation.id).where(
                    Operation.state == R.value, Operation.lease_expires_at < now
                )
            ).all()
        for op_id in expired:
            try:
                view = self._expire_lease(op_id, now)
            except (OperationConflict, SQLAlchemyError):
                continue  # a racing change, or the database: the next sweep looks again
            except Exception as exc:
                self._fail_unreadable(op_id, now, exc)
                continue
            if view is not None:
                changed.append(view)
        return changed

    def _expire_lease(self, op_id: str, now: datetime) -> OperationView | None:
        with self.sessions.begin() as session:
            op = session.get(Operation, op_id)
            if op is None or op.state != R.value or op.lease_expires_at >= now:
                return None  # a heartbeat or completion got there first
            expired_at = f"{op.lease_expires_at:%Y-%m-%dT%H:%M:%SZ}"
            reason = (
                f"lease of attempt {op.attempt} expired at {expired_at}: "
                f"no heartbeat from worker {op.worker_id}"
            )
            self._lose_lease(session, op, now=now, reason=reason)
            return to_view(op)

    def _fail_unreadable(self, op_id: str, now: datetime, exc: Exception) -> None:
        """Fail a running operation whose lease expiry raised ``exc``, without reading more of
        it than its state: whatever broke the expiry would break a requeue too."""
        error = f"its lease expired and it could not be requeued: {type(exc).__name__}: {exc}"
        log.error("operation %s: %s", op_id, error, exc_info=exc, extra={"operation_id": op_id})
        try:
            with self.sessions.begin() as session:
                op = load(session, op_id)
                self._release_worker(session, op)
                values = {"finished_at": now, "updated_at": now, "lease_expires_at": None}
                failed = OperationState.FAILED
                self._apply(session, op, Event.EXPIRE_LEASE, failed, values | {"error": error})
        except Exception:
            log.exception("operation %s: could not be failed either", op_id)


def _seen(session: Session, worker_id: str, now: datetime) -> Worker:
    """The worker's row, marked seen at ``now``; WorkerNotFound when it never registered."""
    worker = session.get(Worker, worker_id)
    if worker is None:
        raise WorkerNotFound(f"worker {worker_id!r} is not registered: register first")
    worker.last_seen_at = now
    return worker
