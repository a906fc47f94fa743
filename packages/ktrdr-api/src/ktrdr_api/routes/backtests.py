"""Backtests: start one for a model over a range; list them; fetch the report, the series its
page draws and the self-contained HTML report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse

from ktrdr_api.auth import requires
from ktrdr_api.dashboard import report_html
from ktrdr_api.deps import BackendDep, OperationIdPath
from ktrdr_api.lifecycle import OperationNotFound
from ktrdr_api.responses import ModelResponse, model_response
from ktrdr_api.routes.artifacts import file_response, finished_result, series_response
from ktrdr_api.strategies import backtest_inputs, check_backtest_settings
from ktrdr_core.access import Role
from ktrdr_core.protocol import (
    ArtifactKind,
    BacktestRequest,
    OperationKind,
    OperationState,
    OperationView,
)

router = APIRouter(prefix="/backtests", tags=["backtests"])


def _utc(value: datetime | None) -> datetime | None:
    # A date without a zone in a request means UTC, as everywhere in ktrdr.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@router.post(
    "",
    status_code=201,
    response_model=OperationView,
    responses={404: {}, 422: {}},
    dependencies=[requires(Role.RESEARCHER)],
)
def start_backtest(request: BacktestRequest, backend: BackendDep) -> ModelResponse:
    """Backtest a model on the newest data of the symbols and timeframe it was trained on.

    Without ``start``/``end`` the worker uses the bundle's test period.
    """
    check_backtest_settings(request.settings)
    with backend.sessions() as session:
        inputs, name = backtest_inputs(
            session, request.model_id, _utc(request.start), _utc(request.end), request.settings
        )
    view = backend.operations.create(
        inputs,
        references=[inputs.bundle_sha256, *(ref.checksum for ref in inputs.data)],
        strategy_name=name,
    )
    return model_response(view, status_code=201)


@router.get("", dependencies=[requires(Role.READER)])
def list_backtests(
    backend: BackendDep,
    state: OperationState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[OperationView]:
    return backend.operations.list_operations(kind=OperationKind.BACKTEST, state=state, limit=limit)


def _backtest(backend: BackendDep, operation_id: str) -> OperationView:
    view = backend.operations.get(operation_id)
    if view.kind != OperationKind.BACKTEST:
        raise OperationNotFound(
            f"operation {operation_id} is a {view.kind} operation, not a backtest"
        )
    return view


@router.get("/{operation_id}", responses={404: {}}, dependencies=[requires(Role.READER)])
def get_backtest(operation_id: OperationIdPath, backend: BackendDep) -> OperationView:
    return _backtest(backend, operation_id)


@router.get(
    "/{operation_id}/report",
    response_class=FileResponse,
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.READER)],
)
def report(operation_id: OperationIdPath, backend: BackendDep) -> FileResponse:
    """The report JSON (metrics, trades, equity) the worker uploaded."""
    result = finished_result(_backtest(backend, operation_id), "backtest")
    return file_response(
        backend,
        result.report_sha256,
        ArtifactKind.REPORT,
        filename=f"{operation_id}_report.json",
    )


@router.get(
    "/{operation_id}/series",
    response_class=FileResponse,
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.READER)],
)
def series(operation_id: OperationIdPath, backend: BackendDep) -> FileResponse:
    """The series its page draws, decimated by the worker (ktrdr-backtest-series/1)."""
    result = finished_result(_backtest(backend, operation_id), "backtest")
    return series_response(backend, result, noun=f"backtest {operation_id}")


@router.get(
    "/{operation_id}/report.html",
    response_class=HTMLResponse,
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.READER)],
)
def report_page(operation_id: OperationIdPath, backend: BackendDep) -> HTMLResponse:
    """A self-contained interactive report: the chart library, its code and the series in
    one HTML file that opens offline (``ktrdr backtests show ID --html FILE``)."""
    result = finished_result(_backtest(backend, operation_id), "backtest")
    served = series_response(backend, result, noun=f"backtest {operation_id}")
    document = json.loads(Path(served.path).read_text(encoding="utf-8"))
    page, policy = report_html("backtest", f"ktrdr backtest {operation_id}", document)
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": policy,
            "Content-Disposition": f'attachment; filename="{operation_id}.html"',
        },
    )
