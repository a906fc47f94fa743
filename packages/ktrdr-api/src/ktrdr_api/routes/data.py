"""Market data: upload a CSV for a symbol and timeframe, list, show, download, delete.

The upload is the raw CSV as the request body (``Content-Type: text/csv``), streamed to disk
under the size limit, then validated and normalised; errors name the line and the rule.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from ktrdr_api import catalog, datasets
from ktrdr_api.auth import requires
from ktrdr_api.deps import AuditDep, BackendDep, ExchangeDep, SessionDep, SymbolDep, checked_symbol
from ktrdr_api.fetches import fetch_inputs
from ktrdr_api.lifecycle import OperationConflict
from ktrdr_api.price_views import price_view
from ktrdr_api.responses import ModelResponse, model_response
from ktrdr_api.routes.artifacts import check_declared_length, file_response
from ktrdr_core.access import Role
from ktrdr_core.protocol import ArtifactKind, DataFetchRequest, DatasetView, OperationView
from ktrdr_core.timeframes import Timeframe
from ktrdr_core.version import installed_distributions

router = APIRouter(prefix="/data", tags=["data"])

# Bounded by the database's 32-bit integer column: a larger number is a 422, not an overflow.
VersionQuery = Annotated[
    int | None, Query(ge=1, le=2**31 - 1, description="a version; default the newest")
]


@router.post(
    "/fetch",
    status_code=201,
    response_model=OperationView,
    responses={422: {"description": "unknown provider, bad symbol or range, nothing stored"}},
    dependencies=[requires(Role.RESEARCHER)],
)
def fetch(request: DataFetchRequest, backend: BackendDep) -> ModelResponse:
    """Start a data-fetch operation: a worker downloads bars from the provider, merges them
    into the newest stored version and the completion catalogues the next version. An
    ``exchange`` becomes the symbol's setting at once."""
    with backend.sessions.begin() as session:
        inputs = fetch_inputs(
            session, request, now=backend.operations.clock(), versions=installed_distributions()
        )
    references = [inputs.stored.checksum] if inputs.stored else []
    view = backend.operations.create(inputs, references=references)
    return model_response(view, status_code=201)


@router.post(
    "/{symbol}/{timeframe}",
    status_code=201,
    responses={
        200: {"description": "identical to the newest version: nothing added"},
        413: {},
        422: {"description": "the file broke validation rules; each issue names its line"},
    },
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    dependencies=[requires(Role.RESEARCHER)],
)
async def upload(
    symbol: SymbolDep,
    timeframe: Timeframe,
    request: Request,
    response: Response,
    backend: BackendDep,
    exchange: ExchangeDep,
    # A file's name as the user knew it, shown in listings: no folders, no control characters
    # (PostgreSQL text cannot hold a NUL).
    source_name: Annotated[
        str | None, Query(max_length=255, pattern=r"^[^/\\\x00-\x1f\x7f]+$")
    ] = None,
) -> DatasetView:
    """Import the request body as the next version of ``symbol`` ``timeframe``.

    ``exchange`` (a code such as XNYS, or an alias such as NASDAQ) becomes the symbol's
    setting; with it, or with the symbol's setting, a worker checks the bars against the
    exchange's official sessions (``exact_report`` names that operation)."""
    limit = backend.settings.max_upload_bytes
    check_declared_length(request, limit)
    staged = await backend.store.stage(request.stream(), max_bytes=limit)
    try:
        # Validation reads every row: keep it off the event loop.
        view, created = await asyncio.to_thread(
            datasets.import_csv,
            backend.sessions,
            backend.store,
            symbol=symbol,
            timeframe=timeframe,
            staged=staged,
            source_name=source_name,
            now=backend.operations.clock(),
            exchange=exchange,
            add_operation=backend.operations.add,
        )
    finally:
        staged.unlink(missing_ok=True)
    if not created:
        response.status_code = 200
    return view


@router.get("", dependencies=[requires(Role.READER)])
def list_data(
    session: SessionDep,
    symbol: Annotated[str | None, Query(max_length=32)] = None,
    timeframe: Timeframe | None = None,
    all_versions: bool = False,
) -> list[DatasetView]:
    """The newest version of each symbol and timeframe (every version with all_versions)."""
    rows = catalog.datasets(
        session,
        symbol=checked_symbol(symbol, where="query") if symbol else None,
        timeframe=timeframe.value if timeframe else None,
        all_versions=all_versions,
    )
    return [catalog.dataset_view(session, row) for row in rows]


@router.get("/{symbol}/{timeframe}", responses={404: {}}, dependencies=[requires(Role.READER)])
def show(
    symbol: SymbolDep, timeframe: Timeframe, session: SessionDep, version: VersionQuery = None
) -> DatasetView:
    """Range, rows, checksum, warnings and gap report of one version."""
    return catalog.dataset_view(session, catalog.dataset(session, symbol, timeframe.value, version))


@router.get(
    "/{symbol}/{timeframe}/csv",
    response_class=FileResponse,
    responses={404: {}},
    dependencies=[requires(Role.READER)],
)
def download(
    symbol: SymbolDep,
    timeframe: Timeframe,
    session: SessionDep,
    backend: BackendDep,
    version: VersionQuery = None,
) -> FileResponse:
    """The normalised CSV; ``X-Content-SHA256`` carries its checksum."""
    row = catalog.dataset(session, symbol, timeframe.value, version)
    return file_response(
        backend,
        row.checksum,
        ArtifactKind.DATA,
        filename=f"{row.symbol}_{row.timeframe}_v{row.version}.csv",
    )


@router.get(
    "/{symbol}/{timeframe}/prices",
    response_class=FileResponse,
    responses={404: {}},
    dependencies=[requires(Role.READER)],
)
def prices(
    symbol: SymbolDep,
    timeframe: Timeframe,
    session: SessionDep,
    backend: BackendDep,
    version: VersionQuery = None,
) -> FileResponse:
    """The version's price chart: at most 2,000 candles, each bucket of bars keeping its first
    open, extremes and last close (``ktrdr-price-series/1``; ``ktrdr_core.market_data.prices``)."""
    row = catalog.dataset(session, symbol, timeframe.value, version)
    path = price_view(backend.store, row.checksum, row.rows)
    return FileResponse(path, media_type="application/json")


@router.delete(
    "/{symbol}/{timeframe}", responses={404: {}, 409: {}}, dependencies=[requires(Role.RESEARCHER)]
)
def delete(
    symbol: SymbolDep,
    timeframe: Timeframe,
    backend: BackendDep,
    auditor: AuditDep,
    version: VersionQuery = None,
    force: bool = False,
) -> list[DatasetView]:
    """Delete one version (or all); 409 names the models and live operations using it.
    An exact gap report still being made of a deleted version is cancelled."""
    deleted = datasets.delete_datasets(
        backend.sessions,
        backend.store,
        symbol=symbol,
        timeframe=timeframe,
        version=version,
        force=force,
    )
    for view in deleted:
        status = view.exact_report
        if status is not None and not status.state.is_terminal:
            with contextlib.suppress(OperationConflict):  # it finished meanwhile
                backend.operations.request_cancel(status.operation_id)
    auditor(
        "data.delete",
        f"{symbol} {timeframe.value} " + ", ".join(f"v{view.version}" for view in deleted),
        detail="force" if force else None,
    )
    return deleted
