"""The study driver against a backend played by the test: trials are asked in sequence with
one seed (two studies propose the same trials), a driver that starts on a half-done study
carries on without running a trial twice, a failed trial is recorded and the study goes on,
and ``--prune`` stops a trial whose folds fall below the median."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest

from ktrdr_core.protocol import (
    BundleKeeping,
    DataRef,
    OperationState,
    TrialRequest,
    TrialView,
    TuneInputs,
    TuneView,
)
from ktrdr_worker.tuning import StudyDriver

SPACE = {
    "indicators.rsi_14.params.period": {"int": [5, 30]},
    "training.learning_rate": {"float": [1e-4, 1e-2], "log": True},
    "model.hidden_layers": {"choice": [[32], [64, 32]]},
}


def _inputs(**changes) -> TuneInputs:
    fields = {
        "strategy_name": "s",
        "strategy_yaml": "name: s\n",
        "strategy_hash": "h",
        "data": [
            DataRef(
                symbol="SIM",
                timeframe="1d",
                version=1,
                checksum="0" * 64,
                rows=10,
                first=datetime(2020, 1, 1, tzinfo=UTC),
                last=datetime(2021, 1, 1, tzinfo=UTC),
            )
        ],
        "space_yaml": "",
        "space": SPACE,
        "trials": 8,
        "objective": "sharpe",
        "direction": "maximize",
        "folds": 3,
        "train_blocks": 3,
        "embargo_bars": 0,
        "sampler": "tpe",
        "prune": False,
        "parallel": 1,
        "holdout": 0.2,
        "data_start": date(2020, 1, 1),
        "search_end": date(2020, 9, 30),
        "holdout_start": date(2020, 10, 2),
        "holdout_end": date(2021, 1, 1),
        "tune_seed": 5,
    }
    return TuneInputs(**(fields | changes))


def score(params: dict) -> float:
    """The fake market's answer: best at period 14, worse with distance."""
    return 2.0 - abs(params["indicators.rsi_14.params.period"] - 14) / 5


class FakeStudy:
    """The backend's side: trials by number, each completing on the read after it was
    created (``fail``: numbers that fail), every creation counted."""

    def __init__(self, inputs: TuneInputs, *, fail: frozenset[int] = frozenset()):
        self.inputs = inputs
        self.trials: dict[int, TrialView] = {}
        self.holdout: dict[int, TrialView] = {}
        self.created: list[int] = []
        self.fail = fail
        self.folds_per_read = 3
        self.unsettled = 0  # how many calls to keep() find a training still running
        self.kept: list[str] = []  # what the driver saw when it asked to keep the best

    def _view(self, number: int, params: dict, holdout: bool) -> TrialView:
        return TrialView(
            number=number,
            role=f"{'holdout' if holdout else 'trial'}:{number}",
            operation_id=f"op_{number:012x}",
            state=OperationState.RUNNING,
            params=params,
            folds=3,
        )

    def create(self, request: TrialRequest) -> TrialView:
        book = self.holdout if request.holdout else self.trials
        if request.number not in book:
            book[request.number] = self._view(request.number, request.params, request.holdout)
            if not request.holdout:
                self.created.append(request.number)
        return book[request.number]

    def prune(self, number: int) -> TrialView:
        trial = self.trials[number]
        self.trials[number] = trial.model_copy(update={"state": OperationState.CANCELLED})
        return self.trials[number]

    def read(self) -> TuneView:
        for book in (self.trials, self.holdout):
            for number, trial in book.items():
                if trial.state != OperationState.RUNNING:
                    continue
                value = score(trial.params)
                folds = [value + d for d in (0.1, -0.1, 0.0)]
                done = (
                    trial.fold_values
                    + folds[len(trial.fold_values) : len(trial.fold_values) + self.folds_per_read]
                )
                update = {"fold_values": done, "folds_done": len(done)}
                if len(done) == 3:
                    failed = number in self.fail and book is self.trials
                    update |= {
                        "state": OperationState.FAILED if failed else OperationState.COMPLETED,
                        "value": None if failed else value,
                        "error": "LabelError: every label is HOLD" if failed else None,
                    }
                book[number] = trial.model_copy(update=update)
        return TuneView.model_construct(
            operation=None, trials=list(self.trials.values()), holdout=list(self.holdout.values())
        )

    def watch(self, known: dict[str, int], wait_s: float) -> list[TrialView]:
        """What the backend's long poll answers: the watched trials that ended or completed
        more folds than the driver knew (the fake's trials move on at each look)."""
        self.read()
        changed = []
        for role, seen in known.items():
            kind, _, number = role.partition(":")
            trial = (self.holdout if kind == "holdout" else self.trials)[int(number)]
            if trial.state != OperationState.RUNNING or trial.folds_done > seen:
                changed.append(trial)
        return changed

    def keep(self) -> BundleKeeping:
        running = [
            t.role for t in [*self.trials.values(), *self.holdout.values()]
            if t.state == OperationState.RUNNING
        ]  # fmt: skip
        self.kept.append("running: " + ",".join(running) if running else "all ended")
        unsettled = ["op_000000000099"] if self.unsettled else []
        self.unsettled = max(0, self.unsettled - 1)
        return BundleKeeping(keep_best=3, kept=[0, 1, 2], deleted=[], freed_bytes=10,
                             unsettled=unsettled)  # fmt: skip


