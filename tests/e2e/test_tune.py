"""Parameter searches through real processes: `ktrdr-api serve`, two training workers and two
backtest workers run as the torch-free image does (one of them holds the study's driver).

The market is the simulator's, with its one documented planted effect (mean reversion after
RSI(14) extremes, ``ktrdr_core.simulator.RSI_REVERSION``): a search over the RSI's period
finds it, and the holdout, which no trial saw, confirms it; once it ended only the best
three trials keep their model bundles, which still backtest. Then the driver's worker is
killed mid-study; the study finishes on the other backtest worker and every trial ran once.

The dashboard's study pages are read in a real headless Chromium (tests/support/browser.py):
the finished study's trials and holdout comparison as the API has them, and a running study,
its trainings held at an epoch boundary by the training workers' hold file (never raced),
shown live, unavailable to cancel for a reader, and cancelled from its page.
"""

from __future__ import annotations

import signal

import pytest

from ktrdr_core.protocol import OperationKind, OperationState, TrainingResultView, TuneRequest
from ktrdr_core.simulator import PlantedEffect, simulate_csv
from ktrdr_core.tuning import overfitting_warning, ranked_trials
from tests.support.browser import SCREENSHOTS, Page, browser_or_skip
from tests.support.browser import shown_number as _fmt
from tests.support.cli import run_ktrdr
from tests.support.stack import ApiServer, WorkerProcess, wait_for_state
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
ADMIN = "tune-admin"

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
def hold(tmp_path_factory):
    """While this file exists, the training workers hold each training after an epoch."""
    return tmp_path_factory.mktemp("hold") / "hold"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, hold):
    folder = tmp_path_factory.mktemp("tune")
    api = ApiServer(folder / "home", lease_seconds=6.0, token=ADMIN).start()
    workers = [
        WorkerProcess(
            kind,
            api,
            folder / "workers",
            worker_id=f"tune-{kind}-{n}",
            torch_free=kind == "backtest",
            env={"KTRDR_WORKER_HOLD_FILE": str(hold)} if kind == "training" else None,
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
    env = {"KTRDR_API_URL": api.url, "KTRDR_API_TOKEN": ADMIN}
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


@pytest.fixture(scope="module")
def chromium():
    with browser_or_skip() as launched:
        yield launched


@pytest.fixture
def tab(chromium, stack):
    opened = Page(chromium, stack[0].url, SCREENSHOTS / "tune")
    yield opened
    opened.close()


def _completed_study(api):
    with api.client() as client:
        done = [v for v in client.list_tunes() if v.state == OperationState.COMPLETED]
        assert done, "no completed study: the first test of this module makes one"
        return done[-1], client.get_tune(done[-1].operation_id)


def test_the_study_page_shows_the_trials_and_the_holdout_beside_the_search(stack, tab):
    api, _ = stack
    listed, study = _completed_study(api)
    op_id, inputs = listed.operation_id, study.operation.inputs
    summary = study.operation.result.summary
    tab.login(ADMIN)
    tab.page.wait_for_selector("table.operations")
    tab.page.click("header a[href='#/tunes']")
    tab.page.wait_for_selector("table.tunes")
    rows = {row[0]: row for row in tab.cells("table.tunes")}
    assert rows[op_id][1:6] == [
        "planted_rsi", "completed", f"{len(study.trials)}/{inputs.trials}", "sharpe (maximize)",
        _fmt(summary["best"]["value"]),
    ]  # fmt: skip
    assert listed.best_value == summary["best"]["value"] and listed.trials_done == inputs.trials
    tab.page.click(f"table.tunes a[href='#/tunes/{op_id}']")
    tab.page.wait_for_selector("[data-charts-ready]")

    # The trials table: one row per trial of the API's, in trial order, each linking to its
    # walk-forward's page.
    path = "indicators.rsi_14.params.period"
    expected = [
        [str(t.number), str(t.params[path]), _fmt(t.value),
         f"{sum(v is not None for v in t.fold_values)}/{t.folds}", str(t.state)]
        for t in study.trials
    ]  # fmt: skip
    assert [row[:5] for row in tab.cells("table.trials")] == expected
    links = tab.page.eval_on_selector_all(
        "table.trials tbody td:first-child a", "links => links.map(a => a.getAttribute('href'))"
    )
    assert links == [f"#/walkforwards/{t.operation_id}" for t in study.trials]
    # Sorted by the objective, best first (the study maximises), then back by number.
    tab.page.click("table.trials button[data-order=best]")
    tab.page.wait_for_selector("table.trials[data-order=best]")
    best_first = sorted(study.trials, key=lambda t: (-t.value, t.number))
    assert [row[0] for row in tab.cells("table.trials")] == [str(t.number) for t in best_first]
    tab.page.click("table.trials button[data-order=number]")
    tab.page.wait_for_selector("table.trials[data-order=number]")

    # The search beside the holdout, for the best trials and the median, as the API has them.
    holdout = tab.cells("table.holdout")
    shown = [row[:4] for row in holdout]
    wanted = [[f"#{r['rank']}", f"trial {r['trial']}", _fmt(r["search"]), _fmt(r["holdout"])]
              for r in summary["holdout"]]  # fmt: skip
    median = summary["median"]
    wanted.append(["median", f"trial {median['trial']}", _fmt(median["search"]),
                   _fmt(median["holdout"])])  # fmt: skip
    assert shown == wanted
    runs = {h.number: h.operation_id for h in study.holdout}
    assert [row[4] for row in holdout] == [runs[r["trial"]] for r in summary["holdout"]] + [
        runs[median["trial"]]
    ]
    deflated = summary["deflated_sharpe"]
    text = tab.page.text_content("p.deflated")
    assert f"probability {_fmt(deflated['probability'])}" in text
    assert f"{deflated['trials']} trials)" in text
    assert f"trial {deflated['trial']}'s Sharpe {_fmt(deflated['sharpe'])}" in text
    # The warnings are the study's own, decided by the one rule (ktrdr_core.tuning): the
    # overfitting one exactly when that rule says so; the parallel one, trials ran 2 at once.
    warnings = tab.page.eval_on_selector_all(
        "ul.warnings li", "items => items.map(li => li.textContent)"
    )
    assert warnings == [f"warning: {w}" for w in summary["warnings"]]
    first = summary["holdout"][0]
    rule = overfitting_warning(first["search"], first["holdout"], "sharpe", "maximize")
    assert (rule is not None) == any("fitted noise" in w for w in warnings)
    if rule is not None:
        assert f"warning: {rule}" in warnings
    assert any("order they finished in" in w for w in warnings)
    # A bar per parameter, and each completed trial a point on the chart with the best so far.
    bars = tab.page.eval_on_selector_all(
        "meter[data-param]", "bars => bars.map(m => [m.dataset.param, m.value])"
    )
    assert bars == [[k, pytest.approx(v)] for k, v in summary["importance"].items()]
    points = tab.page.evaluate("ktrdrCharts.trials.values.data().map(p => [p.time, p.value])")
    assert points == [[t.number, pytest.approx(t.value)] for t in study.trials]
    best_line = tab.page.evaluate("ktrdrCharts.trials.best.data().map(p => p.value)")
    assert best_line[-1] == pytest.approx(summary["best"]["value"])
    assert best_line == sorted(best_line)
    assert tab.page.is_disabled("#cancel")  # it ended
    tab.shot("study")

    # A trial's number opens its walk-forward's page.
    tab.page.click(f"table.trials a[href='#/walkforwards/{study.trials[0].operation_id}']")
    tab.page.wait_for_selector("table.folds")
    assert len(tab.cells("table.folds")) == inputs.folds
    assert tab.errors == []


def test_a_running_study_is_shown_live_and_cancelled_from_its_page(stack, chromium, hold):
    api, workers = stack
    with api.client() as client:
        reader = client.create_token("tune-viewer", "reader").secret
    admin = Page(chromium, api.url, SCREENSHOTS / "tune")
    viewer = Page(chromium, api.url, SCREENSHOTS / "tune")
    hold.touch()
    try:
        with api.client() as client:
            started = client.start_tune(_request(trials=4, parallel=2, sampler="random"))
            study_id = started.operation_id

            def both_trials_held():
                view = client.get_tune(study_id)
                assert not view.operation.state.is_terminal, view.operation.error
                return view if len(view.trials) == 2 else None

            # Parallel 2 and every training held: the study stays running with two trials.
            held = wait_until(both_trials_held, "two trials running", 300, lambda: _logs(workers))
        viewer.login(reader)
        viewer.page.wait_for_selector("table.operations")
        viewer.go("tunes", "table.tunes")
        rows = {row[0]: row for row in viewer.cells("table.tunes")}
        assert rows[study_id][2:6] == ["running", "0/4", "sharpe (maximize)", "—"]  # all held
        viewer.go(f"tunes/{study_id}", "table.trials")
        assert viewer.page.is_disabled("#cancel")
        assert "has role reader: cancel and retry need researcher" in viewer.page.text_content(
            ".actions"
        )
        admin.login(ADMIN)
        admin.page.wait_for_selector("table.operations")
        admin.go(f"tunes/{study_id}", "p.pending-results")
        admin.page.wait_for_function(
            "() => document.querySelectorAll('table.trials tbody tr').length === 2"
        )
        links = admin.page.eval_on_selector_all(
            "table.trials tbody td:first-child a", "links => links.map(a => a.getAttribute('href'))"
        )
        assert links == [f"#/operations/{t.operation_id}" for t in held.trials]  # their folds
        facts = {row[0]: row[1] for row in admin.cells("table.facts")}
        assert facts["state"] == "running"
        assert facts["parallel trials"].startswith("2: the order trials finish in shapes")
        assert "null" not in admin.page.text_content("main")
        assert not admin.page.is_disabled("#cancel")
        admin.shot("study-running")
        admin.page.click("#cancel")
        ended = wait_for_state(
            api, study_id, DONE, "the cancelled study", 120, lambda: _logs(workers)
        )
        assert ended.state == OperationState.CANCELLED

        def trials_ended():
            with api.client() as client:
                view = client.get_tune(study_id)
            return view if all(t.state.is_terminal for t in view.trials) else None

        view = wait_until(trials_ended, "the study's trials cancelled", 120, lambda: _logs(workers))
        assert {str(t.state) for t in view.trials} == {"cancelled"}
        # The driver stops on the study's cancel: no trial created after the two it held.
        assert [t.number for t in view.trials] == [t.number for t in held.trials]
        # The open page follows without a reload: the study and its trials cancelled.
        admin.page.wait_for_function(
            """() => [...document.querySelectorAll('table.facts td')]
                .some(td => td.textContent === 'cancelled')
              && [...document.querySelectorAll('table.trials tbody tr')]
                .every(tr => tr.cells[4].textContent === 'cancelled')"""
        )
        assert admin.page.is_disabled("#cancel") and not admin.page.is_disabled("#retry")
        admin.shot("study-cancelled")
        assert admin.errors == [] and viewer.errors == []
    finally:
        hold.unlink(missing_ok=True)
        admin.close()
        viewer.close()


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
