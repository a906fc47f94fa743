"""Parameter studies through the API, the driver played by the test: the space file is
checked against the strategy before anything runs (every problem, with file, line and path),
a study is a backtest worker's operation, its trials are child walk-forwards that only the
attempt holding the study may create (once each), and cancelling the study cancels them.
Once its search ended, a study keeps only its best trials' model bundles; its driver waits
for its trials on a long poll that a trial's change wakes."""

from __future__ import annotations

import threading

import pytest

from ktrdr_core.client import KtrdrClient
from ktrdr_core.errors import ApiError
from ktrdr_core.examples import read_example
from ktrdr_core.protocol import (
    ArtifactKind,
    BacktestResult,
    OperationKind,
    OperationState,
    TrainingResult,
    TrialRequest,
    TrialWatch,
    TuneRequest,
    WalkforwardReportResult,
    WalkforwardResult,
    WorkerRegistration,
)
from ktrdr_core.settings import Settings
from tests.support.bundles import bundle_bytes
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


# --- the best trials' bundles, and the driver's wait ------------------------------------

PERIOD = "indicators.rsi_14.params.period"


def _finish_child(kc, tmp_path, worker: str, kind: OperationKind, sharpe: float) -> str:
    """Claim the oldest operation ``worker`` serves (it must be of ``kind``) and complete it
    as its worker would: a training with a bundle, a backtest or a walk-forward's report
    with ``sharpe`` as its objective. Its operation id."""
    offer = kc.claim(worker, timeout_s=0)
    assert offer is not None and offer.kind == kind, offer
    path = tmp_path / f"{offer.operation_id}.bin"
    if kind == OperationKind.TRAINING:
        features = kc.validate_strategy(STRATEGY, ON_GOOG).features
        # Each training's own weights: each bundle is a file of its own.
        path.write_bytes(bundle_bytes(feature_names=features, weights=offer.operation_id.encode()))
        result = TrainingResult(bundle_sha256=kc.upload_artifact(path, ArtifactKind.BUNDLE).sha256)
    else:
        path.write_text(f'{{"sharpe": {sharpe}}}')
        sha = kc.upload_artifact(path, ArtifactKind.REPORT).sha256
        summary = {"metrics": {"sharpe": sharpe}}
        result = (
            BacktestResult(report_sha256=sha, summary=summary)
            if kind == OperationKind.BACKTEST
            else WalkforwardReportResult(report_sha256=sha, summary=summary)
        )
    kc.complete_operation(worker, offer.operation_id, offer.attempt, result)
    return offer.operation_id


def _run_trial(kc, tmp_path, study, attempt: int, number: int, sharpe: float, *, holdout=False):
    """Trial ``number`` (one fold) created by the driver and run to completion by the test's
    workers (t1 trains; b2 backtests and stitches), the backend's orchestrator in between."""
    trial = kc.create_trial(
        "b1",
        study,
        TrialRequest(attempt=attempt, number=number, params={PERIOD: 8 + number},
                     holdout=holdout),
    )  # fmt: skip

    def pending(kind):
        def look():
            children = kc.get_walkforward(trial.operation_id).children
            return any(c.kind == kind and c.state == OperationState.PENDING for c in children)

        return look

    for kind, worker in (
        (OperationKind.TRAINING, "t1"),
        (OperationKind.BACKTEST, "b2"),
        (OperationKind.WALKFORWARD_REPORT, "b2"),
    ):
        wait_until(pending(kind), f"{trial.role}'s {kind}", 30)
        _finish_child(kc, tmp_path, worker, kind, sharpe)

    def completed():
        view = kc.get_operation(trial.operation_id)
        return view if view.state == OperationState.COMPLETED else None

    wait_until(completed, f"{trial.role} completed", 30)
    return trial


def _study_of_four(kc, tmp_path, keep_best: int = 2):
    """A one-fold study whose four trials score 0.5, 2.0, 1.0, 1.5 (best: 1, then 3), each
    re-evaluated on the holdout as the driver does; the study and the attempt holding it."""
    kc.register_worker(WorkerRegistration(worker_id="t1", kind=OperationKind.TRAINING))
    started = kc.start_tune(_request(folds=1, keep_best=keep_best))
    offer = _claim_study(kc)
    for number, sharpe in enumerate((0.5, 2.0, 1.0, 1.5)):
        _run_trial(kc, tmp_path, started.operation_id, offer.attempt, number, sharpe)
    for number, sharpe in ((1, 1.8), (3, 1.1), (2, 0.9)):  # the best three and the median
        _run_trial(kc, tmp_path, started.operation_id, offer.attempt, number, sharpe,
                   holdout=True)  # fmt: skip
    return started.operation_id, offer.attempt


