"""Training: start one from a strategy file (and overrides); 422 names missing data."""

from __future__ import annotations

from fastapi import APIRouter

from ktrdr_api.auth import requires
from ktrdr_api.deps import BackendDep
from ktrdr_api.responses import ModelResponse, model_response
from ktrdr_api.strategies import (
    check_data_overlap,
    check_strategy,
    required_data,
    training_inputs,
)
from ktrdr_core.access import Role
from ktrdr_core.protocol import OperationView, TrainingRequest

router = APIRouter(prefix="/training", tags=["training"])


@router.post(
    "",
    status_code=201,
    response_model=OperationView,
    responses={422: {"description": "strategy issues (`issues`) or missing data (`missing`)"}},
    dependencies=[requires(Role.RESEARCHER)],
)
def start_training(request: TrainingRequest, backend: BackendDep) -> ModelResponse:
    """Create a pending training operation recording everything that reproduces it."""
    strategy, effective_text = check_strategy(request.strategy, request.overrides)
    with backend.sessions() as session:
        data = required_data(session, strategy)
    check_data_overlap(strategy, data)
    inputs, device = training_inputs(strategy, effective_text, request.overrides, data)
    view = backend.operations.create(
        inputs, device=device, references=[ref.checksum for ref in data]
    )
    return model_response(view, status_code=201)
