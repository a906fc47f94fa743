"""Parameter searches through real processes: `ktrdr-api serve`, two training workers and two
backtest workers run as the torch-free image does (one of them holds the study's driver).

The market is the simulator's, with its one documented planted effect (mean reversion after
RSI(14) extremes, ``ktrdr_core.simulator.RSI_REVERSION``): a search over the RSI's period
finds it, and the holdout, which no trial saw, confirms it; once it ended only the best
three trials keep their model bundles, which still backtest. Then the driver's worker is
killed mid-study; the study finishes on the other backtest worker and every trial ran once.
"""

from __future__ import annotations

import signal

import pytest

from ktrdr_core.protocol import OperationKind, OperationState, TrainingResultView, TuneRequest
from ktrdr_core.simulator import PlantedEffect, simulate_csv
from ktrdr_core.tuning import ranked_trials
from tests.support.cli import run_ktrdr
from tests.support.stack import ApiServer, WorkerProcess, wait_for_state
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}

STRATEGY = """\
name: planted_rsi
description: RSI zones on the simulator's planted market; the period is what a search finds.
data:
  symbols: [SIM]
  timeframe: 1d
  split: {train: 0.7, validation: 0.15, test: 0.15}
  embargo_bars: 20
indicators:
  rsi_14: {type: rsi, params: {period: 14}}
  roc_10: {type: roc, params: {period: 10}}
fuzzy_sets:
  rsi_zone:
    indicator: rsi_14
    oversold: {type: trapezoidal, params: [null, 0, 29, 31]}
    neutral: {type: triangular, params: [30, 50, 70]}
    overbought: {type: trapezoidal, params: [69, 71, 100, null]}
inputs:
  - fuzzy_set: rsi_zone
  - raw: roc_10
model: {type: mlp, hidden_layers: [16], dropout: 0.0}
training:
  epochs: 12
  batch_size: 64
  learning_rate: 0.005
  seed: 7
  device: cpu
  checkpoint_interval: 4
labels:
  zigzag: {threshold: 0.05, lookahead: 20}
decisions: {confidence_threshold: 0.5, min_separation_bars: 3, mode: long_short}
backtest: {capital: 100000.0, commission: 0.0005, slippage: 0.0, position_size: 1.0}
"""

# Periods 6, 10, …, 26: the planted 14 among them, and neighbours far enough to differ.
# Short pushes after RSI(14) extremes: a smoother or quicker RSI sees other extremes, so the
# period matters (the quickstart's 40-bar pushes reward any slow RSI alike).
PLANTED = PlantedEffect(rsi_period=14, strength=1.5, bars=10)
SPACE = "indicators.rsi_14.params.period: {int: [6, 26], step: 4}\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune")
    api = ApiServer(folder / "home", lease_seconds=6.0).start()
    workers = [
        WorkerProcess(
            kind,
            api,
            folder / "workers",
            worker_id=f"tune-{kind}-{n}",
            torch_free=kind == "backtest",
        )
        for kind, n in (("training", 1), ("training", 2), ("backtest", 1), ("backtest", 2))
    ]
    for worker in workers:
        worker.wait_registered()
    data = folder / "SIM_1d.csv"
    data.write_text(simulate_csv(4000, "1d", seed=7, planted=PLANTED))
    with api.client() as client:
        client.import_data("SIM", "1d", data)
    yield api, workers
    for worker in workers:
        worker.stop()
    api.stop()


def _logs(workers) -> str:
    return "\n".join(worker.logs() for worker in workers)


def _request(**changes) -> TuneRequest:
    fields = {
        "strategy": STRATEGY,
        "space": SPACE,
        "trials": 6,
        "objective": "sharpe",
        "folds": 3,
        "sampler": "grid",
        "parallel": 2,
        "seed": 1,
    }
    return TuneRequest(**(fields | changes))


def test_a_search_finds_the_planted_period_and_the_holdout_confirms_it(stack):
    api, workers = stack
    with api.client() as client:
        started = client.start_tune(_request())
        assert started.kind == OperationKind.TUNE and started.state == OperationState.PENDING
        view = wait_for_state(api, started.operation_id, DONE, "ends", 1500, lambda: _logs(workers))
        assert view.state == OperationState.COMPLETED, view.error
        study = client.get_tune(started.operation_id)
    trials = study.trials
    assert [t.number for t in trials] == list(range(6))
    assert sorted(t.params["indicators.rsi_14.params.period"] for t in trials) == [
        6,
        10,
        14,
        18,
        22,
        26,
    ]
    summary = view.result.summary
    best = summary["best"]
    assert abs(best["params"]["indicators.rsi_14.params.period"] - PLANTED.rsi_period) <= 2, trials
    best_holdout = summary["holdout"][0]["holdout"]
    assert summary["median"] is not None
    assert best_holdout > summary["median"]["holdout"], summary
    # The holdout runs trained on the search range and tested after it.
    inputs = study.operation.inputs
    for run in study.holdout:
        assert run.state == OperationState.COMPLETED
    assert inputs.search_end < inputs.holdout_start
    _only_the_best_keep_their_bundles(api, study, workers)


