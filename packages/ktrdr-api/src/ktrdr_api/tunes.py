"""Parameter searches (``ktrdr tune``): the backend keeps the study, a worker drives it.

A study is a ``tune`` operation that a backtest worker claims (``SERVED_BY``); its driver
(``ktrdr_worker.tuning``, Optuna's ask-and-tell) holds that worker's slot for the whole
study and asks this module for each trial through the worker routes. The backend never
imports Optuna: everything a driver needs to rebuild the study lives here, as the study's
child operations:

- ``trial:N`` — a walk-forward of the strategy with trial N's parameters as overrides, over
  the search range (the date range less the holdout); one train/test split when the study
  asks for one fold;
- ``holdout:N`` — trial N re-evaluated once the search ended: trained on the whole search
  range, tested on the holdout no trial saw.

A driver whose worker dies loses its lease; the lease sweeper requeues the study like any
operation, and the next driver rebuilds the study from these children (completed ones are
told to Optuna again, running ones adopted), so no trial runs twice and none is lost: the
(parent, role) constraint makes a repeated request for trial N return trial N.

Cancelling a study, or its end, cancels its unfinished children (:class:`TuneKeeper`).

**Storage.** Once the holdout runs ended, the driver asks the backend to keep only the
model bundles of the study's ``keep_best`` best trials (:meth:`Tunes.keep_bundles`): every
other trial's fold models and holdout models are deleted the way `ktrdr models delete`
deletes one. The trials' records (parameters, results, reports) all stay, so the trials
table and `runs diff` keep working. The call is idempotent and the study completes only
after it, so a driver that dies meanwhile leaves it to the next attempt. A study that
failed or was cancelled keeps every bundle: its ranking is not final, and `ops retry`
reuses its completed trials — the retried study prunes them with its own once it
completes (the best k of all its trials are among the best k of the reused ones).

**Waiting.** The driver waits for its trials through :meth:`Tunes.changes` and
:class:`StudyWatch`: a long poll that answers as soon as a watched trial ended or completed
a fold, woken by the commit of that change (in this process, or through PostgreSQL's
NOTIFY from another one), and that reads only the watched trials.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from ktrdr_api import catalog
from ktrdr_api.artifacts import ArtifactStore
from ktrdr_api.lifecycle import OperationConflict, OperationNotFound, Transition
from ktrdr_api.model_bundles import delete_model
from ktrdr_api.models import Model, Operation
from ktrdr_api.operations import Operations
from ktrdr_api.strategies import (
    StrategyInvalid,
    apply_overrides,
    check_backtest_settings,
    check_data_overlap,
    check_strategy,
    required_data,
)
from ktrdr_api.walkforward import Orchestrator
from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import (
    BacktestResultView,
    BundleKeeping,
    FoldPlan,
    OperationKind,
    OperationState,
    OperationView,
    StrategyIssue,
    TrainingResultView,
    TrialRequest,
    TrialView,
    TrialWatch,
    TuneInputs,
    TuneListing,
    TuneRequest,
    TuneView,
    WalkforwardInputs,
    WalkforwardRequest,
    WalkforwardResult,
    WindowMode,
)
from ktrdr_core.tuning import (
    SpaceError,
    grid_size,
    objective_of,
    parse_space,
    probe_values,
    ranked_trials,
    space_lines,
    strategy_text,
    trial_role,
)
from ktrdr_core.version import installed_distributions
from ktrdr_core.walkforward import MIN_TEST_DAYS, WalkforwardError, plan_folds

log = logging.getLogger("ktrdr_api.tunes")

_TERMINAL = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
_WINDOW = ("data.start", "data.end")


class SpaceInvalid(StrategyInvalid):
    """The search space has problems, alone or against the strategy (HTTP 422)."""


def _space_issue(problem: Any, filename: str) -> StrategyIssue:
    where = f"{filename}:{problem.line}: " if problem.line is not None else f"{filename}: "
    return StrategyIssue(
        path=f"space.{problem.path}" if problem.path else "space", message=where + problem.message
    )


def _lookup(document: Any, dotted: str) -> bool:
    """Whether ``dotted`` names a value of the strategy (its defaults included)."""
    node = document
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def check_space(request: TuneRequest, effective_text: str, strategy: Any) -> dict[str, Any]:
    """Parse the space and check every distribution against the strategy's schema: each
    path must name a strategy value, and each end of a range (each choice) must give a
    valid strategy, alone and with every other distribution at its low end. Raises
    :class:`SpaceInvalid` with every problem (file, line, path)."""
    name = request.space_name
    try:
        space = parse_space(request.space, name)
    except SpaceError as exc:
        raise SpaceInvalid([_space_issue(p, name) for p in exc.issues]) from None
    lines = space_lines(request.space)
    document = strategy.model_dump(mode="json")

    def issue(path: str, message: str) -> StrategyIssue:
        line = lines.get(path)
        where = f"{name}:{line}: " if line is not None else f"{name}: "
        return StrategyIssue(path=f"space.{path}", message=where + message)

    problems: list[StrategyIssue] = []
    usable = {}
    for path, spec in space.items():
        if path.startswith(_WINDOW) or path == "data.symbols":
            problems.append(issue(path, "the data range and symbols are not searched"))
        elif not _lookup(document, path):
            problems.append(issue(path, "names no value of the strategy (see `ktrdr runs diff`)"))
        else:
            usable[path] = spec
    refused: set[str] = set()

    def probe(path: str, values: dict[str, Any], note: str = "") -> bool:
        try:
            check_strategy(effective_text, values)
        except StrategyInvalid as exc:
            reasons = "; ".join(f"{i.path}: {i.message}" for i in exc.issues[:3])
            problems.append(
                issue(path, f"value {values[path]!r}{note} makes the strategy invalid: {reasons}")
            )
            refused.add(path)
            return False
        return True

    # Each end alone first; then with every other usable distribution at its low end.
    for path, spec in usable.items():
        all(probe(path, {path: value}) for value in probe_values(spec))
    lows = {p: probe_values(spec)[0] for p, spec in usable.items() if p not in refused}
    if len(lows) > 1:
        for path, spec in usable.items():
            if path in refused:
                continue
            others = {k: v for k, v in lows.items() if k != path}
            note = " with the other parameters at their low ends"
            all(probe(path, others | {path: value}, note) for value in probe_values(spec))
    if request.sampler == "grid" and grid_size(usable) is None:
        problems.append(
            StrategyIssue(path="sampler", message="a grid needs a step on every float range")
        )
    if problems:
        raise SpaceInvalid(problems)
    return space


def single_split(first: date, last: date, embargo: int, train_blocks: int) -> list[FoldPlan]:
    """One train/test split of [first, last]: the last ``1 / (train_blocks + 1)`` of the days
    tests, the days before it (less the embargo) train."""
    days = (last - first).days + 1
    test_days = days // (train_blocks + 1)
    if test_days < MIN_TEST_DAYS:
        raise WalkforwardError(
            f"{days} days leave {test_days} test days for one split; at least {MIN_TEST_DAYS}"
        )
    test_start = last - timedelta(days=test_days - 1)
    train_end = test_start - timedelta(days=embargo + 1)
    if train_end <= first:
        raise WalkforwardError(f"the embargo of {embargo} days leaves no training window")
    return [
        FoldPlan(
            index=0, train_start=first, train_end=train_end, test_start=test_start, test_end=last
        )
    ]


class Tunes:
    """Starts studies, creates their trials for the driver holding them, and reads them."""

    def __init__(self, operations: Operations, walkforwards: Orchestrator, store: ArtifactStore):
        self.operations = operations
        self.walkforwards = walkforwards
        self.sessions = walkforwards.sessions
        self.store = store
        self.watch = StudyWatch()

    # --- a researcher starts a study -----------------------------------------------

    def start(self, request: TuneRequest) -> OperationView:
        """Validate strategy, space and range; create the pending study for a backtest worker."""
        from ktrdr_core.walkforward import embargo_days

        check_backtest_settings(request.settings)
        strategy, effective_text = check_strategy(request.strategy, request.overrides)
        space = check_space(request, effective_text, strategy)
        with self.sessions() as session:
            data = required_data(session, strategy)
        check_data_overlap(strategy, data)
        first = max(
            max(ref.first.astimezone(UTC).date() for ref in data), strategy.data.start or date.min
        )
        last = min(
            min(ref.last.astimezone(UTC).date() for ref in data), strategy.data.end or date.max
        )
        embargo_bars = (
            request.embargo_bars if request.embargo_bars is not None else strategy.embargo_bars
        )
        embargo = max(
            embargo_days(embargo_bars, ref.first.date(), ref.last.date(), ref.rows) for ref in data
        )
        days = (last - first).days + 1
        holdout_days = max(MIN_TEST_DAYS, round(days * request.holdout))
        holdout_start = last - timedelta(days=holdout_days - 1)
        search_end = holdout_start - timedelta(days=embargo + 1)
        try:
            if search_end <= first:
                raise WalkforwardError(
                    f"{days} days leave no search range before the holdout and its embargo"
                )
            if request.folds == 1:
                single_split(first, search_end, embargo, request.train_blocks)
            else:
                plan_folds(
                    first,
                    search_end,
                    folds=request.folds,
                    window=WindowMode.ROLLING,
                    train_blocks=request.train_blocks,
                    embargo=embargo,
                )
        except WalkforwardError as exc:
            raise StrategyInvalid(
                [
                    StrategyIssue(
                        path="folds", message=f"the search range {first} … {search_end}: {exc}"
                    )
                ]
            ) from None
        inputs = TuneInputs(
            strategy_name=strategy.name,
            strategy_yaml=effective_text,
            strategy_hash=strategy.strategy_hash(),
            overrides=request.overrides,
            data=data,
            seed=strategy.training.seed,
            device=strategy.training.device,
            versions=installed_distributions(),
            space_yaml=request.space,
            space=space,
            trials=request.trials,
            objective=request.objective,
            direction=request.direction,
            folds=request.folds,
            train_blocks=request.train_blocks,
            embargo_bars=embargo_bars,
            sampler=request.sampler,
            prune=request.prune,
            parallel=request.parallel,
            holdout=request.holdout,
            data_start=first,
            search_end=search_end,
            holdout_start=holdout_start,
            holdout_end=last,
            tune_seed=request.seed,
            keep_best=request.keep_best,
            settings=request.settings,
        )
        return self.operations.create(inputs, references=[r.checksum for r in data])

    # --- the driver asks for a trial ---------------------------------------------------

    def held(self, worker_id: str, operation_id: str, attempt: int) -> OperationView:
        """The study, when ``worker_id`` holds it at ``attempt``; else OperationConflict."""
        view = self.study(operation_id)
        if (
            view.state != OperationState.RUNNING
            or view.worker_id != worker_id
            or view.attempt != attempt
        ):
            raise OperationConflict(
                f"study {operation_id} attempt {attempt} is not held by worker {worker_id} "
                f"(it is {view.state}, attempt {view.attempt}, worker {view.worker_id})"
            )
        return view

    def study(self, operation_id: str) -> OperationView:
        view = self.operations.get(operation_id)
        if view.kind != OperationKind.TUNE:
            raise OperationNotFound(
                f"operation {operation_id} is a {view.kind} operation, not a study"
            )
        return view

    def create_trial(self, worker_id: str, operation_id: str, request: TrialRequest) -> TrialView:
        """Trial ``request.number`` (or its holdout run) as a child walk-forward; the same
        trial asked for twice is the same operation. A parameter set the strategy refuses
        becomes a failed trial with the reason, so the study records it and goes on."""
        study = self.held(worker_id, operation_id, request.attempt)
        inputs = study.inputs
        assert isinstance(inputs, TuneInputs)
        role = trial_role(request.number, holdout=request.holdout)
        unknown = sorted(set(request.params) - set(inputs.space))
        if unknown:
            raise StrategyInvalid(
                [
                    StrategyIssue(path=f"params.{p}", message="not in the study's space")
                    for p in unknown
                ]
            )
        existing = self._child(operation_id, role)
        if existing is not None:
            if _params(existing, inputs) != request.params:
                raise OperationConflict(
                    f"study {operation_id} already has {role} with other parameters"
                )
            return self._trial_view(existing, inputs)
        if request.holdout:
            window = {
                "data.start": inputs.data_start.isoformat(),
                "data.end": inputs.holdout_end.isoformat(),
            }

            def planner(first: date, last: date, embargo: int) -> list[FoldPlan]:
                return [
                    FoldPlan(
                        index=0,
                        train_start=first,
                        train_end=inputs.search_end,
                        test_start=inputs.holdout_start,
                        test_end=last,
                    )
                ]
        else:
            window = {
                "data.start": inputs.data_start.isoformat(),
                "data.end": inputs.search_end.isoformat(),
            }
            planner = None
            if inputs.folds == 1:

                def planner(first: date, last: date, embargo: int) -> list[FoldPlan]:
                    return single_split(first, last, embargo, inputs.train_blocks)

        walkforward = WalkforwardRequest(
            strategy=inputs.strategy_yaml,
            overrides=request.params | window,
            folds=max(2, inputs.folds),
            window=WindowMode.ROLLING,
            train_blocks=inputs.train_blocks,
            embargo_bars=inputs.embargo_bars,
            settings=inputs.settings,
        )
        try:
            view = self.walkforwards.start(
                walkforward, planner=planner, parent_id=operation_id, role=role
            )
        except OperationConflict:
            # A racing request for the same trial won: that one is the trial.
            existing = self._child(operation_id, role)
            if existing is None:
                raise
            return self._trial_view(existing, inputs)
        except KtrdrError as exc:
            view = self._failed_trial(study, inputs, role, request.params, str(exc))
        return self._trial_view(view, inputs)

    def prune(self, worker_id: str, operation_id: str, number: int, attempt: int) -> TrialView:
        """Stop trial ``number`` (its folds so far fell below the median): its walk-forward is
        cancelled with its unfinished folds; the trials table shows it pruned."""
        study = self.held(worker_id, operation_id, attempt)
        inputs = study.inputs
        assert isinstance(inputs, TuneInputs)
        trial = self._child(operation_id, trial_role(number))
        if trial is None:
            raise OperationNotFound(f"study {operation_id} has no trial {number}")
        if trial.state not in _TERMINAL:
            with contextlib.suppress(OperationConflict):  # it ended meanwhile
                trial = self.operations.request_cancel(trial.operation_id)
        return self._trial_view(trial, inputs, study)

    def _failed_trial(
        self,
        study: OperationView,
        inputs: TuneInputs,
        role: str,
        params: dict[str, Any],
        reason: str,
    ) -> OperationView:
        """Record a trial the strategy refused as a failed walk-forward with the reason."""
        record = WalkforwardInputs(
            strategy_name=inputs.strategy_name,
            strategy_yaml=inputs.strategy_yaml,
            strategy_hash=inputs.strategy_hash,
            overrides=params,
            data=inputs.data,
            seed=inputs.seed,
            device=inputs.device,
            window=WindowMode.ROLLING,
            train_blocks=inputs.train_blocks,
            embargo_bars=inputs.embargo_bars,
            folds=[],
            settings=inputs.settings,
            versions=installed_distributions(),
        )
        view = self.operations.create(record, parent_id=study.operation_id, role=role)
        first_line = reason.strip().splitlines()
        detail = "; ".join(line.strip() for line in first_line[:4])
        return self.operations.conclude(
            view.operation_id,
            OperationState.FAILED,
            error=f"the parameters make no valid run: {detail}",
        )

    # --- reading a study ----------------------------------------------------------------

    def _child(self, operation_id: str, role: str) -> OperationView | None:
        for child in self.operations.children(operation_id):
            if child.role == role:
                return child
        return None

    def listing(self, state: OperationState | None, limit: int) -> list[TuneListing]:
        """The studies, newest first, each with how many trials ended and its best value so
        far (the children of every listed study read in one query)."""
        studies = self.operations.list_operations(kind=OperationKind.TUNE, state=state, limit=limit)
        children = self.operations.children_of([s.operation_id for s in studies])
        listed = []
        for study in studies:
            inputs = study.inputs
            assert isinstance(inputs, TuneInputs)
            trials = {c.role: c for c in children[study.operation_id] if _is_trial(c.role)}
            for role, op_id in inputs.reuse.items():
                if role not in trials:
                    with contextlib.suppress(OperationNotFound):
                        trials[role] = self.operations.get(op_id)
            values = [
                value
                for t in trials.values()
                if t.state == OperationState.COMPLETED
                and isinstance(t.result, WalkforwardResult)
                and (value := objective_of(t.result.summary, inputs.objective)) is not None
            ]
            listed.append(
                TuneListing(
                    **study.model_dump(),
                    trials_done=sum(t.state in _TERMINAL for t in trials.values()),
                    best_value=_best_of(values, inputs.direction),
                )
            )
        return listed

    def view(self, operation_id: str) -> TuneView:
        """The study with its trials (those a retried study reuses included) by number."""
        study = self.study(operation_id)
        inputs = study.inputs
        assert isinstance(inputs, TuneInputs)
        children = {c.role: c for c in self.operations.children(operation_id) if c.role}
        for role, op_id in inputs.reuse.items():
            if role not in children:
                with contextlib.suppress(OperationNotFound):
                    children[role] = self.operations.get(op_id)
        trials, holdout = [], []
        for role, child in children.items():
            (holdout if role.startswith("holdout:") else trials).append(
                self._trial_view(child, inputs, study)
            )
        return TuneView(
            operation=study,
            trials=sorted(trials, key=lambda t: t.number),
            holdout=sorted(holdout, key=lambda t: t.number),
        )

    def _trial_view(
        self, child: OperationView, inputs: TuneInputs, study: OperationView | None = None
    ) -> TrialView:
        number = (child.role or "trial:0").partition(":")[2]
        result = child.result if isinstance(child.result, WalkforwardResult) else None
        folds = child.inputs.folds if isinstance(child.inputs, WalkforwardInputs) else []
        fold_values: list[float | None] = []
        workers: list[str] = []
        trained: dict[str, int | None] = {}  # model id -> its bundle's bytes
        folds_done = 0
        for grandchild in self.operations.children(child.operation_id):
            if isinstance(grandchild.result, TrainingResultView) and grandchild.result.model_id:
                trained[grandchild.result.model_id] = grandchild.result.bundle_bytes
            workers += [
                a.worker_id
                for a in grandchild.reproducibility.attempts
                if a.worker_id not in workers
            ]
            role = grandchild.role or ""
            if role.startswith("backtest:") and isinstance(grandchild.result, BacktestResultView):
                folds_done += 1
                index = int(role.partition(":")[2])
                fold_values += [None] * (index + 1 - len(fold_values))
                fold_values[index] = objective_of(grandchild.result.summary, inputs.objective)
        started, finished = child.started_at, child.finished_at
        summary = result.summary if result else {}
        tested = [f for f in summary.get("folds", []) if isinstance(f, dict)]
        bars = sum(int(f.get("bars") or 0) for f in tested) or None
        test_days = (
            sum(
                (date.fromisoformat(f["test_end"]) - date.fromisoformat(f["test_start"])).days + 1
                for f in tested
            )
            if tested
            else None
        )
        stored = self._stored_models(trained)
        return TrialView(
            models=sorted(stored),
            models_deleted=len(trained) - len(stored),
            freed_bytes=sum(size or 0 for m, size in trained.items() if m not in stored),
            metrics={
                key: value
                for key in (summary.get("metrics") or {})
                if (value := objective_of(summary, key)) is not None
            },
            bars=bars,
            test_days=test_days,
            number=int(number),
            role=child.role or "",
            operation_id=child.operation_id,
            state=child.state,
            params=_params(child, inputs),
            value=objective_of(result.summary, inputs.objective) if result else None,
            fold_values=fold_values,
            folds_done=folds_done,
            folds=len(folds),
            error=child.error,
            # Only the driver cancels a trial of a study that itself goes on: a pruned one.
            pruned=child.state == OperationState.CANCELLED
            and study is not None
            and not study.cancel_requested
            and study.state
            in (OperationState.PENDING, OperationState.RUNNING, OperationState.COMPLETED),
            workers=workers,
            started_at=started,
            finished_at=finished,
            duration_s=(finished - started).total_seconds() if started and finished else None,
        )

    def _stored_models(self, model_ids: Iterable[str]) -> set[str]:
        """Which of ``model_ids`` are still catalogued."""
        wanted = list(model_ids)
        if not wanted:
            return set()
        with self.sessions() as session:
            return set(session.scalars(select(Model.id).where(Model.id.in_(wanted))))

    # --- the driver waits for its trials -----------------------------------------------

    def changes(
        self, worker_id: str, operation_id: str, request: TrialWatch
    ) -> tuple[list[TrialView], set[str]]:
        """The trials of ``request.known`` that ended or completed more folds than the driver
        saw (one query for their states, one for their fold counts; views only for those),
        and the operations whose changes concern the watch (the study and those trials)."""
        study = self.held(worker_id, operation_id, request.attempt)
        inputs = study.inputs
        assert isinstance(inputs, TuneInputs)
        roles = list(request.known)
        with self.sessions() as session:
            rows = session.execute(
                select(Operation.id, Operation.role, Operation.state).where(
                    Operation.parent_id == operation_id, Operation.role.in_(roles)
                )
            ).all()
            folds = dict(
                session.execute(  # type: ignore[arg-type]
                    select(Operation.parent_id, func.count())
                    .where(
                        Operation.parent_id.in_([row.id for row in rows]),
                        Operation.kind == OperationKind.BACKTEST.value,
                        Operation.state == OperationState.COMPLETED.value,
                    )
                    .group_by(Operation.parent_id)
                ).all()
            )
        changed = [
            row.id
            for row in rows
            if OperationState(row.state).is_terminal
            or folds.get(row.id, 0) > request.known[row.role]
        ]
        views = [self._trial_view(self.operations.get(i), inputs, study) for i in changed]
        return views, {operation_id, *(row.id for row in rows)}

    async def wait_for_changes(
        self, worker_id: str, operation_id: str, request: TrialWatch
    ) -> list[TrialView]:
        """:meth:`changes`, waiting up to ``request.wait_s`` seconds for some: woken by the
        commit of a change to the study or one of the watched trials' children."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.wait_s
        with self.watch.watching({operation_id}) as waiter:
            while True:
                waiter.event.clear()
                changed, ids = await asyncio.to_thread(
                    self.changes, worker_id, operation_id, request
                )
                if changed:
                    return changed
                if ids != waiter.ids:
                    # Watch the trials from now on, and look again: a fold that ended
                    # before they were watched was not announced to this wait.
                    waiter.ids = ids
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    return []
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.event.wait(), left)

    # --- keeping the best trials' bundles ------------------------------------------------

    def keep_bundles(self, worker_id: str, operation_id: str, attempt: int) -> BundleKeeping:
        """Delete the models of every trial of the study (and of its holdout run) outside
        its ``keep_best`` best, as the driver holding it asks once the holdout runs ended.
        Idempotent: a model already gone is skipped (its file too, when an interrupted
        deletion left it behind). A model that a pending or running operation uses stays,
        with a warning in the log; a training that has not ended yet is listed in
        ``unsettled`` for the driver to ask again."""
        self.held(worker_id, operation_id, attempt)
        view = self.view(operation_id)
        inputs = view.operation.inputs
        assert isinstance(inputs, TuneInputs)
        kept = [t.number for t in ranked_trials(view.trials, inputs.direction)]
        kept = kept[: inputs.keep_best]
        runs = view.trials + view.holdout
        # Two trainings of equal parameters may make one bundle, one model: a kept one.
        keep = {m for run in runs if run.number in kept for m in run.models}
        deleted: list[str] = []
        unsettled: list[str] = []
        for run in runs:
            if run.number in kept:
                continue
            for training in self._trainings(run.operation_id):
                if training.state not in _TERMINAL:
                    unsettled.append(training.operation_id)
                    continue
                result = training.result
                if not isinstance(result, TrainingResultView) or result.model_id in (None, *keep):
                    continue  # it made no model, or a kept trial's
                if self._delete(result.model_id, result.bundle_sha256, run.role):
                    deleted.append(result.model_id)
        if deleted:
            log.info(
                "study %s keeps the bundles of trials %s (best %d); deleted %d models",
                operation_id,
                kept,
                inputs.keep_best,
                len(deleted),
                extra={"operation_id": operation_id},
            )
        after = self.view(operation_id)
        return BundleKeeping(
            keep_best=inputs.keep_best,
            kept=kept,
            deleted=deleted,
            freed_bytes=sum(t.freed_bytes for t in after.trials + after.holdout),
            unsettled=unsettled,
        )

    def _trainings(self, run_id: str) -> Iterator[OperationView]:
        for child in self.operations.children(run_id):
            if child.kind == OperationKind.TRAINING:
                yield child

    def _delete(self, model_id: str, bundle_sha256: str, role: str) -> bool:
        """Delete one model of a trial outside the best; whether this call deleted it."""
        try:
            delete_model(self.sessions, self.store, model_id)
        except catalog.NotFound:
            # Gone already. A deletion interrupted between its commit and the file's removal
            # left the file with no catalogue row (every stored file has one): remove it.
            with self.sessions() as session:
                orphan = catalog.artifact(session, bundle_sha256) is None
            if orphan and self.store.exists(bundle_sha256):
                self.store.delete(bundle_sha256)
            return False
        except catalog.InUse as exc:
            log.warning("%s keeps model %s for now: %s", role, model_id, exc)
            return False
        return True

    def best_strategy(self, operation_id: str) -> dict[str, Any]:
        """The best completed trial, and the study's strategy with its parameters as YAML
        whose header names the study and its holdout result."""
        view = self.view(operation_id)
        inputs = view.operation.inputs
        assert isinstance(inputs, TuneInputs)
        ranked = ranked_trials(view.trials, inputs.direction)
        if not ranked:
            raise OperationConflict(
                f"study {operation_id} has no completed trial with a {inputs.objective}"
            )
        best = ranked[0]
        from ktrdr_core.strategy.yaml_source import parse_yaml

        document = parse_yaml(inputs.strategy_yaml).data
        problems = apply_overrides(document, best.params)
        if problems:
            raise StrategyInvalid(problems)
        holdout = next((h for h in view.holdout if h.number == best.number), None)
        held = (
            f"{holdout.value:.4g}"
            if holdout is not None and holdout.value is not None
            else "not evaluated"
        )
        header = [
            f"best of study {operation_id} ({inputs.strategy_name}): trial {best.number} of "
            f"{len(view.trials)}, {inputs.objective} {best.value:.4g} during the search "
            f"({inputs.direction}), {held} on the holdout "
            f"{inputs.holdout_start} … {inputs.holdout_end}",
            "parameters: " + ", ".join(f"{k}={v!r}" for k, v in best.params.items()),
        ]
        text = strategy_text(document, header)
        return {
            "trial": best.model_dump(mode="json"),
            "holdout": None if holdout is None else holdout.model_dump(mode="json"),
            "strategy": text,
        }


