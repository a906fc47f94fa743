"""`ktrdr train`, `ktrdr backtest` and `ktrdr backtests list | show | compare`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ktrdr_cli import options
from ktrdr_cli.context import (
    STATE,
    client,
    emit,
    fail,
    group,
    handles_api_errors,
    short_time,
    table,
)
from ktrdr_cli.follow import end_of, follow
from ktrdr_cli.reports import (
    metric_value,
    number,
    ordered_keys,
    period_text,
    show_backtest,
    show_training,
)

backtests_app = group("Backtest results.")

HTML_HELP = "also save the interactive report here: one HTML file that opens offline"


@handles_api_errors
def train(
    strategy: Annotated[Path, typer.Argument(help="strategy YAML file")],
    symbol: Annotated[list[str] | None, typer.Option(help="train on these symbols instead")] = None,
    timeframe: Annotated[str | None, typer.Option(help="base timeframe instead")] = None,
    start: Annotated[str | None, typer.Option(help="first date (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, typer.Option(help="last date (YYYY-MM-DD)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed instead of the file's")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or mps")] = None,
    follow_it: Annotated[bool, typer.Option("--follow", "-f", help="show progress")] = False,
) -> None:
    """Start training a strategy on the backend's data (a worker does the work)."""
    if not strategy.is_file():
        fail(f"{strategy}: no such file")
    if timeframe:
        options.timeframe(timeframe)
    options.period(start, end)
    overrides: dict[str, Any] = {}
    if symbol:
        overrides["data.symbols"] = list(symbol)
    if timeframe:
        overrides["data.timeframe"] = timeframe
    if start:
        overrides["data.start"] = start
    if end:
        overrides["data.end"] = end
    if seed is not None:
        overrides["training.seed"] = seed
    if device:
        overrides["training.device"] = device
    with client() as api:
        view = api.start_training(strategy.read_text(encoding="utf-8"), overrides)
        waiting = api.get_operation(view.operation_id).waiting
        if waiting:
            typer.echo(f"warning: {waiting}; it starts when one is", err=True)
        if not follow_it:
            emit(
                view,
                lambda: typer.echo(
                    f"training started: {view.operation_id}\n"
                    f"follow it with: ktrdr ops follow {view.operation_id}"
                ),
            )
            return
        view = follow(api, view.operation_id, quiet=STATE.json)
    end_of(view)
    result = view.result

    def human() -> None:
        from ktrdr_core.protocol import TrainingResultView

        summary = result.summary if result else {}
        if "test_metrics" in summary:
            show_training(summary)
        model_id = result.model_id if isinstance(result, TrainingResultView) else None
        if model_id:
            typer.echo(f"model: {model_id}\nbacktest it with: ktrdr backtest {model_id} --follow")

    emit(view, human)


@handles_api_errors
def backtest(
    model: Annotated[str, typer.Argument(help="model id (ktrdr models list)")],
    start: Annotated[str | None, typer.Option(help="first date (default: the test period)")] = None,
    end: Annotated[str | None, typer.Option(help="last date")] = None,
    capital: Annotated[float | None, typer.Option(help="starting capital")] = None,
    commission: Annotated[float | None, typer.Option(help="fraction of traded value")] = None,
    slippage: Annotated[float | None, typer.Option(help="fraction of price")] = None,
    in_sample: Annotated[
        bool,
        typer.Option(
            "--in-sample", help="the period overlaps the model's training data on purpose"
        ),
    ] = False,
    follow_it: Annotated[bool, typer.Option("--follow", "-f", help="show progress")] = False,
) -> None:
    """Backtest a trained model on data it never saw (default: its test period)."""

    settings = options.backtest_settings(capital=capital, commission=commission, slippage=slippage)
    start_at, end_at = options.period(start, end)
    with client() as api:
        if (start_at or end_at) and not in_sample:
            _warn_if_in_sample(api, model, start_at, end_at)
        view = api.start_backtest(model, start=start_at, end=end_at, settings=settings)
        if not follow_it:
            emit(
                view,
                lambda: typer.echo(
                    f"backtest started: {view.operation_id}\n"
                    f"follow it with: ktrdr ops follow {view.operation_id}"
                ),
            )
            return
        view = follow(api, view.operation_id, quiet=STATE.json)
        end_of(view)
        report = api.backtest_report(view.operation_id)
        page = api.page_url("backtests", view.operation_id)
    emit(report, lambda: show_backtest(report, page))


