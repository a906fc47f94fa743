"""Walk-forwards: start one for a strategy; show it with its folds; its report and chart.

Cancel and retry go through /operations like every other operation.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from ktrdr_api.auth import requires
from ktrdr_api.deps import BackendDep, OperationIdPath
from ktrdr_api.lifecycle import OperationNotFound
from ktrdr_api.responses import ModelResponse, model_response
from ktrdr_api.routes.artifacts import chart_response, file_response, finished_result
from ktrdr_core.access import Role
from ktrdr_core.protocol import (
    ArtifactKind,
    OperationKind,
    OperationState,
    OperationView,
    WalkforwardRequest,
    WalkforwardView,
)

router = APIRouter(prefix="/walkforwards", tags=["walkforwards"])


@router.post(
    "",
    status_code=201,
    response_model=OperationView,
    responses={422: {"description": "strategy issues, missing data, or folds that do not fit"}},
    dependencies=[requires(Role.RESEARCHER)],
)
async def start_walkforward(request: WalkforwardRequest, backend: BackendDep) -> ModelResponse:
    """Plan the folds and start training them on every available training worker."""
    view = await run_in_threadpool(backend.walkforwards.start, request)
    return model_response(view, status_code=201)


@router.get("", dependencies=[requires(Role.READER)])
def list_walkforwards(
    backend: BackendDep,
    state: OperationState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[OperationView]:
    return backend.operations.list_operations(
        kind=OperationKind.WALKFORWARD, state=state, limit=limit
    )


def _walkforward(backend: BackendDep, operation_id: str) -> OperationView:
    view = backend.operations.get(operation_id)
    if view.kind != OperationKind.WALKFORWARD:
        raise OperationNotFound(
            f"operation {operation_id} is a {view.kind} operation, not a walk-forward"
        )
    return view


@router.get("/{operation_id}", responses={404: {}}, dependencies=[requires(Role.READER)])
def get_walkforward(operation_id: OperationIdPath, backend: BackendDep) -> WalkforwardView:
    """The walk-forward and its children: per fold, a training and a backtest; the report."""
    view = _walkforward(backend, operation_id)
    return WalkforwardView(operation=view, children=backend.operations.children(operation_id))


@router.get(
    "/{operation_id}/report",
    response_class=FileResponse,
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.READER)],
)
def report(operation_id: OperationIdPath, backend: BackendDep) -> FileResponse:
    """The aggregate report JSON: stitched equity, overall and per-fold metrics, stability."""
    result = finished_result(_walkforward(backend, operation_id), "walk-forward")
    return file_response(
        backend,
        result.report_sha256,
        ArtifactKind.REPORT,
        filename=f"{operation_id}_walkforward.json",
    )


@router.get(
    "/{operation_id}/chart",
    response_class=FileResponse,
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.READER)],
)
def chart(
    operation_id: OperationIdPath,
    backend: BackendDep,
    format: Literal["png", "svg"] = "png",
) -> FileResponse:
    """The stitched out-of-sample equity chart against buy and hold (PNG or SVG)."""
    result = finished_result(_walkforward(backend, operation_id), "walk-forward")
    return chart_response(
        backend,
        result,
        format,
        filename_stem=f"{operation_id}_walkforward",
        noun=f"walk-forward {operation_id}",
    )
