"""A walk-forward's children: what each one is given, and how far they got together.

Each child has a role in its walk-forward (a :class:`~ktrdr_core.protocol.ChildRole`, see
:mod:`ktrdr_api.walkforward`): fold *i*'s training, fold *i*'s backtest, and the stitching
report. The
functions here build and create one child from the walk-forward and the children it needs;
:func:`progress_of` counts what completed. The orchestrator decides when.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy.orm import Session, sessionmaker

from ktrdr_api.operations import Operations
from ktrdr_api.strategies import backtest_inputs, check_strategy, training_inputs
from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import (
    BacktestResultView,
    ChildKind,
    ChildRole,
    FoldOutcome,
    OperationState,
    OperationView,
    Progress,
    TrainingResultView,
    WalkforwardInputs,
    WalkforwardReportInputs,
)
from ktrdr_core.version import installed_distributions


class FoldUnusable(KtrdrError):
    """A fold's completed child left nothing the next step can use."""


def _plan(parent: OperationView) -> WalkforwardInputs:
    inputs = parent.inputs
    assert isinstance(inputs, WalkforwardInputs), f"{parent.operation_id} is no walk-forward"
    return inputs


def create_training(operations: Operations, parent: OperationView, index: int) -> OperationView:
    """Fold ``index``'s training: the walk-forward's strategy on the fold's training window."""
    inputs = _plan(parent)
    fold = inputs.folds[index]
    window = {
        "data.start": fold.train_start.isoformat(),
        "data.end": fold.train_end.isoformat(),
    }
    # The parent's effective text already holds its overrides; only the window changes.
    strategy, text = check_strategy(inputs.strategy_yaml, window)
    child, device = training_inputs(strategy, text, inputs.overrides | window, inputs.data)
    return operations.create(
        child,
        device=device,
        references=[ref.checksum for ref in inputs.data],
        parent_id=parent.operation_id,
        role=ChildRole.train(index),
    )


def create_backtest(
    operations: Operations,
    sessions: sessionmaker[Session],
    parent: OperationView,
    index: int,
    train: OperationView,
) -> OperationView:
    """Fold ``index``'s backtest of the model ``train`` made, over the fold's test window.

    Raises FoldUnusable when the training left no model, and the catalogue's NotFound or
    MissingData when the model or its data was deleted since."""
    inputs = _plan(parent)
    fold = inputs.folds[index]
    model_id = _model_of(train)
    if model_id is None:
        raise FoldUnusable(f"training {train.operation_id} completed without a model")
    start = datetime.combine(fold.test_start, time(0), tzinfo=UTC)
    # The test window is inclusive of its last day; a backtest's end is an instant.
    end = datetime.combine(fold.test_end + timedelta(days=1), time(0), tzinfo=UTC)
    end -= timedelta(microseconds=1)
    with sessions() as session:
        child, name = backtest_inputs(session, model_id, start, end, inputs.settings)
    return operations.create(
        child,
        references=[child.bundle_sha256, *(ref.checksum for ref in child.data)],
        strategy_name=name,
        parent_id=parent.operation_id,
        role=ChildRole.backtest(index),
    )


def _model_of(train: OperationView) -> str | None:
    """The model a completed training was catalogued as (None: it left none)."""
    return train.result.model_id if isinstance(train.result, TrainingResultView) else None


def create_report(
    operations: Operations, parent: OperationView, children: dict[ChildRole, OperationView]
) -> OperationView:
    """The job that stitches every fold's backtest into one report (all completed)."""
    inputs = _plan(parent)
    outcomes = []
    for fold in inputs.folds:
        train = children[ChildRole.train(fold.index)]
        test = children[ChildRole.backtest(fold.index)]
        model_id = _model_of(train)
        if model_id is None:
            raise FoldUnusable(f"training {train.operation_id} completed without a model")
        if not isinstance(test.result, BacktestResultView):
            raise FoldUnusable(f"backtest {test.operation_id} completed without a report")
        summary = train.result.summary if train.result else {}
        importance = {
            row["feature"]: float(row["importance"])
            for row in summary.get("explanations", [])
            if isinstance(row, dict) and "feature" in row and "importance" in row
        }
        outcomes.append(
            FoldOutcome(
                index=fold.index,
                test_start=fold.test_start,
                test_end=fold.test_end,
                training_operation_id=train.operation_id,
                backtest_operation_id=test.operation_id,
                model_id=model_id,
                report_sha256=test.result.report_sha256,
                importance=importance,
            )
        )
    job = WalkforwardReportInputs(
        walkforward_id=parent.operation_id,
        strategy_name=inputs.strategy_name,
        strategy_hash=inputs.strategy_hash,
        data=inputs.data,
        window=inputs.window,
        folds=outcomes,
        versions=installed_distributions(),
    )
    return operations.create(
        job,
        references=[o.report_sha256 for o in outcomes] + [r.checksum for r in inputs.data],
        parent_id=parent.operation_id,
        role=ChildRole.report(),
    )


def progress_of(children: dict[ChildRole, OperationView], folds: int) -> Progress:
    """The walk-forward's progress from its children: one step per completed training,
    backtest and report (``2 * folds + 1`` steps), running children counted by their own
    percent; below 100 % until the report is stitched."""

    def done(kind: ChildKind) -> int:
        return sum(
            1
            for role, c in children.items()
            if role.kind == kind and c.state == OperationState.COMPLETED
        )

    trained, tested = done(ChildKind.TRAIN), done(ChildKind.BACKTEST)
    running_share = sum(
        c.progress.percent / 100 for c in children.values() if c.state == OperationState.RUNNING
    )
    report = children.get(ChildRole.report())
    stitched = report is not None and report.state == OperationState.COMPLETED
    percent = 100 * (trained + tested + running_share + stitched) / (2 * folds + 1)
    message = f"{trained}/{folds} folds trained, {tested}/{folds} backtested"
    if stitched:
        message += ", report stitched"
    elif report is not None:
        message += ", stitching the report"
    return Progress(
        percent=percent if stitched else min(percent, 99.0),
        step=trained + tested + stitched,
        total_steps=2 * folds + 1,
        message=message,
    )


def why_not_completed(child: OperationView) -> str:
    """One line on a child that was cancelled or failed, for the walk-forward's error."""
    if child.state == OperationState.CANCELLED:
        return f"{child.operation_id} was cancelled"
    first_line = (child.error or "failed").strip().splitlines()[0]
    return f"{child.operation_id} failed ({first_line[:200]})"
