"""Walk-forward operations: the backend plans the folds and runs them as child operations.

A walk-forward is an operation no worker claims (``SERVED_BY`` maps it to nobody). It starts
running; :class:`Orchestrator` then drives it by creating children, each with a ``role``:

- ``train:i`` — a training operation of the strategy restricted to fold *i*'s training
  window (``data.start``/``data.end`` overridden), created at once for every fold, so the
  folds train in parallel on every training worker;
- ``backtest:i`` — a backtest of fold *i*'s model on its test window, created when
  ``train:i`` completes;
- ``report`` — a ``wf_report`` job on a backtest worker that stitches the folds' test
  windows into one out-of-sample equity curve with overall and per-fold metrics, the
  stability of the feature ranking across folds, and its page's series; created when every
  ``backtest:i`` completed. Its completion completes the walk-forward.

The orchestrator is level-triggered: each pass reads the walk-forward and its children and
creates what is missing, so a pass after a backend restart simply carries on. Passes run
after every child's terminal transition (announced to every API process through PostgreSQL)
and on a slow periodic sweep, in the one process that holds the ``walkforward`` duty (see
:mod:`ktrdr_api.coordination`); the (parent, role) unique constraint makes two racing passes
(the one a new walk-forward's request makes, the leader's) create a child once.

A child that fails fails the walk-forward once no child is still running, naming the
folds; ``ops retry`` on the walk-forward then reuses every completed child and runs only the
rest. Cancelling the walk-forward cancels its children.

What each child is given, and the progress they add up to, is
:mod:`ktrdr_api.walkforward_children`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, date

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ktrdr_api import catalog
from ktrdr_api.coordination import Duty
from ktrdr_api.lifecycle import OperationConflict, OperationNotFound, Transition
from ktrdr_api.operations import Operations
from ktrdr_api.strategies import (
    StrategyInvalid,
    check_backtest_settings,
    check_data_overlap,
    check_strategy,
    required_data,
)
from ktrdr_api.walkforward_children import (
    FoldUnusable,
    create_backtest,
    create_report,
    create_training,
    progress_of,
    why_not_completed,
)
from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import (
    ChildRole,
    FoldPlan,
    OperationKind,
    OperationState,
    OperationView,
    StrategyIssue,
    WalkforwardInputs,
    WalkforwardReportResultView,
    WalkforwardRequest,
    WalkforwardResult,
)
from ktrdr_core.version import installed_distributions

log = logging.getLogger("ktrdr_api.walkforward")

Planner = Callable[[date, date, int], list[FoldPlan]]
"""(first day, last day, embargo days) -> the folds of a walk-forward."""

SWEEP_S = 2.0
"""Seconds between two passes over every running walk-forward when nothing announced one."""


_CHILD_KINDS = {
    OperationKind.TRAINING.value,
    OperationKind.BACKTEST.value,
    OperationKind.WALKFORWARD_REPORT.value,
}
_TERMINAL = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}


class Orchestrator:
    """Drives every running walk-forward forward (see the module docstring)."""

    def __init__(
        self,
        operations: Operations,
        sessions: sessionmaker[Session],
        *,
        sweep_s: float = SWEEP_S,
    ):
        self.operations = operations
        self.sessions = sessions
        self.sweep_s = sweep_s
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # one pass at a time per process keeps the log tidy

    def start(
        self,
        request: WalkforwardRequest,
        *,
        planner: Planner | None = None,
        parent_id: str | None = None,
        role: str | None = None,
    ) -> OperationView:
        """Validate the strategy, plan the folds and create the running walk-forward.

        ``planner`` (first day, last day, embargo days -> folds) replaces the even cut of
        :func:`~ktrdr_core.walkforward.plan_folds` (a study's single-split trials and holdout
        runs); ``parent_id``/``role`` make the walk-forward a study's child."""
        from ktrdr_core.walkforward import WalkforwardError, embargo_days, plan_folds

        check_backtest_settings(request.settings)
        strategy, effective_text = check_strategy(request.strategy, request.overrides)
        with self.sessions() as session:
            data = required_data(session, strategy)
            # With an exchange named, its sessions (the exact gap report's count) space the
            # embargo's bars, as they annualise the backtests: one calendar per dataset.
            exchange_bars = [catalog.exchange_bars(session, ref) for ref in data]
        check_data_overlap(strategy, data)
        # Several symbols: the folds are cut on the calendar they share, from the latest
        # first day to the earliest last day (required_data refused any symbol short of it).
        first = max(
            max(ref.first.astimezone(UTC).date() for ref in data), strategy.data.start or date.min
        )
        last = min(
            min(ref.last.astimezone(UTC).date() for ref in data), strategy.data.end or date.max
        )
        embargo_bars = (
            request.embargo_bars if request.embargo_bars is not None else strategy.embargo_bars
        )
        # The embargo spans ``embargo_bars`` bars of every symbol: the widest in days.
        embargo = max(
            embargo_days(embargo_bars, ref.first.date(), ref.last.date(), ref.rows, exchange_bars=n)
            for ref, n in zip(data, exchange_bars, strict=True)
        )
        try:
            if planner is not None:
                folds = planner(first, last, embargo)
            else:
                folds = plan_folds(
                    first,
                    last,
                    folds=request.folds,
                    window=request.window,
                    train_blocks=request.train_blocks,
                    embargo=embargo,
                )
        except WalkforwardError as exc:
            raise StrategyInvalid([StrategyIssue(path="folds", message=str(exc))]) from None
        inputs = WalkforwardInputs(
            strategy_name=strategy.name,
            strategy_yaml=effective_text,
            strategy_hash=strategy.strategy_hash(),
            overrides=request.overrides,
            data=data,
            seed=strategy.training.seed,
            device=strategy.training.device,
            window=request.window,
            train_blocks=request.train_blocks,
            embargo_bars=embargo_bars,
            folds=folds,
            settings=request.settings,
            versions=installed_distributions(),
        )
        view = self.operations.create(
            inputs, references=[r.checksum for r in data], parent_id=parent_id, role=role
        )
        self.advance(view.operation_id)
        return self.operations.get(view.operation_id)

    # --- triggers -------------------------------------------------------------------

    @staticmethod
    def concerns(transition: Transition) -> bool:
        """Whether a pass should follow ``transition``: a child ended, or a walk-forward was
        cancelled."""
        ended_child = transition.kind in _CHILD_KINDS and transition.target in _TERMINAL
        cancelled = (
            transition.kind == OperationKind.WALKFORWARD and transition.event == "request_cancel"
        )
        return ended_child or cancelled

    def notice(self, transition: Transition) -> None:
        """``Operations.on_transition``: wake the passes when the transition concerns them."""
        if self.concerns(transition):
            self.wake()

    def wake(self) -> None:
        """Ask for a pass now; callable from any thread."""
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed during shut-down
                self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, duty: Duty | None = None) -> None:
        """The background task: a pass over running walk-forwards when woken, or every
        ``sweep_s`` seconds. It ends only when cancelled. With ``duty``, only while this
        process holds it (one process drives the walk-forwards; another takes over within a
        sweep when it dies)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.sweep_s)
            self._wake.clear()
            if duty is not None and not await asyncio.to_thread(duty.held):
                continue
            try:
                await asyncio.to_thread(self.sweep)
            except SQLAlchemyError as exc:
                log.warning("walk-forward pass failed: %s", str(exc).splitlines()[0])
            except Exception:
                # sweep() contains each walk-forward's own faults; anything reaching here is a
                # bug, and the loop must outlive it or every walk-forward stops moving.
                log.exception("walk-forward sweep failed; the next one tries again")

    def sweep(self) -> None:
        """One pass over every running walk-forward; one that breaks does not stop the rest."""
        for parent_id in self.operations.running_ids(OperationKind.WALKFORWARD):
            self.advance(parent_id)

    # --- one pass -------------------------------------------------------------------

    def advance(self, parent_id: str) -> None:
        """Create whatever the walk-forward needs next, or end it.

        A pass that raises (its data or a fold's model was deleted, a child's result is
        unusable) fails this walk-forward at once with the reason, cancelling its unfinished
        children; the database being unreachable only postpones it to the next pass.
        """
        with self._lock:
            try:
                self._advance(parent_id)
            except OperationConflict as exc:
                # Someone else moved first (a racing pass, a cancel): the next pass sees it.
                log.debug("walk-forward %s: %s", parent_id, exc)
            except SQLAlchemyError:
                raise
            except Exception as exc:
                self._abandon(parent_id, exc)

    def _abandon(self, parent_id: str, exc: Exception) -> None:
        """End a walk-forward whose pass raised ``exc``: cancelled when a cancel was asked
        for, failed with the reason otherwise; its unfinished children are cancelled."""
        reason = str(exc) if isinstance(exc, KtrdrError) else f"{type(exc).__name__}: {exc}"
        log.error(
            "walk-forward %s cannot go on: %s",
            parent_id,
            reason,
            # A domain error says all there is to say; anything else is a bug: its traceback.
            exc_info=None if isinstance(exc, KtrdrError) else exc,
            extra={"operation_id": parent_id},
        )
        ops = self.operations
        try:
            parent = ops.get(parent_id)
            if parent.state != OperationState.RUNNING:
                return
            for child in ops.children(parent_id):
                if child.state not in _TERMINAL:
                    with contextlib.suppress(OperationConflict):
                        ops.request_cancel(child.operation_id)
            if parent.cancel_requested:
                ops.conclude(
                    parent_id,
                    OperationState.CANCELLED,
                    error=f"cancelled on request, with its child operations ({reason})",
                )
            else:
                ops.conclude(
                    parent_id,
                    OperationState.FAILED,
                    error=f"the walk-forward cannot go on: {reason}. Its unfinished children "
                    f"were cancelled; `ktrdr ops retry {parent_id}` reuses the completed "
                    "folds once the cause is fixed",
                )
        except OperationConflict as conflict:
            log.debug("walk-forward %s: %s", parent_id, conflict)

    def _advance(self, parent_id: str) -> None:
        ops = self.operations
        parent = ops.get(parent_id)
        if parent.state != OperationState.RUNNING:
            return
        inputs = parent.inputs
        assert isinstance(inputs, WalkforwardInputs)
        children = {c.child_role: c for c in ops.children(parent_id) if c.child_role}
        for stored, op_id in inputs.reuse.items():
            role = ChildRole.parse(stored)
            if role not in children:
                with contextlib.suppress(OperationNotFound):
                    children[role] = ops.get(op_id)

        if parent.cancel_requested:
            self._cancel(parent, children)
            return

        n = len(inputs.folds)
        for fold in inputs.folds:
            trains, tests = ChildRole.train(fold.index), ChildRole.backtest(fold.index)
            train = children.get(trains)
            if train is None:
                children[trains] = create_training(ops, parent, fold.index)
            elif train.state == OperationState.COMPLETED and tests not in children:
                children[tests] = create_backtest(ops, self.sessions, parent, fold.index, train)

        active = [c for c in children.values() if c.state not in _TERMINAL]
        unfinished = _TERMINAL - {OperationState.COMPLETED}
        broken = sorted(
            (role for role, c in children.items() if c.state in unfinished),
            key=ChildRole.sort_key,
        )
        if broken:
            if not active:
                details = "; ".join(
                    f"{role}: {why_not_completed(children[role])}" for role in broken
                )
                ops.conclude(
                    parent_id,
                    OperationState.FAILED,
                    error=f"{len(broken)} child operation(s) did not complete: {details}. "
                    f"`ktrdr ops retry {parent_id}` reuses the completed folds and reruns "
                    "only these",
                )
            self._report_progress(parent, children, n)
            return

        backtests = [children.get(ChildRole.backtest(i)) for i in range(n)]
        if all(b is not None and b.state == OperationState.COMPLETED for b in backtests):
            report = children.get(ChildRole.report())
            if report is None:
                children[ChildRole.report()] = create_report(ops, parent, children)
            elif report.state == OperationState.COMPLETED:
                self._report_progress(parent, children, n)  # the final words: all done
                self._complete(parent, children)
                return
        self._report_progress(parent, children, n)

    # --- endings and progress -------------------------------------------------------

    def _complete(self, parent: OperationView, children: dict[ChildRole, OperationView]) -> None:
        report = children[ChildRole.report()]
        stitched = report.result
        if not isinstance(stitched, WalkforwardReportResultView):
            raise FoldUnusable(f"report {report.operation_id} completed without a report")
        result = WalkforwardResult(
            **stitched.model_dump(exclude={"kind"}),
            report_operation_id=report.operation_id,
            children={
                str(role): children[role].operation_id
                for role in sorted(children, key=ChildRole.sort_key)
            },
        )
        self.operations.conclude(parent.operation_id, OperationState.COMPLETED, result=result)

    def _cancel(self, parent: OperationView, children: dict[ChildRole, OperationView]) -> None:
        ops = self.operations
        own = {c.operation_id for c in ops.children(parent.operation_id)}
        for child in children.values():
            # Reused children belong to an earlier walk-forward: never cancel those.
            if child.operation_id in own and child.state not in _TERMINAL:
                with contextlib.suppress(OperationConflict):
                    ops.request_cancel(child.operation_id)
        still = [c for c in ops.children(parent.operation_id) if c.state not in _TERMINAL]
        if not still:
            ops.conclude(
                parent.operation_id,
                OperationState.CANCELLED,
                error="cancelled on request, with its child operations",
            )

    def _report_progress(
        self, parent: OperationView, children: dict[ChildRole, OperationView], folds: int
    ) -> None:
        progress = progress_of(children, folds)
        if progress.model_dump() != parent.progress.model_dump():
            self.operations.report_progress(parent.operation_id, progress)
