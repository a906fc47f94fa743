"""Runs as the dashboard shows them: trainings, backtests and walk-forwards as experiments
(``ktrdr_core.runs``: the same records and diff as `ktrdr runs list | diff`). Pure Python:
the records are flattened inputs and the numbers the workers reported."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ktrdr_api import catalog
from ktrdr_api.auth import requires
from ktrdr_api.catalog import NotFound
from ktrdr_api.deps import BackendDep
from ktrdr_core.access import Role
from ktrdr_core.runs import RUN_KINDS, diff_runs, look_up_record, run_record

router = APIRouter(prefix="/runs", tags=["runs"])

RunId = Annotated[str, Query(max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]


@router.get("", dependencies=[requires(Role.READER)])
def list_runs(
    backend: BackendDep,
    strategy: Annotated[
        str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Runs newest first, of one strategy name when given: each one's record (parameters,
    data, seed, versions, metrics)."""
    views = backend.operations.list_operations(limit=limit, strategy_name=strategy)
    return [asdict(run_record(v)) for v in views if str(v.kind) in RUN_KINDS]


@router.get("/diff", responses={404: {}, 422: {}}, dependencies=[requires(Role.READER)])
def diff(a: RunId, b: RunId, backend: BackendDep) -> dict[str, Any]:
    """Two runs side by side, as `ktrdr runs diff A B`: what changed (parameters, data, seed,
    code) and each metric's value in both with b − a."""

    def strategy_of_model(model_id: str) -> str | None:
        with backend.sessions() as session:
            try:
                row = catalog.model(session, model_id)
            except NotFound:
                return None
            training_id = row.training_operation_id
        if training_id is None:
            return None
        return getattr(backend.operations.get(training_id).inputs, "strategy_yaml", None)

    first = look_up_record(a, backend.operations.get, strategy_of_model)
    second = look_up_record(b, backend.operations.get, strategy_of_model)
    result = diff_runs(first, second)
    return {
        "a": asdict(first),
        "b": asdict(second),
        "same_inputs": result.same_inputs,
        "parameters": result.parameters,
        "data": result.data,
        "seed": result.seed,
        "versions": result.versions,
        "metrics": result.metrics,
    }
