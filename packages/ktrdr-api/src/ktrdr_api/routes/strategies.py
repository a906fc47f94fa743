"""Strategies: validate a strategy file (with overrides) without starting anything."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from ktrdr_api.auth import requires
from ktrdr_api.strategies import check_strategy
from ktrdr_core.access import Role
from ktrdr_core.protocol import StrategyValidation, StrategyValidationRequest

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
