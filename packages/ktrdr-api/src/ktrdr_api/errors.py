"""One table from ktrdr's own errors to HTTP answers, so routes just raise."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ktrdr_api.artifacts import ArtifactError, ArtifactNotFound, ArtifactTooLarge
from ktrdr_api.catalog import InUse, NotFound
from ktrdr_api.datasets import ConcurrentImport, DataInvalid
from ktrdr_api.operations import (
    InvalidOutcome,
    OperationConflict,
    OperationNotFound,
    WorkerNotFound,
)
from ktrdr_api.strategies import MissingData, StrategyInvalid
from ktrdr_api.workers import ProtocolMismatch, RegistrationConflict
from ktrdr_core.bundles import BundleError

STATUS: tuple[tuple[type[Exception], int], ...] = (
    (OperationNotFound, 404),
    (WorkerNotFound, 404),
    (NotFound, 404),
    (ArtifactNotFound, 404),
    (OperationConflict, 409),
    (RegistrationConflict, 409),
    (InUse, 409),
    (ConcurrentImport, 409),
    (ArtifactTooLarge, 413),
    (InvalidOutcome, 422),
    (ArtifactError, 422),
    (BundleError, 422),
    (DataInvalid, 422),
    (StrategyInvalid, 422),
    (MissingData, 422),
    (ProtocolMismatch, 426),
)
"""Most specific first: an ArtifactNotFound is an ArtifactError but answers 404."""


def install(app: FastAPI) -> None:
    """Register a handler per error class: ``{"detail": str(error)}`` with its status, plus
    the error's ``details`` mapping (issues by line or path, missing data) when it has one."""
    for error_class, status in STATUS:
        app.add_exception_handler(error_class, _handler(status))


def _handler(status: int):  # type: ignore[no-untyped-def]
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        details = getattr(exc, "details", None) or {}
        return JSONResponse(status_code=status, content={"detail": str(exc), **details})

    return handle
