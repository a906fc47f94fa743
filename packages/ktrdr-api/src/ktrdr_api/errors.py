"""One table from ktrdr's own errors to HTTP answers, so routes just raise."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from ktrdr_api.artifacts import ArtifactError, ArtifactNotFound, ArtifactTooLarge, StorageFull
from ktrdr_api.auth import Forbidden
from ktrdr_api.catalog import ExactReportPending, InUse, NotFound
from ktrdr_api.datasets import ConcurrentImport, DataInvalid
from ktrdr_api.fetches import FetchRefused
from ktrdr_api.lifecycle import (
    InvalidOutcome,
    OperationConflict,
    OperationNotFound,
    WorkerNotFound,
)
from ktrdr_api.strategies import MissingData, StrategyInvalid
from ktrdr_api.workers import ProtocolMismatch, RegistrationConflict
from ktrdr_core.bundles import BundleError
from ktrdr_core.exchanges import UnknownExchange
from ktrdr_core.runs import NotARun

log = logging.getLogger("ktrdr_api")

STATUS: tuple[tuple[type[Exception], int], ...] = (
    (Forbidden, 403),
    (OperationNotFound, 404),
    (WorkerNotFound, 404),
    (NotFound, 404),
    (ArtifactNotFound, 404),
    (OperationConflict, 409),
    (RegistrationConflict, 409),
    (InUse, 409),
    (ExactReportPending, 409),
    (ConcurrentImport, 409),
    (ArtifactTooLarge, 413),
    (StorageFull, 503),
    (InvalidOutcome, 422),
    (ArtifactError, 422),
    (BundleError, 422),
    (DataInvalid, 422),
    (FetchRefused, 422),
    (StrategyInvalid, 422),
    (MissingData, 422),
    (UnknownExchange, 422),
    (NotARun, 422),
    (ProtocolMismatch, 426),
)
"""Each error class and its status. Starlette picks the handler of the nearest class in the
error's own hierarchy (its MRO), not the first listed, so an ArtifactNotFound answers 404
although it is also an ArtifactError (422); the order here is only for the reader."""


def install(app: FastAPI) -> None:
    """Register a handler per error class: ``{"detail": str(error)}`` with its status, plus
    the error's ``details`` mapping (issues by line or path, missing data) when it has one."""
    for error_class, status in STATUS:
        app.add_exception_handler(error_class, _handler(status))
    app.add_exception_handler(DBAPIError, _database_unavailable)


def _handler(status: int):  # type: ignore[no-untyped-def]
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        details = getattr(exc, "details", None) or {}
        return JSONResponse(status_code=status, content={"detail": str(exc), **details})

    return handle


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database refused or dropped the connection (stopped, restarting, unreachable):
    503, so clients and workers retry, instead of a 500 that reads like a bug. Errors the
    database raises about a statement (constraint, syntax) are re-raised: those are bugs."""
    assert isinstance(exc, DBAPIError)
    if not (exc.connection_invalidated or _is_connection_error(exc)):
        raise exc
    reason = str(exc.orig or exc).strip().splitlines()[0]
    log.warning("%s %s: database unavailable: %s", request.method, request.url.path, reason)
    return JSONResponse(
        status_code=503,
        content={"detail": f"the database is unavailable ({reason}); try again shortly"},
        headers={"Retry-After": "1"},
    )


def _is_connection_error(exc: DBAPIError) -> bool:
    # OperationalError: refused, reset, server shutting down, SQLite busy or locked;
    # InterfaceError: the driver's connection object is already closed.
    return isinstance(exc, OperationalError | InterfaceError)
