"""The walk-forward orchestrator with the workers played by the test: fold children are
created per role, a failed fold fails the walk-forward only once nothing else runs, a retry
reuses what completed, a cancel reaches every child, and a role is never created twice."""

from __future__ import annotations

import pytest

from ktrdr_api.lifecycle import OperationConflict
from ktrdr_core.client import KtrdrClient
from ktrdr_core.errors import ApiError
from ktrdr_core.examples import read_example
from ktrdr_core.protocol import (
    ArtifactKind,
    ChildRole,
    OperationKind,
    OperationState,
    TrainingResult,
    WorkerRegistration,
)
from tests.support.bundles import bundle_bytes
from tests.support.market_data import packaged_csv

STRATEGY = read_example("rsi_zones")
ON_GOOG = {"data.symbols": ["GOOG"], "training.epochs": 2}


@pytest.fixture
def kc(client):
    with KtrdrClient("http://testserver", token="", transport=client._transport) as typed:
        typed.import_data("GOOG", "1d", packaged_csv("GOOG.csv"))
        typed.register_worker(WorkerRegistration(worker_id="t1", kind=OperationKind.TRAINING))
        yield typed


def _roles(kc, parent_id: str) -> dict:
    return {c.role: c for c in kc.get_walkforward(parent_id).children}


def _train(kc, tmp_path, features: list[str], *, fail: bool = False) -> str:
    """Claim the oldest training as worker t1 and complete (or fail) it; its operation id."""
    offer = kc.claim("t1", timeout_s=0)
    assert offer is not None, "no training operation to claim"
    if fail:
        kc.fail_operation("t1", offer.operation_id, offer.attempt, "LabelError: all HOLD")
        return offer.operation_id
    path = tmp_path / f"{offer.operation_id}.zip"
    path.write_bytes(bundle_bytes(feature_names=features, weights=offer.operation_id.encode()))
    sha = kc.upload_artifact(path, ArtifactKind.BUNDLE).sha256
    kc.complete_operation(
        "t1", offer.operation_id, offer.attempt, TrainingResult(bundle_sha256=sha)
    )
    return offer.operation_id


def test_the_folds_become_training_children_with_their_own_windows(kc):
    started = kc.start_walkforward(STRATEGY, ON_GOOG, folds=3, train_blocks=2)
    assert started.state == OperationState.RUNNING and started.worker_id is None
    plan = started.inputs.folds
    assert plan[0].train_start.isoformat() == "2010-01-01"  # the example's data.start
    assert plan[-1].test_end.isoformat() == "2013-03-01"  # and its last
    roles = _roles(kc, started.operation_id)
    assert set(roles) == {"train:0", "train:1", "train:2"}
    for fold in plan:
        child = roles[f"train:{fold.index}"]
        assert child.kind == OperationKind.TRAINING and child.state == OperationState.PENDING
        assert child.parent_id == started.operation_id
        assert child.inputs.overrides["data.start"] == fold.train_start.isoformat()
        assert child.inputs.overrides["data.end"] == fold.train_end.isoformat()
        assert f'"end": "{fold.train_end.isoformat()}"' in child.inputs.strategy_yaml
        # The embargo (the label horizon, in bars) separates training from test.
        assert fold.train_end < fold.test_start
    assert started.progress.message == "0/3 folds trained, 0/3 backtested"


def test_a_failed_fold_fails_the_walkforward_once_the_rest_ended_and_retry_reruns_it(
    kc, backend, tmp_path
):
    features = kc.validate_strategy(STRATEGY, ON_GOOG).features
    started = kc.start_walkforward(STRATEGY, ON_GOOG, folds=2, train_blocks=2)
    parent = started.operation_id
    failed = _train(kc, tmp_path, features, fail=True)
    bad = kc.get_operation(failed).role  # the fold claimed first (same creation time)
    backend.walkforwards.advance(parent)
    assert kc.get_operation(parent).state == OperationState.RUNNING  # the other still pending

    completed = _train(kc, tmp_path, features)
    good = kc.get_operation(completed).role.replace("train:", "")
    backend.walkforwards.advance(parent)
    roles = _roles(kc, parent)
    assert f"backtest:{good}" in roles, "a trained fold gets its backtest at once"
    kc.cancel_operation(roles[f"backtest:{good}"].operation_id)
    backend.walkforwards.advance(parent)
    ended = kc.get_operation(parent)
    assert ended.state == OperationState.FAILED
    assert f"{bad}: {failed} failed (LabelError: all HOLD)" in ended.error
    cancelled = roles[f"backtest:{good}"].operation_id
    assert f"backtest:{good}: {cancelled} was cancelled" in ended.error
    assert f"ktrdr ops retry {parent}" in ended.error

    retry = kc.retry_operation(parent)
    assert retry.kind == OperationKind.WALKFORWARD and retry.state == OperationState.RUNNING
    assert retry.inputs.reuse == {f"train:{good}": completed}
    backend.walkforwards.advance(retry.operation_id)
    fresh = _roles(kc, retry.operation_id)
    # The failed fold trains again; the other's model is reused, only its backtest reruns.
    assert set(fresh) == {bad, f"backtest:{good}"}
    model_id = kc.get_operation(completed).result["model_id"]
    assert fresh[f"backtest:{good}"].inputs.model_id == model_id


