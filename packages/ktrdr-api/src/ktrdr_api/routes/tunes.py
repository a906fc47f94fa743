"""Parameter searches: start a study, list and show studies with their trials, the best
strategy; and the calls the study's driver makes as the worker holding it (read the study,
create a trial, prune one, wait for its trials to change, keep the best trials' bundles).

Cancel and retry go through /operations like every other operation.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool

from ktrdr_api.auth import requires
from ktrdr_api.deps import BackendDep, OperationIdPath
from ktrdr_api.responses import ModelResponse, model_response
from ktrdr_core.access import Role
from ktrdr_core.protocol import (
    WORKER_ID_PATTERN,
    AttemptRef,
    BundleKeeping,
    OperationState,
    OperationView,
    TrialRequest,
    TrialView,
    TrialWatch,
    TuneListing,
    TuneRequest,
    TuneView,
)

router = APIRouter(tags=["tunes"])

WorkerIdPath = Annotated[str, Path(pattern=WORKER_ID_PATTERN)]


@router.post(
    "/tunes",
    status_code=201,
    response_model=OperationView,
    responses={422: {"description": "strategy or search-space issues (file, line, path)"}},
    dependencies=[requires(Role.RESEARCHER)],
)
async def start_tune(request: TuneRequest, backend: BackendDep) -> ModelResponse:
    """Check the strategy and the search space against its schema, every problem at once,
    then queue the study for a backtest worker, whose slot its driver holds throughout."""
    view = await run_in_threadpool(backend.tunes.start, request)
    return model_response(view, status_code=201)


@router.get("/tunes", dependencies=[requires(Role.READER)])
def list_tunes(
    backend: BackendDep,
    state: OperationState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TuneListing]:
    """Studies, newest first, each with its trials ended so far and its best value."""
    return backend.tunes.listing(state, limit)


@router.get("/tunes/{operation_id}", responses={404: {}}, dependencies=[requires(Role.READER)])
def get_tune(operation_id: OperationIdPath, backend: BackendDep) -> TuneView:
    """The study with every trial (parameters, objective, folds, state, duration, workers)
    and the holdout re-evaluations."""
    return backend.tunes.view(operation_id)


@router.get(
    "/tunes/{operation_id}/best",
    responses={404: {}, 409: {"description": "no completed trial yet"}},
    dependencies=[requires(Role.READER)],
)
def best(operation_id: OperationIdPath, backend: BackendDep) -> dict[str, Any]:
    """The best trial, its holdout run, and the strategy with its parameters (YAML text)."""
    return backend.tunes.best_strategy(operation_id)


@router.get(
    "/workers/{worker_id}/tunes/{operation_id}",
    responses={404: {}, 409: {"description": "this attempt does not hold the study"}},
    dependencies=[requires(Role.WORKER)],
)
def driver_view(
    worker_id: WorkerIdPath,
    operation_id: OperationIdPath,
    backend: BackendDep,
    attempt: Annotated[int, Query(ge=1)],
) -> TuneView:
    """The study as its driver rebuilds it: only the worker holding it, at its attempt."""
    backend.tunes.held(worker_id, operation_id, attempt)
    return backend.tunes.view(operation_id)


@router.post(
    "/workers/{worker_id}/tunes/{operation_id}/trials",
    status_code=201,
    response_model=TrialView,
    responses={404: {}, 409: {}, 422: {}},
    dependencies=[requires(Role.WORKER)],
)
async def create_trial(
    worker_id: WorkerIdPath,
    operation_id: OperationIdPath,
    request: TrialRequest,
    backend: BackendDep,
) -> ModelResponse:
    """Trial ``number`` with ``params`` as a child walk-forward of the study (the same one
    again when it exists); only the worker holding the study, at its attempt."""
    view = await run_in_threadpool(backend.tunes.create_trial, worker_id, operation_id, request)
    return model_response(view, status_code=201)


@router.post(
    "/workers/{worker_id}/tunes/{operation_id}/trials/{number}/prune",
    response_model=TrialView,
    responses={404: {}, 409: {}},
    dependencies=[requires(Role.WORKER)],
)
def prune_trial(
    worker_id: WorkerIdPath,
    operation_id: OperationIdPath,
    number: Annotated[int, Path(ge=0, le=100_000)],
    attempt: AttemptRef,
    backend: BackendDep,
) -> TrialView:
    """Stop a trial whose folds fell below the median (``--prune``): its unfinished folds
    are cancelled; only the worker holding the study, at its attempt."""
    return backend.tunes.prune(worker_id, operation_id, number, attempt.attempt)


@router.post(
    "/workers/{worker_id}/tunes/{operation_id}/changes",
    responses={404: {}, 409: {"description": "this attempt does not hold the study"}},
    dependencies=[requires(Role.WORKER)],
)
async def watch_trials(
    worker_id: WorkerIdPath,
    operation_id: OperationIdPath,
    request: TrialWatch,
    backend: BackendDep,
) -> list[TrialView]:
    """A long poll: the watched trials that ended or completed another fold since the driver
    last saw them, as soon as there are some (at most ``wait_s`` seconds; none when the wait
    ran out). Only the worker holding the study, at its attempt."""
    return await backend.tunes.wait_for_changes(worker_id, operation_id, request)


@router.post(
    "/workers/{worker_id}/tunes/{operation_id}/keep",
    responses={404: {}, 409: {"description": "this attempt does not hold the study"}},
    dependencies=[requires(Role.WORKER)],
)
async def keep_bundles(
    worker_id: WorkerIdPath,
    operation_id: OperationIdPath,
    attempt: AttemptRef,
    backend: BackendDep,
) -> BundleKeeping:
    """Once the holdout runs ended: delete the models (fold and holdout runs) of every trial
    outside the study's ``keep_best`` best, keeping every trial's record. Idempotent; only
    the worker holding the study, at its attempt."""
    return await run_in_threadpool(
        backend.tunes.keep_bundles, worker_id, operation_id, attempt.attempt
    )
