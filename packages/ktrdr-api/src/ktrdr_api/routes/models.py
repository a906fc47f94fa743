"""Models: import a bundle, list, describe one (its bundle.json), download, delete."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy.exc import IntegrityError

from ktrdr_api import catalog, model_bundles
from ktrdr_api.artifacts import ChecksumMismatch
from ktrdr_api.auth import requires
from ktrdr_api.deps import AuditDep, Backend, BackendDep, SessionDep
from ktrdr_api.routes.artifacts import check_declared_length, file_response
from ktrdr_core.access import Role
from ktrdr_core.checksums import file_sha256
from ktrdr_core.protocol import ID_PATTERN, SHA256_PATTERN, ArtifactKind, ModelView

router = APIRouter(prefix="/models", tags=["models"])
log = logging.getLogger("ktrdr_api.models")

ModelIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


@router.post(
    "",
    status_code=201,
    responses={
        200: {"description": "this bundle is catalogued already: the existing model"},
        413: {},
        422: {"description": "not a usable model bundle; the detail says what is wrong"},
    },
    openapi_extra={
        "requestBody": {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}
        }
    },
    dependencies=[requires(Role.RESEARCHER)],
)
async def import_model(
    request: Request,
    response: Response,
    backend: BackendDep,
    auditor: AuditDep,
    x_content_sha256: Annotated[str | None, Header(pattern=SHA256_PATTERN)] = None,
) -> ModelView:
    """Import a bundle zip trained elsewhere (the raw request body, streamed, size-limited).

    Its ``bundle.json`` is validated against the ktrdr-core schema and its weights against
    their recorded sha256; nothing is unpickled. The data it names is recorded as the
    manifest says (version 0): this backend may not hold it. A backtest uses this backend's
    newest data of the same symbols and timeframe. Importing the same bundle again answers
    200 with the existing model.
    """
    limit = backend.settings.max_upload_bytes
    check_declared_length(request, limit)
    staged = await backend.store.stage(request.stream(), max_bytes=limit)
    try:
        # Hashing and unzipping read the whole file: off the event loop.
        view, created = await asyncio.to_thread(_import, backend, staged, x_content_sha256)
    finally:
        staged.unlink(missing_ok=True)
    if not created:
        response.status_code = 200
    else:
        auditor(
            "model.import", f"{view.model_id} {view.name}", detail=f"bundle {view.bundle_sha256}"
        )
    return view


def _import(
    backend: Backend, staged: FilePath, expected_sha256: str | None
) -> tuple[ModelView, bool]:
    """Check, store and catalogue a staged bundle: (the model, whether it is new).

    Everything is checked before the file enters the store, so a refused upload leaves
    nothing behind.
    """
    sha = file_sha256(staged)
    if expected_sha256 is not None and sha != expected_sha256:
        raise ChecksumMismatch(
            f"upload has sha256 {sha} but the sender announced {expected_sha256}: "
            "the transfer was corrupted or the wrong file was sent"
        )
    manifest = model_bundles.read_model_bundle(staged, sha)
    data = model_bundles.imported_data(manifest, sha)
    stored = backend.store.adopt(staged, expected_sha256=sha)
    now = backend.operations.clock()
    try:
        with backend.sessions.begin() as session:
            catalog.record_artifact(session, stored.sha256, ArtifactKind.BUNDLE, stored.size, now)
            existing = catalog.model_with_bundle(session, stored.sha256)
            if existing is not None:
                return catalog.model_view(session, existing), False
            row = catalog.import_model(session, stored.sha256, manifest, data, now=now)
            view = catalog.model_view(session, row)
    except IntegrityError:
        # The same file imported at the same moment: the other import made the row.
        with backend.sessions() as session:
            existing = catalog.model_with_bundle(session, stored.sha256)
            if existing is None:
                raise
            return catalog.model_view(session, existing), False
    log.info(
        "model %s imported: %s, bundle %s, trained on %s",
        view.model_id,
        view.name,
        view.bundle_sha256[:12],
        ", ".join(f"{d.symbol} {d.timeframe.value}" for d in view.data) or "no data",
    )
    return view, True


@router.get("", dependencies=[requires(Role.READER)])
def list_models(session: SessionDep) -> list[ModelView]:
    """Newest first."""
    return [catalog.model_view(session, row) for row in catalog.models(session)]


@router.get("/{model_id}", responses={404: {}}, dependencies=[requires(Role.READER)])
def get_model(model_id: ModelIdPath, session: SessionDep) -> ModelView:
    return catalog.model_view(session, catalog.model(session, model_id))


@router.get(
    "/{model_id}/bundle",
    response_class=FileResponse,
    responses={404: {}},
    dependencies=[requires(Role.READER)],
)
def download(model_id: ModelIdPath, session: SessionDep, backend: BackendDep) -> FileResponse:
    """The bundle zip; ``X-Content-SHA256`` carries its checksum."""
    row = catalog.model(session, model_id)
    return file_response(
        backend, row.bundle_sha256, ArtifactKind.BUNDLE, filename=f"{row.name}_{row.id}.zip"
    )


@router.delete(
    "/{model_id}", responses={404: {}, 409: {}}, dependencies=[requires(Role.RESEARCHER)]
)
def delete(
    model_id: ModelIdPath, backend: BackendDep, auditor: AuditDep, force: bool = False
) -> ModelView:
    """Delete a model; 409 names the live backtests using it unless ``force``."""
    view = model_bundles.delete_model(backend.sessions, backend.store, model_id, force=force)
    auditor("model.delete", f"{view.model_id} {view.name}", detail="force" if force else None)
    return view
