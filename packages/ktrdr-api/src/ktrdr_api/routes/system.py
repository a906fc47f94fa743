"""Health and version: what an operator and a peer check first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from ktrdr_api.auth import requires
from ktrdr_api.db import ping
from ktrdr_core.access import Role
from ktrdr_core.version import PROTOCOL_VERSION, __version__, installed_distributions

router = APIRouter(tags=["system"])


@router.get("/health")
def health(request: Request) -> JSONResponse:
    """200 when the database answers; 503 with the reason when it does not. ``instance``
    names this backend process (``KTRDR_INSTANCE_ID``, else random per start)."""
    instance = request.app.state.instance_id
    try:
        ping(request.app.state.engine)
    except SQLAlchemyError as exc:
        reason = str(exc.__cause__ or exc).splitlines()[0]
        return JSONResponse(
            status_code=503,
            content={"status": "unavailable", "database": reason, "instance": instance},
        )
    return JSONResponse(content={"status": "ok", "database": "ok", "instance": instance})


@router.get("/version", dependencies=[requires(Role.READER, Role.WORKER)])
def version() -> dict[str, object]:
    return {
        "version": __version__,
        "protocol": PROTOCOL_VERSION,
        "distributions": installed_distributions(),
    }
