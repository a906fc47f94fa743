"""A walk-forward's children: what each one is given, and how far they got together.

Each child has a ``role`` in its walk-forward (see :mod:`ktrdr_api.walkforward`): fold *i*'s
training ``train:i``, fold *i*'s backtest ``backtest:i``, and the stitching ``report``. The
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
    FoldOutcome,
    OperationState,
    OperationView,
    Progress,
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
        role=f"train:{index}",
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
    model_id = (train.result or {}).get("model_id")
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
        role=f"backtest:{index}",
    )


def create_report(
    operations: Operations, parent: OperationView, children: dict[str, OperationView]
) -> OperationView:
    """The job that stitches every fold's backtest into one report (all completed)."""
    inputs = _plan(parent)
    outcomes = []
    for fold in inputs.folds:
        train, test = children[f"train:{fold.index}"], children[f"backtest:{fold.index}"]
        summary = (train.result or {}).get("summary") or {}
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
                model_id=(train.result or {})["model_id"],
                report_sha256=(test.result or {})["report_sha256"],
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
        role="report",
    )


def progress_of(children: dict[str, OperationView], folds: int) -> Progress:
    """The walk-forward's progress from its children: one step per completed training,
    backtest and report (``2 * folds + 1`` steps), running children counted by their own
    percent; below 100 % until the report is stitched."""

    def done(prefix: str) -> int:
        return sum(
            1
            for role, c in children.items()
            if role.startswith(prefix) and c.state == OperationState.COMPLETED
        )

    trained, tested = done("train:"), done("backtest:")
    running_share = sum(
        c.progress.percent / 100 for c in children.values() if c.state == OperationState.RUNNING
    )
    stitched = "report" in children and children["report"].state == OperationState.COMPLETED
    percent = 100 * (trained + tested + running_share + stitched) / (2 * folds + 1)
    message = f"{trained}/{folds} folds trained, {tested}/{folds} backtested"
    if stitched:
        message += ", report stitched"
    elif "report" in children:
        message += ", stitching the report"
    return Progress(
        percent=percent if stitched else min(percent, 99.0),
        step=trained + tested + stitched,
        total_steps=2 * folds + 1,
        message=message,
    )


def role_order(role: str) -> tuple[int, str]:
    """Sort key of a role: by fold, the report last."""
    name, _, index = role.partition(":")
    return (int(index) if index.isdigit() else 10**6, name)


def why_not_completed(child: OperationView) -> str:
    """One line on a child that was cancelled or failed, for the walk-forward's error."""
    if child.state == OperationState.CANCELLED:
        return f"{child.operation_id} was cancelled"
    first_line = (child.error or "failed").strip().splitlines()[0]
    return f"{child.operation_id} failed ({first_line[:200]})"