def _warn_if_in_sample(api, model_id: str, start: Any, end: Any) -> None:  # type: ignore[no-untyped-def]
    """Say, in plain words, when a custom period overlaps the data the model learned from."""
    from datetime import datetime

    from ktrdr_core.reports import in_sample_parts

    splits = api.get_model(model_id).metadata.get("splits") or {}
    parts = in_sample_parts(splits, start or datetime.min, end or datetime.max)
    if parts:
        spans = ", ".join(
            f"{name} {str(splits[name]['start'])[:10]} → {str(splits[name]['end'])[:10]}"
            for name in parts
        )
        typer.echo(
            f"warning: this period overlaps the data the model learned from ({spans}); its "
            "numbers will look better than on data it never saw. The report records it; "
            "pass --in-sample if that is what you want.",
            err=True,
        )


@backtests_app.command("list")
@handles_api_errors
def list_backtests(
    status: Annotated[str | None, typer.Option(help="pending, running, completed, …")] = None,
) -> None:
    """Backtest operations, newest first."""
    with client() as api:
        views = api.list_backtests(status)
    emit(
        views,
        lambda: table(
            [
                [
                    v.operation_id,
                    str(v.state),
                    getattr(v.inputs, "model_id", "-"),
                    short_time(v.created_at),
                ]
                for v in views
            ],
            ["ID", "STATE", "MODEL", "CREATED"],
        ),
    )


@backtests_app.command("show")
@handles_api_errors
def show_report(
    operation_id: str,
    symbol: Annotated[
        str | None, typer.Option(help="a portfolio's: only this symbol's table")
    ] = None,
    html: Annotated[Path | None, typer.Option(help=HTML_HELP)] = None,
) -> None:
    """The report of a finished backtest and its page's URL. A model trained on several
    symbols: the portfolio's table, then one per symbol."""
    with client() as api:
        report = api.backtest_report(operation_id)
        page = api.page_url("backtests", operation_id)
        if html is not None:
            api.download_backtest_html(operation_id, html)
    emit(report, lambda: show_backtest(report, page, symbol))
    if html is not None and not STATE.json:
        typer.echo(f"report: {html.resolve()}")


@backtests_app.command("compare")
@handles_api_errors
def compare(
    operation_ids: Annotated[
        list[str], typer.Argument(help="two or more backtest or walk-forward ids")
    ],
) -> None:
    """Metrics of several backtests side by side (a walk-forward: its stitched metrics)."""
    if len(operation_ids) < 2:
        fail("give at least two backtest or walk-forward ids", code=2)
    with client() as api:
        reports = {}
        kinds = {}
        for op in operation_ids:
            kinds[op] = str(api.get_operation(op).kind)
            if kinds[op] == "walkforward":
                reports[op] = api.walkforward_report(op)
            else:
                reports[op] = api.backtest_report(op)
    from ktrdr_core.reports import headline

    # A portfolio's numbers are its portfolio section's: the whole, as for one symbol.
    metrics = {op: headline(report).get("metrics") or {} for op, report in reports.items()}
    keys: list[str] = []
    for values in metrics.values():
        keys += [k for k in ordered_keys(values) if k not in keys]

    def human() -> None:
        from ktrdr_core.runs import result_period

        # Which bars each column covers comes first: numbers over different periods differ.
        rows = [
            ["period", *(period_text(*result_period(kinds[op], reports[op])) for op in reports)]
        ]
        rows += [
            [
                key,
                *(number(key, metric_value(metrics[op].get(key))) for op in reports),
            ]
            for key in keys
        ]
        table(rows, ["metric", *operation_ids])

    emit(reports, human)
