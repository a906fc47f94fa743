"""Workers: register, long-poll for work, heartbeat, and report how an attempt ended.

Each call from a worker names the attempt it holds; one naming an attempt that no longer
holds the operation gets 409 and changes nothing (see ktrdr_api.operations).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from ktrdr_api import workers
from ktrdr_api.auth import check_scope, requires
from ktrdr_api.deps import BackendDep, OperationIdPath, PrincipalDep
from ktrdr_api.responses import ModelResponse, model_response
from ktrdr_api.tokens import Principal
from ktrdr_core.access import Role
from ktrdr_core.protocol import (
    WORKER_ID_PATTERN,
    AttemptRef,
    ClaimRequest,
    ClaimResponse,
    Completion,
    Failure,
    Heartbeat,
    HeartbeatResponse,
    OperationKind,
    OperationView,
    Release,
    WorkerRegistration,
    WorkerView,
)

router = APIRouter(prefix="/workers", tags=["workers"])
log = logging.getLogger("ktrdr_api.workers")

WorkerIdPath = Annotated[str, Path(pattern=WORKER_ID_PATTERN)]


@router.post(
    "",
    responses={409: {}, 426: {"description": "protocol versions differ"}},
    dependencies=[requires(Role.WORKER)],
)
async def register(
    registration: WorkerRegistration, http: Request, backend: BackendDep, principal: PrincipalDep
) -> WorkerView:
    """Register (or re-register) a worker; 426 names the side to upgrade on a mismatch.

    The worker is bound to the token registering it: a worker token then acts only for the
    workers it registered (an idle worker may move to a new token: a rotation)."""
    if principal.role == Role.WORKER:
        await check_scope(http, principal, "registration", registration.worker_id)
    return await run_in_threadpool(_register, registration, backend, principal)


def _register(
    registration: WorkerRegistration, backend: BackendDep, principal: Principal
) -> WorkerView:
    ops = backend.operations
    with backend.sessions.begin() as session:
        row = workers.register(session, registration, ops.clock())
        row.token_id = principal.token_id
        view = workers.view(row, now=ops.clock(), lease_seconds=ops.lease.total_seconds())
    log.info(
        "worker %s registered (%s, device %s, host %s)",
        view.worker_id,
        view.kind.value,
        view.capabilities.device.value,
        view.host,
        extra={"worker_id": view.worker_id, "kind": view.kind.value},
    )
    return view


@router.get("", dependencies=[requires(Role.READER)])
def list_workers(backend: BackendDep, kind: OperationKind | None = None) -> list[WorkerView]:
    return workers.registry(backend, kind)


@router.post(
    "/{worker_id}/claim",
    response_model=ClaimResponse,
    responses={204: {"description": "nothing to do within the timeout"}, 404: {}},
    dependencies=[requires(Role.WORKER)],
)
async def claim(
    worker_id: WorkerIdPath,
    backend: BackendDep,
    http: Request,
    request: ClaimRequest | None = None,
) -> ClaimResponse | Response:
    """Long poll: the next operation for this worker, or 204 after ``timeout_s`` seconds."""
    timeout_s = (request or ClaimRequest()).timeout_s
    offer = await backend.dispatcher.claim(worker_id, timeout_s, gone=http.is_disconnected)
    return model_response(offer) if offer is not None else Response(status_code=204)


@router.post(
    "/{worker_id}/heartbeat",
    response_model=HeartbeatResponse,
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.WORKER)],
)
def heartbeat(worker_id: WorkerIdPath, beat: Heartbeat, backend: BackendDep) -> ModelResponse:
    """Renew liveness (and the lease, with progress); ``cancel: true`` means stop now."""
    return model_response(backend.operations.heartbeat(worker_id, beat))


@router.post(
    "/{worker_id}/operations/{operation_id}/complete",
    responses={404: {}, 409: {}, 422: {}},
    dependencies=[requires(Role.WORKER)],
)
def complete(
    worker_id: WorkerIdPath,
    operation_id: OperationIdPath,
    completion: Completion,
    backend: BackendDep,
) -> OperationView:
    """Finish the attempt with its result; upload the artifacts it names first."""
    return backend.operations.complete(worker_id, operation_id, completion)


@router.post(
    "/{worker_id}/operations/{operation_id}/fail",
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.WORKER)],
)
def fail(
    worker_id: WorkerIdPath, operation_id: OperationIdPath, failure: Failure, backend: BackendDep
) -> OperationView:
    return backend.operations.fail(worker_id, operation_id, failure)


@router.post(
    "/{worker_id}/operations/{operation_id}/cancelled",
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.WORKER)],
)
def cancelled(
    worker_id: WorkerIdPath, operation_id: OperationIdPath, ack: AttemptRef, backend: BackendDep
) -> OperationView:
    """Confirm that the worker stopped after a heartbeat answered ``cancel: true``."""
    return backend.operations.acknowledge_cancel(worker_id, operation_id, ack.attempt)


@router.post(
    "/{worker_id}/operations/{operation_id}/release",
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.WORKER)],
)
def release(
    worker_id: WorkerIdPath, operation_id: OperationIdPath, release: Release, backend: BackendDep
) -> OperationView:
    """Give the operation back (worker shutting down); it is requeued at once."""
    return backend.operations.release(worker_id, operation_id, release)
