"""The study driver of a parameter search (``ktrdr tune``): Optuna's ask-and-tell on a
backtest worker, trials run by the backend as child walk-forwards on every worker.

The driver holds one backtest worker's slot for the whole study. It keeps nothing of its
own: it reads the study from the backend (``ktrdr_api.tunes``) when it starts, then waits
on a long poll that answers as soon as one of its running trials ended or completed a fold
(only those come back), so the next trial is asked for within milliseconds of a trial
ending. A driver that starts on a requeued study rebuilds it — completed, failed and
pruned trials are added to Optuna as they ended (``Study.add_trial``), trials still running
are adopted (enqueued with their parameters and asked again) — and carries on from the next
trial number. No trial
runs twice: trial N is one child operation, however often it is asked for.

With ``parallel`` 1 and one seed, each trial is asked after the previous one was told, so
two studies of the same data and code propose the same trials. With several trials in
flight the order in which they finish changes what the sampler has seen when it proposes
the next one: such a study is not reproduced trial for trial.

Once the budget is spent, the best three trials and the median one are re-evaluated on
the holdout (the end of the date range no trial saw); the result sets the search's
objective beside the holdout's, with the deflated Sharpe ratio given the number of trials.
Then the backend deletes the model bundles of every trial outside the best ``keep_best``
(idempotent: a driver resumed after dying there asks again), and the study completes.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ktrdr_core.protocol import (
    BundleKeeping,
    OperationState,
    TrialRequest,
    TrialView,
    TuneInputs,
    TuneResult,
    TuneView,
)
from ktrdr_core.tuning import deflated_sharpe, overfitting_warning, ranked_trials, trial_role

if TYPE_CHECKING:
    import optuna

__all__ = ["StudyDriver", "distributions_of"]

log = logging.getLogger("ktrdr_worker.tuning")

KEEP_RETRY_SECONDS = 1.0
"""How long the driver waits before asking again to keep the best trials' bundles while a
training of the study has yet to end (a fold of a failed trial, stopping)."""

WAIT_SECONDS = 5.0
"""The longest one wait for the trials to change; the driver checks whether it must stop
(cancelled, shutting down) between two waits."""

HOLDOUT_RANKS = 3
"""The best trials re-evaluated on the holdout (the median trial joins them as reference)."""

_TERMINAL = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}


def _encode(value: Any) -> str:
    # Optuna's categorical choices must be plain scalars: a layer list such as [64, 32] is
    # offered as its JSON text and decoded back before it reaches the strategy.
    return json.dumps(value, sort_keys=True)


def distributions_of(
    space: dict[str, dict[str, Any]],
) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna's distribution for each path of a parsed search space."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for path, spec in space.items():
        if "choice" in spec:
            out[path] = CategoricalDistribution([_encode(v) for v in spec["choice"]])
        elif "int" in spec:
            low, high = spec["int"]
            out[path] = IntDistribution(
                low, high, log=spec.get("log", False), step=spec.get("step", 1)
            )
        else:
            low, high = spec["float"]
            out[path] = FloatDistribution(
                low, high, log=spec.get("log", False), step=spec.get("step")
            )
    return out


def _grid(space: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for path, spec in space.items():
        if "choice" in spec:
            grid[path] = [_encode(v) for v in spec["choice"]]
        elif "int" in spec:
            low, high = spec["int"]
            grid[path] = list(range(low, high + 1, spec.get("step", 1)))
        else:
            low, high = spec["float"]
            count = math.floor((high - low) / spec["step"] + 1e-9) + 1
            grid[path] = [round(low + i * spec["step"], 12) for i in range(count)]
    return grid


class StudyDriver:
    """Runs one attempt of a study through the backend: ``read()`` the whole study,
    ``create`` a trial, ``prune`` one, ``watch(known, wait_s)`` for trials to change
    (``known``: role -> folds seen; answers the changed trials), ``keep()`` only the best
    trials' bundles. ``check()`` raises when the attempt must stop; ``cancelled()`` records
    that the study was cancelled (read from the backend before the heartbeat says it), so
    the next ``check()`` raises. ``progress(percent, message)`` reports; ``sleep`` waits
    before asking the backend again."""

    def __init__(
        self,
        inputs: TuneInputs,
        *,
        read: Callable[[], TuneView],
        create: Callable[[TrialRequest], TrialView],
        prune: Callable[[int], TrialView],
        watch: Callable[[dict[str, int], float], list[TrialView]],
        keep: Callable[[], BundleKeeping],
        attempt: int,
        check: Callable[[], None],
        cancelled: Callable[[], None],
        progress: Callable[[float, str], None],
        sleep: Callable[[float], None] = time.sleep,
    ):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.inputs = inputs
        self.read = read
        self.create = create
        self.prune = prune
        self.watch = watch
        self.keep = keep
        self.attempt = attempt
        self.check = check
        self.cancelled = cancelled
        self.report = progress
        self.sleep = sleep
        self.distributions = distributions_of(inputs.space)
        self.choices = {p for p, spec in inputs.space.items() if "choice" in spec}
        self.study = optuna.create_study(
            direction=inputs.direction, sampler=self._sampler(), pruner=self._pruner()
        )
        self.active: dict[int, optuna.trial.Trial] = {}
        self.seen: dict[int, int] = {}  # running trial -> folds completed as last seen
        self.ended: dict[int, TrialView] = {}
        self.reported: dict[int, int] = {}  # trial -> folds told to the pruner
        self.pruned: set[int] = set()

    def _sampler(self) -> optuna.samplers.BaseSampler:
        from optuna.samplers import RandomSampler, TPESampler

        seed = self.inputs.tune_seed
        if self.inputs.sampler in ("random", "grid"):
            # A grid is every point enqueued in a seeded order (Optuna's GridSampler stops
            # the study itself, which only an optimize() loop may do).
            return RandomSampler(seed=seed)
        return TPESampler(seed=seed)

    def _enqueue_grid(self, tried: list[dict[str, Any]]) -> int:
        """Enqueue the grid's points no trial tried yet; how many there are."""
        grid = _grid(self.inputs.space)
        points = [
            dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())
        ]
        random.Random(self.inputs.tune_seed).shuffle(points)
        seen = {json.dumps(p, sort_keys=True) for p in tried}
        left = [p for p in points if json.dumps(p, sort_keys=True) not in seen]
        for point in left:
            self.study.enqueue_trial(point, skip_if_exists=False)
        return len(left)

    def _pruner(self) -> optuna.pruners.BasePruner:
        from optuna.pruners import MedianPruner, NopPruner

        if not self.inputs.prune:
            return NopPruner()
        # A fold's objective is the intermediate value; a trial below the median of the
        # trials that reached the same fold stops there, once three trials have finished.
        return MedianPruner(n_startup_trials=3, n_warmup_steps=0)

    # --- the parameters of a trial, both ways ---------------------------------------

    def _params(self, trial: optuna.trial.Trial) -> dict[str, Any]:
        return {
            path: json.loads(value) if path in self.choices else value
            for path, value in trial.params.items()
        }

    def _encoded(self, params: dict[str, Any]) -> dict[str, Any]:
        return {path: _encode(v) if path in self.choices else v for path, v in params.items()}

    # --- rebuilding ---------------------------------------------------------------------

    def rebuild(self, view: TuneView) -> int:
        """Add every ended trial to the study and adopt the running ones; the next number."""
        from optuna.trial import TrialState, create_trial

        numbers = [t.number for t in view.trials]
        for trial in view.trials:
            params = self._encoded(trial.params)
            if trial.state in _TERMINAL:
                self.ended[trial.number] = trial
                state, value = self._ending(trial)
                self.study.add_trial(
                    create_trial(
                        state=state,
                        value=value,
                        params=params,
                        distributions={p: self.distributions[p] for p in params},
                        intermediate_values={
                            i: v for i, v in enumerate(trial.fold_values) if v is not None
                        },
                    )
                )
                if state == TrialState.PRUNED:
                    self.pruned.add(trial.number)
            else:
                self.study.enqueue_trial(params, skip_if_exists=False)
                self.active[trial.number] = self.study.ask(self.distributions)
                self.seen[trial.number] = 0  # its folds so far go to the pruner at once
        if view.trials:
            log.info(
                "study rebuilt from %d trials (%d still running)", len(numbers), len(self.active)
            )
        return max(numbers) + 1 if numbers else 0

    def _ending(self, trial: TrialView) -> tuple[Any, float | None]:
        from optuna.trial import TrialState

        if trial.state == OperationState.COMPLETED and trial.value is not None:
            return TrialState.COMPLETE, trial.value
        if trial.state == OperationState.CANCELLED:
            return TrialState.PRUNED, None
        return TrialState.FAIL, None

    # --- the search ---------------------------------------------------------------------

    def run(self) -> TuneResult:
        inputs = self.inputs
        view = self.read()
        next_number = self.rebuild(view)
        budget = inputs.trials
        if inputs.sampler == "grid":
            tried = [self._encoded(t.params) for t in view.trials]
            budget = min(budget, next_number + self._enqueue_grid(tried))
        while True:
            self.check()
            while len(self.active) < inputs.parallel and next_number < budget:
                trial = self.study.ask(self.distributions)
                self.create(
                    TrialRequest(
                        attempt=self.attempt, number=next_number, params=self._params(trial)
                    )
                )
                self.active[next_number] = trial
                self.seen[next_number] = 0
                next_number += 1
            if not self.active:
                break
            known = {trial_role(n): self.seen[n] for n in self.active}
            changed = self.watch(known, WAIT_SECONDS)
            self._tell(changed)
            self._stop_if_study_cancelled(changed)
            self._progress()
        return self._finish()

    def _tell(self, changed: list[TrialView]) -> None:
        """Tell the study every trial that ended; report folds to the pruner."""
        for trial in changed:
            optuna_trial = self.active.get(trial.number)
            if optuna_trial is None:
                continue
            self.seen[trial.number] = trial.folds_done
            if self.inputs.prune:
                # An ended trial's folds still count: the median the next ones meet.
                self._report_folds(trial, optuna_trial, decide=trial.state not in _TERMINAL)
            if trial.state in _TERMINAL:
                state, value = self._ending(trial)
                self.study.tell(optuna_trial, value if value is not None else None, state=state)
                del self.active[trial.number]
                del self.seen[trial.number]
                self.ended[trial.number] = trial

    def _stop_if_study_cancelled(self, changed: list[TrialView]) -> None:
        """A trial cancelled that the driver did not prune: the study's cancel reaches its
        trials at once, but this attempt only at its next heartbeat. Ask the study, so no new
        trial is created for the backend to cancel in turn."""
        if not any(
            t.state == OperationState.CANCELLED and t.number not in self.pruned for t in changed
        ):
            return
        if self.read().operation.cancel_requested:
            self.cancelled()
            self.check()

    def _report_folds(
        self, trial: TrialView, optuna_trial: optuna.trial.Trial, *, decide: bool
    ) -> None:
        """Report the trial's new fold values; with ``decide``, prune it when the pruner says."""
        done = self.reported.get(trial.number, 0)
        for step, value in enumerate(trial.fold_values[done:], start=done):
            if value is None:
                break
            optuna_trial.report(value, step)
            self.reported[trial.number] = step + 1
            if decide and trial.number not in self.pruned and optuna_trial.should_prune():
                log.info(
                    "trial %d pruned after fold %d: %s %.4g",
                    trial.number,
                    step,
                    self.inputs.objective,
                    value,
                )
                self.prune(trial.number)
                self.pruned.add(trial.number)
                return

    def _progress(self) -> None:
        inputs = self.inputs
        done = len(self.ended)
        ranked = self._ranked(list(self.ended.values()))
        message = f"{done}/{inputs.trials} trials done, {len(self.active)} running"
        if ranked:
            best = ranked[0]
            message += f"; best {inputs.objective} {best.value:.4g} (trial {best.number})"
        self.report(90.0 * done / inputs.trials, message)

    def _ranked(self, trials: list[TrialView]) -> list[TrialView]:
        return ranked_trials(trials, self.inputs.direction)

    # --- the holdout and the report -------------------------------------------------------

    def _finish(self) -> TuneResult:
        view = self.read()
        ranked = self._ranked(view.trials)
        chosen = ranked[:HOLDOUT_RANKS]
        median = ranked[len(ranked) // 2] if len(ranked) > HOLDOUT_RANKS else None
        if median is not None:
            chosen.append(median)
        runs = {
            trial.number: self.create(
                TrialRequest(
                    attempt=self.attempt, number=trial.number, params=trial.params, holdout=True
                )
            )
            for trial in chosen
        }
        while running := [n for n, run in runs.items() if run.state not in _TERMINAL]:
            self.check()
            self.report(95.0, f"re-evaluating {len(runs)} trials on the holdout")
            known = {trial_role(n, holdout=True): runs[n].folds_done for n in running}
            runs |= {run.number: run for run in self.watch(known, WAIT_SECONDS)}
        keeping = self._keep_best()
        view = self.read()
        summary = self.summary(view, ranked, median)
        summary["bundles"] = {
            "keep_best": keeping.keep_best,
            "kept": keeping.kept,
            "freed_bytes": keeping.freed_bytes,
        }
        return TuneResult(summary=summary)

    def _keep_best(self) -> BundleKeeping:
        """Have the backend delete the bundles of every trial outside the best; once more
        while a training of the study has yet to end (a stopped trial's fold)."""
        while True:
            self.check()
            keeping = self.keep()
            if not keeping.unsettled:
                return keeping
            self.report(
                97.0,
                f"keeping the bundles of the best {keeping.keep_best} trials: "
                f"{len(keeping.unsettled)} trainings have yet to end",
            )
            self.sleep(KEEP_RETRY_SECONDS)

    def summary(
        self, view: TuneView, ranked: list[TrialView], median: TrialView | None
    ) -> dict[str, Any]:
        """The study's report: trials, best, importance, holdout beside search, warnings."""
        inputs = self.inputs
        holdout = {h.number: h for h in view.holdout}
        rows = []
        for rank, trial in enumerate(ranked[:HOLDOUT_RANKS], start=1):
            run = holdout.get(trial.number)
            rows.append(
                {
                    "rank": rank,
                    "trial": trial.number,
                    "search": trial.value,
                    "holdout": run.value if run else None,
                    "holdout_operation_id": run.operation_id if run else None,
                    "holdout_error": run.error if run else None,
                }
            )
        best = ranked[0] if ranked else None
        warnings = []
        if rows:
            warning = overfitting_warning(
                rows[0]["search"], rows[0]["holdout"], inputs.objective, inputs.direction
            )
            if warning:
                warnings.append(warning)
        if inputs.parallel > 1:
            warnings.append(
                f"{inputs.parallel} trials ran in parallel: the order they finished in shaped "
                "what the sampler proposed, so a rerun with the same seed may try other "
                "parameters (use --parallel 1 to reproduce a study trial for trial)"
            )
        median_row = None
        if median is not None:
            run = holdout.get(median.number)
            median_row = {
                "trial": median.number,
                "search": median.value,
                "holdout": run.value if run else None,
            }
        return {
            "objective": inputs.objective,
            "direction": inputs.direction,
            "trials": len(view.trials),
            "completed": len(ranked),
            "failed": sum(t.state == OperationState.FAILED for t in view.trials),
            "pruned": sum(t.state == OperationState.CANCELLED for t in view.trials),
            "best": None
            if best is None
            else {"trial": best.number, "params": best.params, "value": best.value},
            "holdout_period": [inputs.holdout_start.isoformat(), inputs.holdout_end.isoformat()],
            "holdout": rows,
            "median": median_row,
            "importance": self.importance(),
            "deflated_sharpe": self._deflated(ranked),
            "warnings": warnings,
        }

    def importance(self) -> dict[str, float] | str:
        """Each parameter's share of the objective's variation (PED-ANOVA: numpy only), or
        why there is none."""
        from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
        from optuna.trial import TrialState

        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < 2 or len(self.distributions) < 1:
            return "too few completed trials to rank the parameters"
        try:
            scores = get_param_importances(self.study, evaluator=PedAnovaImportanceEvaluator())
        except (ValueError, RuntimeError) as exc:
            return f"not computed: {exc}"
        return {path: float(score) for path, score in scores.items()}

    def _deflated(self, ranked: list[TrialView]) -> dict[str, Any] | None:
        """The best trial's deflated Sharpe ratio given every trial's Sharpe (per bar)."""
        sharpes = [t for t in ranked if t.metrics.get("sharpe") is not None and t.bars]
        best = max(sharpes, key=lambda t: t.metrics["sharpe"], default=None)
        if best is None or not best.test_days or not best.bars:
            return None
        per_year = best.bars / (best.test_days / 365.25)
        per_bar = [t.metrics["sharpe"] / math.sqrt(per_year) for t in sharpes]
        result = deflated_sharpe(best.metrics["sharpe"] / math.sqrt(per_year), per_bar, best.bars)
        if result is None:
            return None
        return {
            "trial": best.number,
            "sharpe": best.metrics["sharpe"],
            "trials": result.trials,
            "expected_max_sharpe": result.expected_max * math.sqrt(per_year),
            "probability": result.probability,
        }
