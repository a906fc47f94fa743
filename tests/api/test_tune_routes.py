"""Parameter studies through the API, the driver played by the test: the space file is
checked against the strategy before anything runs (every problem, with file, line and path),
a study is a backtest worker's operation, its trials are child walk-forwards that only the
attempt holding the study may create (once each), and cancelling the study cancels them."""

from __future__ import annotations

import pytest

from ktrdr_core.client import KtrdrClient
from ktrdr_core.errors import ApiError
from ktrdr_core.examples import read_example
from ktrdr_core.protocol import (
    OperationKind,
    OperationState,
    TrialRequest,
    TuneRequest,
    WalkforwardResult,
    WorkerRegistration,
)
from ktrdr_core.settings import Settings
from tests.support.market_data import packaged_csv
from tests.support.waiting import wait_until

STRATEGY = read_example("rsi_zones")
ON_GOOG = {"data.symbols": ["GOOG"], "data.start": "2005-01-01", "training.epochs": 2}
SPACE = """\
indicators.rsi_14.params.period: {int: [7, 28]}
training.learning_rate: {float: [1.0e-4, 1.0e-2], log: true}
model.hidden_layers: {choice: [[32], [64, 32]]}
"""


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    """Every test here on SQLite and on a real PostgreSQL."""
    home = tmp_path / "home"
    home.mkdir()
    return Settings(home=home, database_url=database_url, lease_seconds=30, max_attempts=3)


@pytest.fixture
def kc(client):
    with KtrdrClient("http://testserver", token="", transport=client._transport) as typed:
        typed.import_data("GOOG", "1d", packaged_csv("GOOG.csv"))
        for n in (1, 2):
            typed.register_worker(
                WorkerRegistration(worker_id=f"b{n}", kind=OperationKind.BACKTEST)
            )
        yield typed


def _request(space: str = SPACE, **changes) -> TuneRequest:
    fields = {"strategy": STRATEGY, "overrides": ON_GOOG, "space": space, "trials": 4}
    return TuneRequest(**(fields | {"space_name": "space.yaml"} | changes))


def test_every_problem_of_a_space_is_reported_at_once_with_its_line(kc):
    space = """\
indicators.rsi_14.params.period: {int: [1, 28]}
indicators.rsi_99.params.period: {int: [7, 28]}
training.learning_rate: {float: [0.01, 0.001]}
labels.zigzag.lookahead: {int: [5, 60]}
model.hidden_layers: {chioce: [[32]]}
"""
    with pytest.raises(ApiError) as refused:
        kc.start_tune(_request(space))
    assert refused.value.status == 422
    issues = {i["path"]: i["message"] for i in refused.value.body["issues"]}
    # The malformed ones come first: those are found before the strategy is consulted.
    assert issues == {
        "space.training.learning_rate": "space.yaml:3: low 0.01 must be below high 0.001",
        "space.model.hidden_layers": "space.yaml:5: expected exactly one of int, float or "
        "choice; found chioce",
    }
    fixed = space.replace("[0.01, 0.001]", "[0.001, 0.01]").replace("chioce", "choice")
    with pytest.raises(ApiError) as refused:
        kc.start_tune(_request(fixed))
    issues = {i["path"]: i["message"] for i in refused.value.body["issues"]}
    assert set(issues) == {
        "space.indicators.rsi_14.params.period",
        "space.indicators.rsi_99.params.period",
        "space.labels.zigzag.lookahead",
    }
    assert issues["space.indicators.rsi_14.params.period"].startswith(
        "space.yaml:1: value 1 makes the strategy invalid: indicators.rsi_14.params.period"
    )
    assert issues["space.indicators.rsi_99.params.period"].startswith(
        "space.yaml:2: names no value"
    )
    # A lookahead past the embargo (20 bars) breaks the rule that keeps labels from leaking.
    assert "embargo" in issues["space.labels.zigzag.lookahead"]
    assert kc.list_tunes() == []


def _claim_study(kc, worker: str = "b1"):
    offer = kc.claim(worker, timeout_s=0)
    assert offer is not None and offer.kind == OperationKind.TUNE
    return offer


