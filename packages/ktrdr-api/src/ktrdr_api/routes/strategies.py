"""Strategies: validate a strategy file (with overrides) without starting anything; audit one
on stored data (a ``strategy_audit`` operation on a training worker)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from ktrdr_api.auth import requires
from ktrdr_api.deps import BackendDep, OperationIdPath
from ktrdr_api.lifecycle import OperationNotFound
from ktrdr_api.responses import ModelResponse, model_response
from ktrdr_api.strategies import audit_inputs, check_data_overlap, check_strategy, required_data
from ktrdr_core.access import Role
from ktrdr_core.protocol import (
    OperationKind,
    OperationState,
    OperationView,
    StrategyAuditRequest,
    StrategyValidation,
    StrategyValidationRequest,
)

router = APIRouter(prefix="/strategies", tags=["strategies"])


@router.post(
    "/validate",
    responses={422: {"description": "every problem, each with its key path (`issues`)"}},
    dependencies=[requires(Role.READER)],
)
async def validate(request: StrategyValidationRequest) -> StrategyValidation:
    """200 with the name, hash and ordered feature names; 422 listing every issue."""
    strategy, _ = await asyncio.to_thread(check_strategy, request.strategy, request.overrides)
    return StrategyValidation(
        valid=True,
        name=strategy.name,
        strategy_hash=strategy.strategy_hash(),
        features=strategy.feature_names(),
    )


@router.post(
    "/audits",
    status_code=201,
    response_model=OperationView,
    responses={
        404: {"description": "no such model"},
        422: {"description": "strategy issues (`issues`) or missing data (`missing`)"},
    },
    dependencies=[requires(Role.RESEARCHER)],
)
def start_audit(request: StrategyAuditRequest, backend: BackendDep) -> ModelResponse:
    """Audit a strategy on ``symbol``'s stored data: a pending ``strategy_audit`` operation
    whose result is the audit report (``ktrdr_core.strategy_audit``)."""
    overrides = {**request.overrides, "data.symbols": [request.symbol]}
    strategy, effective_text = check_strategy(request.strategy, overrides)
    audited = request.model_copy(update={"overrides": overrides})
    with backend.sessions() as session:
        data = required_data(session, strategy)
        check_data_overlap(strategy, data)
        inputs, device = audit_inputs(session, strategy, effective_text, audited, data)
    references = [ref.checksum for ref in data]
    if inputs.bundle_sha256:
        references.append(inputs.bundle_sha256)
    view = backend.operations.create(inputs, device=device, references=references)
    return model_response(view, status_code=201)


@router.get("/audits", dependencies=[requires(Role.READER)])
def list_audits(
    backend: BackendDep,
    state: OperationState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[OperationView]:
    """Strategy audits, newest first."""
    return backend.operations.list_operations(
        kind=OperationKind.STRATEGY_AUDIT, state=state, limit=limit
    )


@router.get("/audits/{operation_id}", responses={404: {}}, dependencies=[requires(Role.READER)])
def get_audit(operation_id: OperationIdPath, backend: BackendDep) -> OperationView:
    """One audit; its ``result.report`` once completed."""
    view = backend.operations.get(operation_id)
    if view.kind != OperationKind.STRATEGY_AUDIT:
        raise OperationNotFound(
            f"operation {operation_id} is a {view.kind} operation, not a strategy audit"
        )
    return view
