"""Walk-forwards: start one for a strategy; show it with its folds; its report, the series its
page draws and the self-contained HTML report.

Cancel and retry go through /operations like every other operation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse

from ktrdr_api.auth import requires
from ktrdr_api.dashboard import report_html
from ktrdr_api.deps import BackendDep, OperationIdPath
from ktrdr_api.lifecycle import OperationNotFound
from ktrdr_api.responses import ModelResponse, model_response
from ktrdr_api.routes.artifacts import file_response, finished_result, series_response
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
    "/{operation_id}/series",
    response_class=FileResponse,
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.READER)],
)
def series(operation_id: OperationIdPath, backend: BackendDep) -> FileResponse:
    """The series its page draws, decimated by the worker (ktrdr-walkforward-series/1)."""
    result = finished_result(_walkforward(backend, operation_id), "walk-forward")
    return series_response(backend, result, noun=f"walk-forward {operation_id}")


@router.get(
    "/{operation_id}/report.html",
    response_class=HTMLResponse,
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.READER)],
)
def report_page(operation_id: OperationIdPath, backend: BackendDep) -> HTMLResponse:
    """A self-contained interactive report: the chart library, its code and the series in
    one HTML file that opens offline (``ktrdr walkforwards show ID --html FILE``)."""
    result = finished_result(_walkforward(backend, operation_id), "walk-forward")
    served = series_response(backend, result, noun=f"walk-forward {operation_id}")
    document = json.loads(Path(served.path).read_text(encoding="utf-8"))
    page, policy = report_html("walkforward", f"ktrdr walk-forward {operation_id}", document)
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": policy,
            "Content-Disposition": f'attachment; filename="{operation_id}.html"',
        },
    )
