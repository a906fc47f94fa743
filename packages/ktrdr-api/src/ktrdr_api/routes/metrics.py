"""Prometheus scrape target: ``GET /metrics`` (outside /api/v1, where scrapers look).

With ``KTRDR_API_TOKEN`` set it needs the token like every route but health: the numbers say
what runs where, and Prometheus sends a bearer token from its scrape configuration
(``authorization: {credentials_file: ...}``).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from ktrdr_api.auth import requires
from ktrdr_api.deps import BackendDep
from ktrdr_api.metrics import CONTENT_TYPE
from ktrdr_core.access import Role

router = APIRouter(tags=["system"])


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[requires(Role.READER)])
def scrape(backend: BackendDep) -> PlainTextResponse:
    """Queue depth, operations by state, workers by status, transitions, request latencies
    (Prometheus text format 0.0.4)."""
    return PlainTextResponse(backend.metrics.render(), media_type=CONTENT_TYPE)