def _is_trial(role: str | None) -> bool:
    return bool(role) and role.startswith("trial:")


def _best_of(values: list[float], direction: str) -> float | None:
    """The best of ``values`` for the study's ``direction`` (None when there is none)."""
    return (max if direction == "maximize" else min)(values, default=None)


def _params(child: OperationView, inputs: TuneInputs) -> dict[str, Any]:
    overrides = getattr(child.inputs, "overrides", {}) or {}
    return {k: v for k, v in overrides.items() if k in inputs.space}


class _Waiter:
    def __init__(self, ids: set[str], loop: asyncio.AbstractEventLoop):
        self.ids = ids
        self.loop = loop
        self.event = asyncio.Event()


class StudyWatch:
    """The drivers' long polls (:meth:`Tunes.wait_for_changes`): each waits on an event
    that is set when a change to an operation it watches is committed — the study itself,
    or a trial one of whose children ended. ``notice`` hears this process's transitions;
    ``notify`` an id from PostgreSQL (``ended:<parent>``, :mod:`ktrdr_api.coordination`)
    for those committed by another process. Both are callable from any thread."""

    def __init__(self) -> None:
        self._waiters: dict[int, _Waiter] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def watching(self, ids: set[str]) -> Iterator[_Waiter]:
        waiter = _Waiter(ids, asyncio.get_running_loop())
        key = next(self._ids)
        with self._lock:
            self._waiters[key] = waiter
        try:
            yield waiter
        finally:
            with self._lock:
                del self._waiters[key]

    def notify(self, operation_id: str) -> None:
        """A change to ``operation_id`` (or to one of its children) was committed."""
        with self._lock:
            waiters = [w for w in self._waiters.values() if operation_id in w.ids]
        for waiter in waiters:
            with contextlib.suppress(RuntimeError):  # the loop closed during shut-down
                waiter.loop.call_soon_threadsafe(waiter.event.set)

    def notify_all(self) -> None:
        """Wake every wait (wake-ups from other processes may have been lost)."""
        with self._lock:
            waiters = list(self._waiters.values())
        for waiter in waiters:
            with contextlib.suppress(RuntimeError):
                waiter.loop.call_soon_threadsafe(waiter.event.set)

    def notice(self, transition: Transition) -> None:
        """``Operations.on_transition``: this process committed ``transition``."""
        if self._waiters:
            self.notify(transition.operation_id)
            if transition.ended_child_of:
                self.notify(transition.ended_child_of)