def _driver(fake: FakeStudy, check=lambda: None, cancelled=lambda: None) -> StudyDriver:
    return StudyDriver(
        fake.inputs,
        read=fake.read,
        create=fake.create,
        prune=fake.prune,
        watch=fake.watch,
        keep=fake.keep,
        attempt=1,
        check=check,
        cancelled=cancelled,
        progress=lambda percent, message: None,
        sleep=lambda seconds: None,
    )


def _table(fake: FakeStudy) -> list[tuple]:
    return [(t.number, sorted(t.params.items()), t.value, t.state) for t in fake.trials.values()]


def test_one_trial_at_a_time_with_one_seed_reproduces_the_study_trial_for_trial():
    first, second, other = (
        FakeStudy(_inputs()),
        FakeStudy(_inputs()),
        FakeStudy(_inputs(tune_seed=6)),
    )
    results = [_driver(fake).run() for fake in (first, second, other)]
    assert _table(first) == _table(second)
    assert _table(first) != _table(other)
    assert results[0].summary["best"] == results[1].summary["best"]
    # Choices reach the strategy as the values the space lists, not Optuna's encoding.
    layers = {tuple(t.params["model.hidden_layers"]) for t in first.trials.values()}
    assert layers <= {(32,), (64, 32)}
    summary = results[0].summary
    assert [r["trial"] for r in summary["holdout"]] == [
        n
        for n, _ in sorted(
            ((t.number, -t.value) for t in first.trials.values()), key=lambda x: (x[1], x[0])
        )
    ][:3]
    assert set(first.holdout) == {r["trial"] for r in summary["holdout"]} | {
        summary["median"]["trial"]
    }
    assert set(summary["importance"]) == set(SPACE)
    # The bundles are dealt with once every trial and holdout run ended, once.
    assert first.kept == ["all ended"]
    assert summary["bundles"] == {"keep_best": 3, "kept": [0, 1, 2], "freed_bytes": 10}


def test_the_driver_asks_again_to_keep_the_best_while_a_training_has_yet_to_end():
    fake = FakeStudy(_inputs(trials=4))
    fake.unsettled = 2
    result = _driver(fake).run()
    assert fake.kept == ["all ended"] * 3
    assert result.summary["bundles"]["kept"] == [0, 1, 2]


class Crash(Exception):
    pass