def test_a_study_is_claimed_by_a_backtest_worker_and_its_trials_are_child_walkforwards(kc):
    started = kc.start_tune(_request())
    assert started.kind == OperationKind.TUNE and started.state == OperationState.PENDING
    inputs = started.inputs
    assert inputs.search_end < inputs.holdout_start <= inputs.holdout_end
    offer = _claim_study(kc)
    params = {"indicators.rsi_14.params.period": 21, "model.hidden_layers": [64, 32]}
    trial = kc.create_trial(
        "b1", offer.operation_id, TrialRequest(attempt=offer.attempt, number=0, params=params)
    )
    assert trial.role == "trial:0" and trial.params == params
    walkforward = kc.get_walkforward(trial.operation_id)
    assert walkforward.operation.parent_id == offer.operation_id
    assert walkforward.operation.inputs.overrides["data.end"] == inputs.search_end.isoformat()
    # No fold of a trial tests past the search range: the holdout stays unseen.
    assert max(f.test_end for f in walkforward.operation.inputs.folds) <= inputs.search_end
    again = kc.create_trial(
        "b1", offer.operation_id, TrialRequest(attempt=offer.attempt, number=0, params=params)
    )
    assert again.operation_id == trial.operation_id
    with pytest.raises(ApiError) as other:
        kc.create_trial(
            "b1", offer.operation_id, TrialRequest(attempt=offer.attempt, number=0, params={})
        )
    assert other.value.status == 409
    # Only the attempt holding the study asks for trials.
    with pytest.raises(ApiError) as stale:
        kc.create_trial(
            "b2", offer.operation_id, TrialRequest(attempt=offer.attempt, number=1, params=params)
        )
    assert stale.value.status == 409
    with pytest.raises(ApiError) as stale:
        kc.driver_tune("b1", offer.operation_id, offer.attempt + 1)
    assert stale.value.status == 409
    view = kc.driver_tune("b1", offer.operation_id, offer.attempt)
    assert [t.number for t in view.trials] == [0]
    holdout = kc.create_trial(
        "b1",
        offer.operation_id,
        TrialRequest(attempt=offer.attempt, number=0, params=params, holdout=True),
    )
    run = kc.get_walkforward(holdout.operation_id).operation.inputs
    [fold] = run.folds
    assert (fold.test_start, fold.test_end) == (inputs.holdout_start, inputs.holdout_end)
    assert fold.train_end == inputs.search_end
    assert [h.number for h in kc.get_tune(offer.operation_id).holdout] == [0]
    # `ktrdr ops list` shows the study, not its trials (`--all` shows them too).
    listed = {v.operation_id for v in kc.list_operations(top_level=True)}
    assert offer.operation_id in listed and trial.operation_id not in listed
    assert trial.operation_id in {v.operation_id for v in kc.list_operations()}


def test_parameters_the_strategy_refuses_make_a_failed_trial_with_the_reason(kc):
    started = kc.start_tune(_request())
    offer = _claim_study(kc)
    trial = kc.create_trial(
        "b1",
        started.operation_id,
        TrialRequest(
            attempt=offer.attempt, number=0, params={"indicators.rsi_14.params.period": 1}
        ),
    )
    assert trial.state == OperationState.FAILED
    assert "the parameters make no valid run" in trial.error
    assert "indicators.rsi_14.params.period" in trial.error


def test_a_retried_study_keeps_its_completed_trials(kc, backend):
    started = kc.start_tune(_request())
    offer = _claim_study(kc)
    params = {"indicators.rsi_14.params.period": 14}
    done, cut = (
        kc.create_trial(
            "b1",
            started.operation_id,
            TrialRequest(
                attempt=offer.attempt,
                number=n,
                params=params | {"indicators.rsi_14.params.period": 14 + n},
            ),
        )
        for n in (0, 1)
    )
    # The backend's orchestrator would complete it after its folds: the test plays it.
    backend.operations.conclude(
        done.operation_id,
        OperationState.COMPLETED,
        result=WalkforwardResult(report_sha256="0" * 64, report_operation_id="op_000000000000",
                                 summary={"metrics": {"sharpe": 1.25}}),
    )  # fmt: skip
    kc.fail_operation("b1", started.operation_id, offer.attempt, "the driver broke")
    retried = kc.retry_operation(started.operation_id)
    assert retried.inputs.reuse == {"trial:0": done.operation_id}
    offer = _claim_study(kc, "b2")
    assert offer.operation_id == retried.operation_id
    view = kc.driver_tune("b2", retried.operation_id, offer.attempt)
    # The driver rebuilds from trial 0 (completed, kept) and asks for trial 1 again.
    assert [(t.number, t.value) for t in view.trials] == [(0, 1.25)]
    assert cut.operation_id not in {t.operation_id for t in view.trials}


def test_the_list_of_studies_counts_ended_trials_and_the_best_value_so_far(kc, backend):
    started = kc.start_tune(_request(direction="minimize"))
    offer = _claim_study(kc)
    [listed] = kc.list_tunes()
    assert (listed.operation_id, listed.trials_done, listed.best_value) == (
        started.operation_id,
        0,
        None,
    )
    periods = {0: 14, 1: 21, 2: 1, 3: 10}  # period 1: the strategy refuses it (a failed trial)
    trials = [
        kc.create_trial(
            "b1",
            started.operation_id,
            TrialRequest(
                attempt=offer.attempt,
                number=n,
                params={"indicators.rsi_14.params.period": period},
            ),
        )
        for n, period in periods.items()
    ]
    for trial, sharpe in zip(trials[:2], (1.25, 0.5), strict=True):
        backend.operations.conclude(
            trial.operation_id,
            OperationState.COMPLETED,
            result=WalkforwardResult(report_sha256="0" * 64, report_operation_id="op_000000000000",
                                     summary={"metrics": {"sharpe": sharpe}}),
        )  # fmt: skip
    # Trial 3 still runs; the failed one counts as ended; the study minimises.
    [listed] = kc.list_tunes()
    assert (listed.trials_done, listed.best_value) == (3, 0.5)
    assert kc.list_tunes(OperationState.COMPLETED) == []


def test_cancelling_a_study_cancels_its_trials(kc):
    started = kc.start_tune(_request())
    offer = _claim_study(kc)
    params = {"indicators.rsi_14.params.period": 14}
    trial = kc.create_trial(
        "b1", started.operation_id, TrialRequest(attempt=offer.attempt, number=0, params=params)
    )
    kc.cancel_operation(started.operation_id)

    def cancelled():
        view = kc.get_operation(trial.operation_id)
        return view if view.state == OperationState.CANCELLED else None

    wait_until(cancelled, "the trial cancelled with its study", 30)
