"""Training: start one from a strategy file (and overrides); 422 names missing data."""

from __future__ import annotations

from fastapi import APIRouter

from ktrdr_api.deps import BackendDep, backend_versions
from ktrdr_api.responses import ModelResponse, model_response
from ktrdr_api.strategies import check_strategy, required_data
from ktrdr_core.protocol import OperationView, TrainingInputs, TrainingRequest

router = APIRouter(prefix="/training", tags=["training"])

# A worker without these devices cannot honour a strategy that names them.
_DEVICE_BOUND = ("cuda", "mps")


@router.post(
    "",
    status_code=201,
    response_model=OperationView,
    responses={422: {"description": "strategy issues (`issues`) or missing data (`missing`)"}},
)
def start_training(request: TrainingRequest, backend: BackendDep) -> ModelResponse:
    """Create a pending training operation recording everything that reproduces it."""
    strategy, effective_text = check_strategy(request.strategy, request.overrides)
    with backend.sessions() as session:
        data = required_data(session, strategy)
    inputs = TrainingInputs(
        strategy_name=strategy.name,
        strategy_yaml=effective_text,
        strategy_hash=strategy.strategy_hash(),
        overrides=request.overrides,
        data=data,
        seed=strategy.training.seed,
        device=strategy.training.device,
        versions=backend_versions(),
    )
    device = strategy.training.device
    view = backend.operations.create(
        inputs,
        device=device if device in _DEVICE_BOUND else None,
        references=[ref.checksum for ref in data],
    )
    return model_response(view, status_code=201)