def test_cancelling_a_walkforward_cancels_its_children(kc, backend):
    started = kc.start_walkforward(STRATEGY, ON_GOOG, folds=2, train_blocks=1)
    kc.cancel_operation(started.operation_id)
    backend.walkforwards.advance(started.operation_id)
    ended = kc.get_operation(started.operation_id)
    assert ended.state == OperationState.CANCELLED
    children = kc.get_walkforward(started.operation_id).children
    assert {c.state for c in children} == {OperationState.CANCELLED}
    with pytest.raises(ApiError) as caught:
        kc.cancel_operation(started.operation_id)
    assert caught.value.status == 409


def test_a_role_is_created_once_however_passes_race(kc, backend):
    started = kc.start_walkforward(STRATEGY, ON_GOOG, folds=2, train_blocks=1)
    child = _roles(kc, started.operation_id)["train:0"]
    with pytest.raises(OperationConflict, match="already has its train:0"):
        backend.operations.create(
            child.inputs, parent_id=started.operation_id, role=ChildRole.train(0)
        )
    backend.walkforwards.advance(started.operation_id)
    backend.walkforwards.advance(started.operation_id)
    assert len(kc.get_walkforward(started.operation_id).children) == 2


def test_folds_that_do_not_fit_the_data_are_a_422_naming_the_problem(kc):
    with pytest.raises(ApiError) as caught:
        kc.start_walkforward(
            STRATEGY, {**ON_GOOG, "data.start": "2013-02-20"}, folds=4, train_blocks=3
        )
    assert caught.value.status == 422
    assert "10 days cannot hold 4 folds" in str(caught.value)
    with pytest.raises(ApiError) as caught:
        kc.start_walkforward(STRATEGY, {**ON_GOOG, "data.symbols": ["GOOG", "AAPL"]}, folds=2)
    assert caught.value.status == 422 and "no data for AAPL 1d" in str(caught.value)


def test_several_symbols_walk_forward_on_the_calendar_they_share(kc, tmp_path):
    from tests.support.market_data import sp500_daily_csv

    # GOOG runs to 2013-03-01; these S&P 500 bars from 2009-06-01 to 2012-06-29.
    csv = sp500_daily_csv(tmp_path / "sp500.csv", first="2009-06-01", last="2012-06-29")
    kc.import_data("SP500", "1d", csv)
    both = {**ON_GOOG, "data.symbols": ["GOOG", "SP500"]}
    with pytest.raises(ApiError) as caught:  # the example asks for 2010 … 2023
        kc.start_walkforward(STRATEGY, both, folds=2)
    assert caught.value.status == 422
    assert "SP500 1d from 2012-06-30 to 2013-03-01" in str(caught.value)

    started = kc.start_walkforward(STRATEGY, {**both, "data.end": "2012-06-29"}, folds=2)
    plan = started.inputs.folds
    assert plan[0].train_start.isoformat() == "2010-01-01"
    assert plan[-1].test_end.isoformat() == "2012-06-29"
    assert {ref.symbol for ref in started.inputs.data} == {"GOOG", "SP500"}
    trainings = [c for role, c in _roles(kc, started.operation_id).items() if "train" in role]
    assert len(trainings) == 2
    for child in trainings:
        assert {ref.symbol for ref in kc.get_operation(child.operation_id).inputs.data} == {
            "GOOG",
            "SP500",
        }
