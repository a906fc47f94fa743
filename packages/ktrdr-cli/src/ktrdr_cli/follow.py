"""Following an operation live: a progress bar until it ends, Ctrl-C to cancel or detach."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ktrdr_core.client import KtrdrClient
    from ktrdr_core.protocol import OperationView

POLL_SECONDS = 0.5
FINAL_STATES = ("completed", "failed", "cancelled")


def follow(api: KtrdrClient, operation_id: str, *, quiet: bool = False) -> OperationView:
    """Poll the operation until it ends, drawing its progress; return the final view.

    On a terminal: a live progress bar. Elsewhere (a pipe, a log file, CI) a bar would show
    nothing until the end, so one line is printed per change of state, whole percent or
    message. Ctrl-C asks whether to cancel the operation or only stop following it.
    """
    import sys

    if not quiet and not sys.stdout.isatty():
        return _follow_as_lines(api, operation_id)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]{task.fields[state]:<9}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[message]}"),
    )
    view = api.get_operation(operation_id)
    with Progress(*columns, transient=False, disable=quiet) as bar:
        task = bar.add_task(view.kind, total=100, state=view.state, message="")
        while True:
            try:
                view = api.get_operation(operation_id)
                bar.update(
                    task,
                    completed=view.progress.percent,
                    state=str(view.state),
                    message=_message(view),
                )
                if str(view.state) in FINAL_STATES:
                    if str(view.state) == "completed":
                        bar.update(task, completed=100)
                    return view
                time.sleep(POLL_SECONDS)
            except KeyboardInterrupt:
                bar.stop()
                interrupted(api, operation_id)


def _follow_as_lines(api: KtrdrClient, operation_id: str) -> OperationView:
    last = None
    while True:
        try:
            view = api.get_operation(operation_id)
            line = f"{view.state!s:<9} {view.progress.percent:5.0f}%  {_message(view)}".rstrip()
            if line != last:
                typer.echo(line)
                last = line
            if str(view.state) in FINAL_STATES:
                return view
            time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            interrupted(api, operation_id)


def interrupted(api: KtrdrClient, operation_id: str) -> None:
    """Ctrl-C while following: cancel the operation (exit 130) or detach from it (exit 0)."""
    try:
        cancel = typer.confirm(
            f"\ncancel operation {operation_id}? (no: stop following; it keeps running)",
            default=False,
            err=True,  # the prompt never mixes into --json output
        )
    except typer.Abort:  # a second Ctrl-C (or no terminal): the safe answer, keep it running
        cancel = False
    if cancel:
        view = api.cancel_operation(operation_id)
        typer.echo(
            f"{operation_id}: {view.state}"
            + (" (cancel requested)" if str(view.state) not in FINAL_STATES else "")
            + f"; see it with: ktrdr ops show {operation_id}",
            err=True,
        )
        raise typer.Exit(130)
    typer.echo(f"stopped following; it keeps running: ktrdr ops follow {operation_id}", err=True)
    raise typer.Exit(0)


def _message(view: OperationView) -> str:
    progress = view.progress
    parts = [progress.message] if progress.message else []
    for key in ("train_loss", "val_loss", "val_balanced_accuracy"):
        if key in progress.metrics:
            parts.append(f"{key}={progress.metrics[key]:.4f}")
    return "  ".join(parts)


def end_of(view: OperationView) -> None:
    """Exit non-zero with the reason when a followed operation did not complete."""
    state = str(view.state)
    if state == "failed":
        typer.echo(f"error: operation {view.operation_id} failed: {view.error}", err=True)
        raise typer.Exit(1)
    if state == "cancelled":
        typer.echo(f"operation {view.operation_id} was cancelled", err=True)
        raise typer.Exit(1)