def test_a_driver_on_a_half_done_study_carries_on_and_runs_no_trial_twice():
    fake = FakeStudy(_inputs(parallel=2))
    fake.folds_per_read = 1  # a trial runs over three reads: some are running at the crash
    checks = iter(range(100))

    def dies_after_a_while():
        if next(checks) == 5:
            raise Crash

    with pytest.raises(Crash):
        _driver(fake, dies_after_a_while).run()
    before = dict(fake.trials)
    assert 0 < len(before) < 8
    assert any(t.state == OperationState.RUNNING for t in before.values())
    result = _driver(fake).run()
    assert fake.created == list(range(8))  # each trial created once, in order
    for number, trial in before.items():
        assert fake.trials[number].params == trial.params
    assert result.summary["completed"] == 8


def test_a_failed_trial_is_recorded_and_the_study_goes_on():
    fake = FakeStudy(_inputs(), fail=frozenset({2}))
    result = _driver(fake).run()
    assert fake.trials[2].state == OperationState.FAILED
    assert result.summary["failed"] == 1 and result.summary["completed"] == 7
    assert len(fake.trials) == 8


class CancelledStudy(FakeStudy):
    """A study cancelled while its first trials run: the backend cancels the trials at once
    and flags the study, before the driver's heartbeat could tell it."""

    cancel_requested = False

    def watch(self, known: dict[str, int], wait_s: float) -> list[TrialView]:
        self.cancel_requested = True
        for number, trial in self.trials.items():
            self.trials[number] = trial.model_copy(update={"state": OperationState.CANCELLED})
        return [self.trials[int(role.partition(":")[2])] for role in known]

    def read(self) -> TuneView:
        view = super().read()
        operation = SimpleNamespace(cancel_requested=self.cancel_requested)
        return TuneView.model_construct(
            operation=operation, trials=view.trials, holdout=view.holdout
        )


def test_a_cancelled_study_creates_no_trial_after_its_trials_were_cancelled():
    fake = CancelledStudy(_inputs(parallel=2))
    told: list[str] = []

    def check():
        if told:
            raise RuntimeError("operation cancelled")

    with pytest.raises(RuntimeError, match="operation cancelled"):
        _driver(fake, check=check, cancelled=lambda: told.append("cancelled")).run()
    assert told == ["cancelled"]
    assert fake.created == [0, 1]  # the two running when the cancel came; none after


def test_pruning_stops_a_trial_whose_folds_fall_below_the_median():
    fake = FakeStudy(
        _inputs(
            prune=True,
            sampler="grid",
            space={"indicators.rsi_14.params.period": {"int": [10, 30], "step": 4}},
            trials=6,
        )
    )
    fake.folds_per_read = 1  # one fold per read: the pruner sees each fold as it comes
    result = _driver(fake).run()
    pruned = [n for n, t in fake.trials.items() if t.state == OperationState.CANCELLED]
    assert pruned, _table(fake)
    for number in pruned:
        # Only trials far from the best period are stopped, after fewer than all folds.
        assert abs(fake.trials[number].params["indicators.rsi_14.params.period"] - 14) >= 8
        assert len(fake.trials[number].fold_values) < 3
    assert result.summary["pruned"] == len(pruned)


def test_the_driver_needs_no_torch_scipy_or_scikit_learn(tmp_path):
    """What the torch-free image runs (tests/images runs the same probe inside it)."""
    import json
    import subprocess
    import sys

    from tests.support.blocked import blocking_path
    from tests.support.processes import process_env
    from tests.support.tuning_probe import PROBE

    env = process_env({"PYTHONPATH": str(blocking_path(tmp_path / "blocked"))}, home=tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["imported"] == []
    assert set(result["importance"]) == {
        "indicators.rsi_14.params.period",
        "training.learning_rate",
    }
    assert abs(result["best"]["indicators.rsi_14.params.period"] - 14) <= 3
    assert len(result["holdout"]) == 3
