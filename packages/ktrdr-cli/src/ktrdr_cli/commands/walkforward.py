"""`ktrdr walkforward STRATEGY` and `ktrdr walkforwards list | show`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ktrdr_cli import options
from ktrdr_cli.context import STATE, client, emit, fail, group, handles_api_errors, table
from ktrdr_cli.follow import FINAL_STATES, POLL_SECONDS, end_of, interrupted
from ktrdr_cli.reports import number

if TYPE_CHECKING:
    from ktrdr_core.client import KtrdrClient
    from ktrdr_core.protocol import OperationView, WalkforwardView

walkforwards_app = group("Walk-forward results.")

HTML_HELP = "also save the interactive report here: one HTML file that opens offline"
HEADLINE = ("total_return", "cagr", "sharpe", "max_drawdown", "num_trades", "win_rate")


@handles_api_errors
def walkforward(
    strategy: Annotated[Path, typer.Argument(help="strategy YAML file")],
    symbol: Annotated[
        list[str] | None, typer.Option(help="walk forward over these symbols instead")
    ] = None,
    folds: Annotated[int, typer.Option(help="number of folds (test windows)")] = 4,
    window: Annotated[
        str, typer.Option(help="rolling (fixed-length training window) or expanding")
    ] = "rolling",
    train_blocks: Annotated[int, typer.Option(help="training window length, in test windows")] = 3,
    embargo: Annotated[
        int | None, typer.Option(help="bars between training and test (default: the strategy's)")
    ] = None,
    start: Annotated[str | None, typer.Option(help="first date (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, typer.Option(help="last date (YYYY-MM-DD)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed instead of the file's")] = None,
    epochs: Annotated[int | None, typer.Option(help="epochs instead of the file's")] = None,
    follow_it: Annotated[bool, typer.Option("--follow", "-f", help="show every fold")] = False,
) -> None:
    """Walk-forward a strategy: train and backtest it fold after fold, on every worker.

    Several symbols: each fold backtests the portfolio, on the span the symbols share."""
    if not strategy.is_file():
        fail(f"{strategy}: no such file")
    if window not in ("rolling", "expanding"):
        fail(f"--window {window!r}: use rolling or expanding", code=2)
    options.period(start, end)
    overrides: dict[str, Any] = {}
    if symbol:
        overrides["data.symbols"] = list(symbol)
    for key, value in (
        ("data.start", start),
        ("data.end", end),
        ("training.seed", seed),
        ("training.epochs", epochs),
    ):
        if value is not None:
            overrides[key] = value
    with client() as api:
        view = api.start_walkforward(
            strategy.read_text(encoding="utf-8"),
            overrides,
            folds=folds,
            window=window,
            train_blocks=train_blocks,
            embargo_bars=embargo,
        )
        if not follow_it:
            emit(
                view,
                lambda: typer.echo(
                    f"walk-forward started: {view.operation_id} ({folds} folds)\n"
                    f"follow it with: ktrdr walkforwards show {view.operation_id} --follow"
                ),
            )
            return
        _show(api, view.operation_id, None, follow_it=True)


@walkforwards_app.command("list")
@handles_api_errors
def list_walkforwards(
    status: Annotated[str | None, typer.Option(help="running, completed, …")] = None,
) -> None:
    """Walk-forward operations, newest first."""
    with client() as api:
        views = api.list_walkforwards(status)

    def human() -> None:
        rows = []
        for v in views:
            metrics = (v.result.summary.get("metrics") if v.result else None) or {}
            rows.append(
                [
                    v.operation_id,
                    str(v.state),
                    v.strategy_name or "-",
                    str(len(getattr(v.inputs, "folds", []))),
                    number("total_return", metrics.get("total_return")),
                    v.progress.message or "-",
                ]
            )
        table(rows, ["ID", "STATE", "STRATEGY", "FOLDS", "RETURN", "PROGRESS"])

    emit(views, human)


@walkforwards_app.command("show")
@handles_api_errors
def show(
    operation_id: str,
    follow_it: Annotated[bool, typer.Option("--follow", "-f", help="until it ends")] = False,
    html: Annotated[Path | None, typer.Option(help=HTML_HELP)] = None,
) -> None:
    """A walk-forward's folds and, once it completed, its report and its page's URL."""
    with client() as api:
        _show(api, operation_id, html, follow_it=follow_it)


def _show(api: KtrdrClient, operation_id: str, html: Path | None, *, follow_it: bool) -> None:
    view = _follow(api, operation_id) if follow_it else api.get_walkforward(operation_id)
    parent = view.operation
    if str(parent.state) != "completed":
        if follow_it:
            end_of(parent)
        emit(view, lambda: None if follow_it else _fold_table(view, live=False))
        return
    report = api.walkforward_report(operation_id)
    page = api.page_url("walkforwards", operation_id)
    if html is not None:
        api.download_walkforward_html(operation_id, html)
    emit(report, lambda: _show_report(view, report, page, html, folds_shown=follow_it))


def _follow(api: KtrdrClient, operation_id: str) -> WalkforwardView:
    """Redraw the fold table until the walk-forward ends (not with --json, whose output is
    the final document only); Ctrl-C cancels or detaches."""
    from rich.live import Live

    view = api.get_walkforward(operation_id)
    live = None if STATE.json else Live(_fold_table(view, live=True), refresh_per_second=4)
    if live is not None:
        live.start()
    try:
        while str(view.operation.state) not in FINAL_STATES:
            try:
                time.sleep(POLL_SECONDS)
                view = api.get_walkforward(operation_id)
                if live is not None:
                    live.update(_fold_table(view, live=True))
            except KeyboardInterrupt:
                if live is not None:
                    live.stop()
                interrupted(api, operation_id)
    finally:
        if live is not None:
            live.stop()
    return view


def _state(child: OperationView | None) -> str:
    if child is None:
        return "waiting"
    state = str(child.state)
    if state == "running":
        return f"running {child.progress.percent:4.0f}%"
    return state


def _fold_table(view: WalkforwardView, *, live: bool) -> Any:
    """Per fold: windows, training and backtest state, out-of-sample return."""
    from rich.table import Table

    from ktrdr_core.protocol import ChildRole

    parent = view.operation
    roles = {child.child_role: child for child in view.children if child.child_role}
    reused = getattr(parent.inputs, "reuse", {})
    grid = Table(
        title=f"walk-forward {parent.operation_id} ({parent.strategy_name}): {parent.state}"
        + (f" — {parent.progress.message}" if parent.progress.message else "")
    )
    for header in ("fold", "train", "test", "training", "backtest", "return"):
        grid.add_column(header)
    for fold in getattr(parent.inputs, "folds", []):
        trains = ChildRole.train(fold.index)
        train, test = roles.get(trains), roles.get(ChildRole.backtest(fold.index))
        metrics = test.result.summary.get("metrics") if test and test.result else None
        training_state = _state(train)
        if train is None and str(trains) in reused:
            training_state = f"reused {reused[str(trains)]}"
        grid.add_row(
            str(fold.index),
            f"{fold.train_start} … {fold.train_end}",
            f"{fold.test_start} … {fold.test_end}",
            training_state,
            _state(test),
            number("total_return", (metrics or {}).get("total_return")),
        )
    if parent.error:
        grid.caption = f"error: {parent.error}"
    if live:
        return grid
    from rich.console import Console

    Console().print(grid)
    return None


def _show_report(
    view: WalkforwardView,
    report: dict[str, Any],
    page: str,
    html: Path | None,
    *,
    folds_shown: bool,
) -> None:
    if not folds_shown:  # following drew the table already
        _fold_table(view, live=False)
    metrics = report.get("metrics") or {}
    summary = report.get("summary") or {}
    rows = [[key, number(key, metrics.get(key))] for key in HEADLINE]
    rows.append(["buy_and_hold_return", number("total_return", metrics.get("buy_and_hold_return"))])
    symbols = report.get("symbols") or []
    if len(symbols) > 1:
        typer.echo(
            f"a portfolio of {', '.join(symbols)} in every fold: the stitched numbers are the "
            "portfolio's; buy & hold holds each symbol's share of the capital throughout"
        )
    table(rows, ["out of sample (stitched)", "value"])
    typer.echo(
        f"profitable folds: {summary.get('profitable_folds')}/{summary.get('folds')}, "
        f"beat buy & hold: {summary.get('beat_buy_and_hold')}/{summary.get('folds')}"
    )
    stability = report.get("stability") or {}
    mean = stability.get("mean_spearman")
    if mean is not None:
        typer.echo(
            f"feature ranking across folds: mean Spearman {mean:.2f} "
            f"(lowest pair {stability.get('min_spearman'):.2f}; 1 = same order every fold)"
        )
    features = stability.get("features") or []
    if features:
        table(
            [
                [
                    f["feature"],
                    f"{f['mean_importance']:.4f}",
                    " ".join(f"{r:g}" for r in f["ranks"]),
                    str(f["folds_in_top"]),
                ]
                for f in features
            ],
            ["feature", "mean importance", "rank per fold", "folds in top 5"],
        )
    if html is not None:
        typer.echo(f"report: {html.resolve()}")
    typer.echo(f"page: {page}")