def _only_the_best_keep_their_bundles(api, study, workers) -> None:
    """The study kept the model bundles of its best 3 trials (3 folds each, and each one's
    holdout run) and deleted the others' (the median trial's holdout run's too), from the
    catalogue and from the artifact store; a kept model still backtests."""
    best = ranked_trials(study.trials, "maximize")[:3]
    kept = {t.number for t in best}
    assert study.operation.result.summary["bundles"]["kept"] == [t.number for t in best]
    with api.client() as client:
        listed = {m.model_id for m in client.list_models()}
        for run in study.trials + study.holdout:
            trainings = [
                c.result
                for c in client.get_walkforward(run.operation_id).children
                if isinstance(c.result, TrainingResultView)
            ]
            assert len(trainings) == (1 if run.role.startswith("holdout") else 3), run.role
            for made in trainings:
                stored = api.home / "artifacts" / made.bundle_sha256[:2] / made.bundle_sha256
                assert (made.model_id in listed) == (run.number in kept), (run.role, made)
                assert stored.is_file() == (run.number in kept), (run.role, made)
            assert run.models_deleted == (0 if run.number in kept else len(trainings))
            assert run.freed_bytes == sum(m.bundle_bytes for m in trainings) * (
                run.number not in kept
            )
        model = best[0].models[0]
        backtest = client.start_backtest(model)
    done = wait_for_state(api, backtest.operation_id, DONE, "the kept model's backtest", 300,
                          lambda: _logs(workers))  # fmt: skip
    assert done.state == OperationState.COMPLETED, done.error


def test_the_cli_shows_the_study_and_writes_the_best_strategy(stack, tmp_path):
    api, _ = stack
    with api.client() as client:
        [study] = [v for v in client.list_tunes() if v.state == OperationState.COMPLETED][:1]
    env = {"KTRDR_API_URL": api.url}
    shown = run_ktrdr("tunes", "show", study.operation_id, home=tmp_path, cwd=tmp_path, **env)
    assert shown.returncode == 0, shown.stderr
    assert "TRIAL" in shown.stdout and "HOLDOUT" in shown.stdout
    assert "deflated Sharpe" in shown.stdout and "parameter importance" in shown.stdout
    kept = ", ".join(str(n) for n in sorted(study.result.summary["bundles"]["kept"]))
    assert "BUNDLES" in shown.stdout and f"model bundles: trials {kept} keep theirs" in (
        shown.stdout
    )
    best = tmp_path / "best.yaml"
    written = run_ktrdr("tunes", "best", study.operation_id, "--write", str(best), home=tmp_path,
                        cwd=tmp_path, **env)  # fmt: skip
    assert written.returncode == 0, written.stderr
    text = best.read_text()
    assert text.startswith(f"# best of study {study.operation_id} (planted_rsi)")
    assert "on the holdout" in text.splitlines()[0]
    # The written file is a strategy the CLI validates offline, with the best period in it.
    checked = run_ktrdr("strategies", "validate", str(best), home=tmp_path, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    period = study.result.summary["best"]["params"]["indicators.rsi_14.params.period"]
    assert f"period: {period}" in text
    # Every trial is an experiment record: `runs diff` lines two trials up.
    with api.client() as client:
        first, second = client.get_tune(study.operation_id).trials[:2]
    diffed = run_ktrdr("runs", "diff", first.operation_id, second.operation_id, home=tmp_path,
                       cwd=tmp_path, **env)  # fmt: skip
    assert diffed.returncode == 0, diffed.stderr
    assert "indicators.rsi_14.params.period" in diffed.stdout


TWO_PARAMETERS = SPACE + "decisions.confidence_threshold: {float: [0.4, 0.6]}\n"


def test_one_trial_at_a_time_with_one_seed_gives_identical_trial_tables(stack):
    api, workers = stack
    tables = []
    with api.client() as client:
        for _ in range(2):
            started = client.start_tune(
                _request(trials=3, parallel=1, sampler="tpe", seed=11, space=TWO_PARAMETERS)
            )
            done = wait_for_state(
                api, started.operation_id, DONE, "ends", 900, lambda: _logs(workers)
            )
            assert done.state == OperationState.COMPLETED, done.error
            study = client.get_tune(started.operation_id)
            tables.append([(t.number, t.params, t.value, t.state) for t in study.trials])
    assert tables[0] == tables[1]
    assert len({str(row[1]) for row in tables[0]}) == 3


def test_a_killed_driver_is_resumed_elsewhere_and_every_trial_runs_once(stack, tmp_path):
    api, workers = stack
    drivers = {w.worker_id: w for w in workers if w.worker_id.startswith("tune-backtest")}
    with api.client() as client:
        started = client.start_tune(_request(trials=4, parallel=1, sampler="random"))

        def driven():
            view = client.get_tune(started.operation_id)
            assert not view.operation.state.is_terminal, view.operation.error
            running = view.operation.state == OperationState.RUNNING
            return view if running and view.trials else None

        view = wait_until(driven, "the study's first trial", 300, lambda: _logs(workers))
        killed = view.operation.worker_id
        drivers[killed].signal(signal.SIGKILL)
        drivers[killed].wait_exit()
        # The driver holds its worker's slot: a replacement host takes the backtests the
        # surviving worker cannot while it drives the study.
        replacement = WorkerProcess(
            "backtest", api, tmp_path, worker_id="tune-backtest-3", torch_free=True
        )
        workers.append(replacement)
        replacement.wait_registered()
        done = wait_for_state(api, started.operation_id, DONE, "ends", 1500, lambda: _logs(workers))
        assert done.state == OperationState.COMPLETED, done.error
        attempts = done.reproducibility.attempts
        assert [a.outcome for a in attempts] == ["lease_expired", "completed"], attempts
        assert attempts[0].worker_id == killed and attempts[1].worker_id != killed
        study = client.get_tune(started.operation_id)
        assert [t.number for t in study.trials] == [0, 1, 2, 3]
        for trial in study.trials + study.holdout:
            assert trial.state == OperationState.COMPLETED, trial
            # Each fold's training and backtest ran once: none was started again.
            for child in client.get_walkforward(trial.operation_id).children:
                assert child.attempt == 1, (trial.number, child.role, child.reproducibility)
