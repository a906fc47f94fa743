"""Models: list trained bundles, describe one (its bundle.json), download, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from ktrdr_api import catalog
from ktrdr_api.deps import BackendDep, SessionDep
from ktrdr_api.routes.artifacts import file_response
from ktrdr_core.protocol import ID_PATTERN, ArtifactKind, ModelView

router = APIRouter(prefix="/models", tags=["models"])

ModelIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


@router.get("")
def list_models(session: SessionDep) -> list[ModelView]:
    """Newest first."""
    return [catalog.model_view(session, row) for row in catalog.models(session)]


@router.get("/{model_id}", responses={404: {}})
def get_model(model_id: ModelIdPath, session: SessionDep) -> ModelView:
    return catalog.model_view(session, catalog.model(session, model_id))


@router.get("/{model_id}/bundle", response_class=FileResponse, responses={404: {}})
def download(model_id: ModelIdPath, session: SessionDep, backend: BackendDep) -> FileResponse:
    """The bundle zip; ``X-Content-SHA256`` carries its checksum."""
    row = catalog.model(session, model_id)
    return file_response(
        backend, row.bundle_sha256, ArtifactKind.BUNDLE, filename=f"{row.name}_{row.id}.zip"
    )


@router.delete("/{model_id}", responses={404: {}, 409: {}})
def delete(model_id: ModelIdPath, backend: BackendDep, force: bool = False) -> ModelView:
    """Delete a model; 409 names the live backtests using it unless ``force``."""
    with backend.sessions.begin() as session:
        row = catalog.model(session, model_id)
        view = catalog.model_view(session, row)
        referrer = f"model:{row.id}"
        blockers = [b for b in catalog.blocking_users(session, row.bundle_sha256) if b != referrer]
        if blockers and not force:
            raise catalog.InUse(
                f"model {row.id} is used by {', '.join(blockers)}; "
                "delete with force=true to remove it anyway"
            )
        used = catalog.references_of(session, referrer)
        catalog.drop_references(session, referrer)
        session.delete(row)
        session.flush()
        # The bundle and the data it was trained on go when nothing else uses them; data
        # files stay while their dataset versions are catalogued.
        unused = [sha for sha in used if catalog.release_artifact(session, sha)]
    for sha in unused:
        backend.store.delete(sha)
    return view