class TuneKeeper:
    """Cancels the unfinished trials of a study that was cancelled or ended, woken by the
    study's transitions, and on a slow sweep (a backend restart in between)."""

    def __init__(self, operations: Operations, *, sweep_s: float = 5.0):
        self.operations = operations
        self.sweep_s = sweep_s
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def notice(self, transition: Transition) -> None:
        """``Operations.on_transition``: a study was asked to cancel, or ended."""
        if transition.kind != OperationKind.TUNE:
            return
        ending = transition.event == "request_cancel" or transition.target in _TERMINAL
        if ending and self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.sweep_s)
            self._wake.clear()
            try:
                await asyncio.to_thread(self.sweep)
            except SQLAlchemyError as exc:
                log.warning("study sweep failed: %s", str(exc).splitlines()[0])
            except Exception:
                log.exception("study sweep failed; the next one tries again")

    def sweep(self) -> None:
        """Cancel every unfinished child of a study that is ending or ended."""
        from sqlalchemy import select

        from ktrdr_api.models import Operation

        ops = self.operations
        parent = Operation.__table__.alias("parent")
        query = (
            select(Operation.id)
            .join(parent, parent.c.id == Operation.parent_id)
            .where(
                parent.c.kind == OperationKind.TUNE.value,
                (parent.c.state != OperationState.RUNNING.value) | parent.c.cancel_requested,
                parent.c.state != OperationState.PENDING.value,
                Operation.state.in_([OperationState.PENDING.value, OperationState.RUNNING.value]),
                Operation.cancel_requested.is_(False),
            )
        )
        with ops.sessions() as session:
            ids = list(session.scalars(query))
        for child_id in ids:
            with contextlib.suppress(OperationConflict, OperationNotFound):
                ops.request_cancel(child_id)