def test_a_study_keeps_only_its_best_trials_bundles_and_every_trial_s_record(kc, backend, tmp_path):
    study, attempt = _study_of_four(kc, tmp_path)
    before = kc.get_tune(study)
    every = {t.number: t.models for t in before.trials + before.holdout}
    assert all(len(models) == 1 for models in every.values()), every
    doomed = {m for t in before.trials + before.holdout if t.number in (0, 2) for m in t.models}
    sizes = {m.model_id: m.size for m in kc.list_models()}
    bundles = {m.model_id: m.bundle_sha256 for m in kc.list_models()}

    # Only the attempt holding the study asks.
    with pytest.raises(ApiError) as stale:
        kc.keep_bundles("b2", study, attempt)
    assert stale.value.status == 409

    kept = kc.keep_bundles("b1", study, attempt)
    assert (kept.keep_best, kept.kept, kept.unsettled) == (2, [1, 3], [])
    # Trial 0's fold model; trial 2's fold model and its holdout run's (it was the median).
    assert set(kept.deleted) == doomed and len(doomed) == 3
    assert kept.freed_bytes == sum(sizes[m] for m in doomed)
    remaining = {m.model_id for m in kc.list_models()}
    assert remaining == set(bundles) - doomed
    for model_id, sha in bundles.items():
        assert backend.store.exists(sha) == (model_id not in doomed), model_id

    # The trials' records stay: the table says which kept their bundles and what was freed.
    after = kc.get_tune(study)
    table = {t.number: (t.state, t.value, len(t.models), t.models_deleted) for t in after.trials}
    assert table == {
        0: (OperationState.COMPLETED, 0.5, 0, 1),
        1: (OperationState.COMPLETED, 2.0, 1, 0),
        2: (OperationState.COMPLETED, 1.0, 0, 1),
        3: (OperationState.COMPLETED, 1.5, 1, 0),
    }
    assert sum(t.freed_bytes for t in after.trials + after.holdout) == kept.freed_bytes
    assert kc.best_tune(study)["trial"]["number"] == 1
    # A kept model is still one to backtest.
    [model] = next(t for t in after.trials if t.number == 1).models
    assert kc.start_backtest(model).state == OperationState.PENDING

    # Asked again (a driver resumed after dying there): nothing more goes, the same figures.
    again = kc.keep_bundles("b1", study, attempt)
    assert (again.kept, again.deleted, again.freed_bytes) == ([1, 3], [], kept.freed_bytes)


def test_a_resumed_driver_finishes_an_interrupted_deletion(kc, backend, clock, settings, tmp_path):
    from ktrdr_api import catalog

    study, attempt = _study_of_four(kc, tmp_path, keep_best=3)
    trials = {t.number: t for t in kc.get_tune(study).trials}
    [first] = trials[0].models
    # The first attempt deleted trial 0's model and died before removing its file.
    sha = kc.get_model(first).bundle_sha256
    with backend.sessions.begin() as session:
        row = catalog.model(session, first)
        catalog.drop_references(session, f"model:{first}")
        session.delete(row)
        session.flush()
        assert catalog.release_artifact(session, sha)
    assert backend.store.exists(sha)
    clock.advance(settings.lease_seconds + 1)
    backend.operations.expire_leases()
    offer = _claim_study(kc, "b2")
    assert offer.operation_id == study and offer.attempt == attempt + 1
    kept = kc.keep_bundles("b2", study, offer.attempt)
    assert kept.kept == [1, 3, 2] and kept.deleted == []
    assert not backend.store.exists(sha)
    assert {t.number for t in kc.get_tune(study).trials if not t.models} == {0}


def test_keep_must_be_at_least_one(kc):
    body = _request().model_dump(mode="json") | {"keep_best": 0}
    with pytest.raises(ApiError) as refused:
        kc.request("POST", "/tunes", json=body)
    assert refused.value.status == 422
    [problem] = refused.value.body["detail"]
    assert problem["loc"] == ["body", "keep_best"]
    assert problem["msg"] == "Input should be greater than or equal to 1"
    assert kc.list_tunes() == []


def test_the_driver_s_wait_ends_when_a_watched_trial_changes(kc, client, tmp_path):
    kc.register_worker(WorkerRegistration(worker_id="t1", kind=OperationKind.TRAINING))
    started = kc.start_tune(_request(folds=1))
    offer = _claim_study(kc)
    study = started.operation_id
    trial = kc.create_trial(
        "b1", study, TrialRequest(attempt=offer.attempt, number=0, params={PERIOD: 12})
    )
    watch = TrialWatch(attempt=offer.attempt, known={"trial:0": 0}, wait_s=0)
    assert kc.watch_trials("b1", study, watch) == []  # nothing changed: no wait asked
    with pytest.raises(ApiError) as stale:
        kc.watch_trials("b2", study, watch)
    assert stale.value.status == 409

    answers: dict = {}

    def driver_waits():
        with KtrdrClient("http://testserver", token="", transport=client._transport) as own:
            answers["changed"] = own.watch_trials(
                "b1", study, watch.model_copy(update={"wait_s": 60.0})
            )

    waiting = threading.Thread(target=driver_waits, daemon=True)
    waiting.start()
    # The fold's backtest completing is what the wait is for (the training is not).
    _finish_child(kc, tmp_path, "t1", OperationKind.TRAINING, 0.0)
    wait_until(
        lambda: any(c.kind == OperationKind.BACKTEST for c in kc.get_walkforward(
            trial.operation_id).children), "the fold's backtest", 30)  # fmt: skip
    _finish_child(kc, tmp_path, "b2", OperationKind.BACKTEST, 1.25)
    # Only a wake-up answers before the wait's 60 s run out.
    waiting.join(timeout=30)
    assert "changed" in answers, "the wait was not woken by the fold's completion"
    [changed] = answers["changed"]
    assert (changed.number, changed.folds_done, changed.fold_values) == (0, 1, [1.25])
    assert changed.state == OperationState.RUNNING  # its report is still to come
