"""`ktrdr ops list | show | follow | cancel | retry`, `ktrdr workers` and `ktrdr health`."""

from __future__ import annotations

from typing import Annotated

import typer

from ktrdr_cli.context import STATE, client, emit, group, handles_api_errors, short_time, table
from ktrdr_cli.follow import FINAL_STATES, end_of, follow

app = group("Operations: training, backtests and their progress.")


@app.command("list")
@handles_api_errors
def list_ops(
    status: Annotated[str | None, typer.Option(help="pending, running, completed, …")] = None,
    kind: Annotated[str | None, typer.Option(help="training or backtest")] = None,
    limit: Annotated[int, typer.Option(help="newest N")] = 20,
    everything: Annotated[
        bool,
        typer.Option("--all", help="with the folds of walk-forwards and the trials of studies"),
    ] = False,
) -> None:
    """The newest operations, with state and progress."""
    with client() as api:
        views = api.list_operations(kind=kind, state=status, limit=limit, top_level=not everything)
    emit(
        views,
        lambda: table(
            [
                [
                    v.operation_id,
                    str(v.kind),
                    str(v.state),
                    f"{v.progress.percent:.0f}%",
                    short_time(v.created_at),
                    v.worker_id or "-",
                    (v.error or v.waiting or "")[:60],
                ]
                for v in views
            ],
            ["ID", "KIND", "STATE", "DONE", "CREATED", "WORKER", "ERROR / WAITING"],
        ),
    )


@app.command("show")
@handles_api_errors
def show(operation_id: str) -> None:
    """One operation: state, progress, attempts and what reproduces it."""
    with client() as api:
        view = api.get_operation(operation_id)
    emit(view, lambda: describe(view))


@app.command("follow")
@handles_api_errors
def follow_op(operation_id: str) -> None:
    """Show live progress until the operation ends."""
    with client() as api:
        view = follow(api, operation_id, quiet=STATE.json)
    emit(view, lambda: describe(view))
    end_of(view)


@app.command("cancel")
@handles_api_errors
def cancel(operation_id: str) -> None:
    """Cancel: a pending operation at once, a running one within seconds."""
    with client() as api:
        view = api.cancel_operation(operation_id)
    emit(
        view,
        lambda: typer.echo(
            f"{view.operation_id}: {view.state}"
            + (" (cancel requested)" if str(view.state) not in FINAL_STATES else "")
        ),
    )


@app.command("retry")
@handles_api_errors
def retry(operation_id: str) -> None:
    """Run a failed operation again, as a new operation (from its last checkpoint)."""
    with client() as api:
        view = api.retry_operation(operation_id)
    emit(
        view,
        lambda: typer.echo(
            f"retrying as {view.operation_id}; follow it with: ktrdr ops follow {view.operation_id}"
        ),
    )


def describe(view) -> None:  # type: ignore[no-untyped-def]
    typer.echo(f"{view.operation_id}  {view.kind}  {view.state}  {view.progress.percent:.0f}%")
    if view.progress.message:
        typer.echo(f"  progress   {view.progress.message}")
    if view.waiting:
        typer.echo(f"  waiting    {view.waiting.removeprefix('waiting: ')}")
    typer.echo(f"  created    {view.created_at}")
    if view.finished_at:
        typer.echo(f"  finished   {view.finished_at}")
    if view.error:
        typer.echo(f"  error      {view.error}")
    repro = view.reproducibility
    if repro.strategy_hash:
        typer.echo(f"  strategy   {repro.strategy_hash}")
    for name, checksum in repro.data_checksums.items():
        typer.echo(f"  data       {name} {checksum[:16]}")
    if repro.seed is not None:
        typer.echo(f"  seed       {repro.seed}")
    for attempt in repro.attempts:
        typer.echo(
            f"  attempt {attempt.attempt}  {attempt.worker_id}  "
            f"{attempt.outcome or 'running'}  {attempt.reason or ''}".rstrip()
        )


def workers() -> None:
    """Registered workers: kind, device, status and current operation."""

    @handles_api_errors
    def run() -> None:
        with client() as api:
            views = api.list_workers()
        emit(
            views,
            lambda: table(
                [
                    [
                        w.worker_id,
                        str(w.kind),
                        str(w.capabilities.device),
                        w.capabilities.gpu_name or "-",
                        str(w.status),
                        w.current_operation_id or "-",
                        short_time(w.last_seen_at),
                    ]
                    for w in views
                ],
                ["WORKER", "KIND", "DEVICE", "GPU", "STATUS", "OPERATION", "LAST SEEN"],
            ),
        )

    run()


def health() -> None:
    """Check that the backend answers."""

    @handles_api_errors
    def run() -> None:
        with client() as api:
            info = api.health()
        emit(
            info,
            lambda: typer.echo(
                f"backend {api.base_url}: {info['status']} (database: {info['database']})"
            ),
        )

    run()
