"""Operations: list, show, cancel, retry. Workers change them through /workers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from ktrdr_api import workers
from ktrdr_api.auth import requires
from ktrdr_api.deps import AuditDep, Backend, BackendDep, OperationIdPath
from ktrdr_api.dispatch import waiting_reason
from ktrdr_api.responses import ModelResponse, model_response
from ktrdr_core.access import Role
from ktrdr_core.protocol import OperationKind, OperationState, OperationView

router = APIRouter(prefix="/operations", tags=["operations"])


@router.get("", dependencies=[requires(Role.READER)])
def list_operations(
    backend: BackendDep,
    kind: OperationKind | None = None,
    state: OperationState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    # A strategy name's own rule (letters, digits, _ . -): never a NUL for the database.
    strategy: Annotated[
        str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ] = None,
    top_level: bool = False,
) -> list[OperationView]:
    """Newest first, filtered by kind, state and strategy name; ``top_level``: without the
    child operations of walk-forwards and studies."""
    views = backend.operations.list_operations(
        kind=kind, state=state, limit=limit, strategy_name=strategy, top_level=top_level
    )
    return with_waiting_reasons(backend, views)


@router.get(
    "/{operation_id}",
    response_model=OperationView,
    responses={404: {}},
    dependencies=[requires(Role.READER)],
)
async def get_operation(operation_id: OperationIdPath, backend: BackendDep) -> ModelResponse:
    """One operation with its progress and reproducibility record (the status CLIs poll)."""
    if backend.local_database:
        # The hottest route. On SQLite this primary-key read takes a fraction of a
        # millisecond and never waits for a writer (WAL), so it runs on the event loop: the
        # hand-off to a thread would cost more than the read (a third of the request).
        view = backend.operations.get(operation_id)
    else:
        # Over the network (PostgreSQL) a read may stall: never on the event loop.
        view = await run_in_threadpool(backend.operations.get, operation_id)
    if view.state == OperationState.PENDING:  # only then does the registry matter
        [view] = await run_in_threadpool(with_waiting_reasons, backend, [view])
    return model_response(view)


def with_waiting_reasons(backend: Backend, views: list[OperationView]) -> list[OperationView]:
    """The views, each pending one with the reason no worker can take it (if there is one)."""
    if not any(v.state == OperationState.PENDING for v in views):
        return views
    registry = workers.registry(backend)
    return [v.model_copy(update={"waiting": waiting_reason(v, registry)}) for v in views]


@router.post(
    "/{operation_id}/cancel", responses={404: {}, 409: {}}, dependencies=[requires(Role.RESEARCHER)]
)
def cancel(operation_id: OperationIdPath, backend: BackendDep, auditor: AuditDep) -> OperationView:
    """A pending operation is cancelled at once; a running one when its worker confirms."""
    view = backend.operations.request_cancel(operation_id)
    auditor("operation.cancel", f"{view.operation_id} {view.kind}", detail=f"state {view.state}")
    return view


@router.post(
    "/{operation_id}/retry",
    status_code=201,
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.RESEARCHER)],
)
def retry(operation_id: OperationIdPath, backend: BackendDep) -> OperationView:
    """A new operation with the same inputs, resuming from the last checkpoint if any."""
    return backend.operations.retry(operation_id)
