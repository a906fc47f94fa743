"""Artifacts for workers: upload a file (streamed, size-limited), download it by sha256."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse

from ktrdr_api import catalog
from ktrdr_api.artifacts import ArtifactNotFound, ArtifactTooLarge
from ktrdr_api.auth import check_scope, requires
from ktrdr_api.deps import BackendDep, PrincipalDep, SessionDep
from ktrdr_api.lifecycle import OperationConflict
from ktrdr_core.access import Role
from ktrdr_core.protocol import (
    SHA256_PATTERN,
    ArtifactKind,
    ArtifactView,
    BacktestResultView,
    OperationState,
    OperationView,
    WalkforwardResult,
)

router = APIRouter(prefix="/artifacts", tags=["artifacts"])

ShaPath = Annotated[str, Path(pattern=SHA256_PATTERN)]

MEDIA_TYPES = {
    ArtifactKind.DATA: "text/csv",
    ArtifactKind.REPORT: "application/json",
    ArtifactKind.BUNDLE: "application/zip",
    ArtifactKind.SERIES: "application/json",
}


def check_declared_length(request: Request, limit: int) -> None:
    """Refuse early (413) when Content-Length already says the body is over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ArtifactTooLarge(
            f"upload of {declared} bytes exceeds the limit of {limit} bytes "
            "(KTRDR_MAX_UPLOAD_MB on the backend)"
        )


@router.post(
    "", status_code=201, responses={413: {}, 422: {}}, dependencies=[requires(Role.WORKER)]
)
async def upload(
    request: Request,
    kind: ArtifactKind,
    backend: BackendDep,
    principal: PrincipalDep,
    x_content_sha256: Annotated[str | None, Header(pattern=SHA256_PATTERN)] = None,
    operation_id: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")] = None,
    attempt: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> ArtifactView:
    """Store the raw request body; with ``X-Content-SHA256`` a corrupted transfer is refused.

    ``operation_id`` and ``attempt`` name the attempt the upload belongs to: a worker token
    must name them, and they must be the attempt its worker holds (403 otherwise)."""
    if principal.role == Role.WORKER:
        await check_scope(request, principal, "upload", operation_id, attempt)
    limit = backend.settings.max_upload_bytes
    check_declared_length(request, limit)
    stored = await backend.store.put_async(
        request.stream(), max_bytes=limit, expected_sha256=x_content_sha256
    )
    with backend.sessions.begin() as session:
        row = catalog.record_artifact(
            session, stored.sha256, kind, stored.size, backend.operations.clock()
        )
        return catalog.artifact_view(session, row)


@router.get(
    "/{sha256}/info", responses={404: {}}, dependencies=[requires(Role.READER, Role.WORKER)]
)
def info(sha256: ShaPath, session: SessionDep) -> ArtifactView:
    row = catalog.artifact(session, sha256)
    if row is None:
        raise ArtifactNotFound(f"artifact {sha256} is not in the store")
    return catalog.artifact_view(session, row)


@router.head("/{sha256}", responses={404: {}}, dependencies=[requires(Role.READER, Role.WORKER)])
def exists(sha256: ShaPath, session: SessionDep, backend: BackendDep) -> Response:
    """200 when stored (upload can be skipped), 404 otherwise."""
    row = catalog.artifact(session, sha256)
    if row is None or not backend.store.exists(sha256):
        return Response(status_code=404)
    return Response(status_code=200, headers={"content-length": str(row.size)})


@router.get(
    "/{sha256}",
    response_class=FileResponse,
    responses={404: {}},
    dependencies=[requires(Role.READER, Role.WORKER)],
)
def download(sha256: ShaPath, session: SessionDep, backend: BackendDep) -> FileResponse:
    """The file's bytes; verify them against the sha256 in the URL."""
    row = catalog.artifact(session, sha256)
    if row is None:
        raise ArtifactNotFound(f"artifact {sha256} is not in the store")
    return file_response(backend, sha256, ArtifactKind(row.kind), filename=sha256)


def file_response(
    backend: BackendDep,
    sha256: str,
    kind: ArtifactKind,
    *,
    filename: str,
    media_type: str | None = None,
) -> FileResponse:
    """Stream a stored file with its checksum in ``X-Content-SHA256`` and the ETag."""
    if not backend.store.exists(sha256):
        raise ArtifactNotFound(f"artifact {sha256} is not in the store")
    return FileResponse(
        backend.store.path(sha256),
        media_type=media_type or MEDIA_TYPES.get(kind, "application/octet-stream"),
        filename=filename,
        headers={"X-Content-SHA256": sha256, "ETag": f'"{sha256}"'},
    )


Reported = BacktestResultView | WalkforwardResult
"""A result that names a report and its page's series."""


def finished_result(view: OperationView, noun: str) -> Reported:
    """The result of a completed operation; 409 while ``noun`` (backtest, walk-forward) has
    none yet."""
    result = view.result
    if view.state != OperationState.COMPLETED or not isinstance(result, Reported):
        raise OperationConflict(
            f"{noun} {view.operation_id} is {view.state}: its report exists once it completes"
        )
    return result


def series_response(backend: BackendDep, result: Reported, *, noun: str) -> FileResponse:
    """The series a result's page draws (``series_sha256``); 404 for a result from before
    the worker wrote them."""
    if result.series_sha256 is None:
        raise ArtifactNotFound(
            f"{noun} has no page series (it ran before workers wrote them): run it again"
        )
    return file_response(
        backend,
        result.series_sha256,
        ArtifactKind.SERIES,
        filename=f"{noun.split()[-1]}_series.json",
    )
