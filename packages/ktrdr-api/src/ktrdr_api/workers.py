"""The worker registry: who is out there, what it can do, and whether it is still alive."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ktrdr_api.models import Worker
from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import (
    PROTOCOL_VERSION,
    OperationKind,
    WorkerCapabilities,
    WorkerRegistration,
    WorkerStatus,
    WorkerView,
    heartbeat_interval,
)


class ProtocolMismatch(KtrdrError):
    """The peer speaks another protocol version (HTTP 426)."""


class RegistrationConflict(KtrdrError):
    """A registration contradicts what the worker is doing (HTTP 409)."""


def protocol_mismatch(peer: int, who: str) -> ProtocolMismatch | None:
    """The error to answer a ``who`` ("worker", "client") speaking protocol ``peer``, if any."""
    if peer == PROTOCOL_VERSION:
        return None
    upgrade = f"upgrade the {who}" if peer < PROTOCOL_VERSION else "upgrade the backend"
    return ProtocolMismatch(
        f"{who} speaks protocol {peer}, this backend speaks protocol {PROTOCOL_VERSION}: "
        f"{upgrade} (all ktrdr packages move in lockstep)"
    )


def register(session: Session, registration: WorkerRegistration, now: datetime) -> Worker:
    """Create or refresh the worker's record (idempotent: a restarted worker re-registers).

    Raises ProtocolMismatch when the worker speaks another protocol version.
    """
    mismatch = protocol_mismatch(registration.protocol, "worker")
    if mismatch is not None:
        raise mismatch
    row = session.get(Worker, registration.worker_id)
    fields = {
        "kind": registration.kind.value,
        "device": registration.capabilities.device.value,
        "capabilities": registration.capabilities.model_dump(mode="json"),
        "versions": dict(registration.versions),
        "protocol": registration.protocol,
        "host": registration.host,
        "last_seen_at": now,
    }
    if row is None:
        row = Worker(id=registration.worker_id, registered_at=now, **fields)
        session.add(row)
    else:
        if row.kind != registration.kind.value and row.current_operation_id:
            raise RegistrationConflict(
                f"worker {row.id} holds operation {row.current_operation_id} as a {row.kind} "
                f"worker and cannot re-register as {registration.kind.value}; use another id"
            )
        for key, value in fields.items():
            setattr(row, key, value)
        row.registered_at = now
    session.flush()
    return row


def polling(row: Worker, now: datetime) -> bool:
    """Whether the worker holds a long poll open now, on any API process."""
    return row.polling_until is not None and row.polling_until > now


def last_heard(row: Worker, now: datetime) -> datetime:
    """When the worker was last heard from: its last call, or until the end of the long poll
    it held open (``polling_until``; now while it polls)."""
    if row.polling_until is None:
        return row.last_seen_at
    return max(row.last_seen_at, min(row.polling_until, now))


def status(row: Worker, *, now: datetime, lease_seconds: float) -> WorkerStatus:
    """From the silence since the worker was last heard from (a claim poll, a heartbeat; one
    long-polling right now, on any process, is heard now): ``lost`` after two heartbeat
    intervals, ``offline`` after the lease; otherwise busy while it holds an operation, else
    idle."""
    silence = now - last_heard(row, now)
    if silence > timedelta(seconds=lease_seconds):
        return WorkerStatus.OFFLINE
    if silence > timedelta(seconds=2 * heartbeat_interval(lease_seconds)):
        return WorkerStatus.LOST
    return WorkerStatus.BUSY if row.current_operation_id else WorkerStatus.IDLE


def view(row: Worker, *, now: datetime, lease_seconds: float) -> WorkerView:
    return WorkerView(
        worker_id=row.id,
        kind=OperationKind(row.kind),
        capabilities=WorkerCapabilities.model_validate(row.capabilities),
        protocol=row.protocol,
        versions=row.versions,
        host=row.host,
        registered_at=row.registered_at,
        last_seen_at=last_heard(row, now),
        status=status(row, now=now, lease_seconds=lease_seconds),
        current_operation_id=row.current_operation_id,
    )


def all_workers(session: Session, kind: OperationKind | None = None) -> list[Worker]:
    query = select(Worker).order_by(Worker.kind, Worker.id)
    if kind is not None:
        query = query.where(Worker.kind == kind.value)
    return list(session.scalars(query))


def registry(backend: Any, kind: OperationKind | None = None) -> list[WorkerView]:
    """Every registered worker (of ``kind``) as the API shows it now: status from the silence
    since it was last heard from, long-polling workers heard now."""
    ops = backend.operations
    now = ops.clock()
    with backend.sessions() as session:
        return [
            view(row, now=now, lease_seconds=ops.lease.total_seconds())
            for row in all_workers(session, kind)
        ]
