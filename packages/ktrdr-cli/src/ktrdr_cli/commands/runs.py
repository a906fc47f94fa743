"""`ktrdr runs list | diff`: trainings, backtests and walk-forwards as experiments."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ktrdr_cli.context import client, emit, fail, group, handles_api_errors, short_time, table
from ktrdr_cli.reports import difference, number, period_text

if TYPE_CHECKING:
    from ktrdr_core.client import KtrdrClient
    from ktrdr_core.runs import RunRecord

app = group("Experiments: list runs of a strategy, diff two of them.")

_HEADLINE = {
    "training": "balanced_accuracy",
    "backtest": "total_return",
    "walkforward": "total_return",
}


def _record(api: KtrdrClient, operation_id: str) -> RunRecord:
    from ktrdr_core.errors import ApiError
    from ktrdr_core.runs import NotARun, look_up_record

    def strategy_of_model(model_id: str) -> str | None:
        # A backtest's strategy is its model's: the training operation kept the text.
        try:
            model = api.get_model(model_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
            return None
        if not model.training_operation_id:
            return None
        return getattr(api.get_operation(model.training_operation_id).inputs, "strategy_yaml", None)

    try:
        return look_up_record(operation_id, api.get_operation, strategy_of_model)
    except NotARun as exc:
        fail(str(exc))
        raise  # fail exits; for the type checker


@app.command("list")
@handles_api_errors
def list_runs(
    strategy: Annotated[str | None, typer.Option(help="only runs of this strategy name")] = None,
    kind: Annotated[str | None, typer.Option(help="training, backtest or walkforward")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
) -> None:
    """Runs, newest first: strategy, hash, data, seed and the headline number."""
    from ktrdr_core.runs import RUN_KINDS

    if kind is not None and kind not in RUN_KINDS:
        fail(f"--kind {kind!r}: use one of {', '.join(RUN_KINDS)}", code=2)
    from ktrdr_core.runs import run_record

    with client() as api:
        views = [
            v
            for v in api.list_operations(kind=kind, limit=limit, strategy=strategy)
            if str(v.kind) in RUN_KINDS
        ]
    records = [run_record(v) for v in views]

    def human() -> None:
        rows = []
        for r in records:
            key = _HEADLINE[r.kind]
            rows.append(
                [
                    r.operation_id,
                    r.kind,
                    r.state,
                    r.strategy_name or "-",
                    (r.strategy_hash or "-")[:10],
                    ", ".join(f"{k}@{v[:8]}" for k, v in r.data.items()) or "-",
                    "-" if r.seed is None else str(r.seed),
                    f"{key} {number(key, r.metrics.get(key))}" if key in r.metrics else "-",
                    short_time(r.created_at),
                ]
            )
        table(
            rows,
            ["ID", "KIND", "STATE", "STRATEGY", "HASH", "DATA", "SEED", "RESULT", "CREATED"],
        )

    emit([r.__dict__ for r in records], human)


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


@app.command("diff")
@handles_api_errors
def diff(
    a: Annotated[str, typer.Argument(help="first operation id")],
    b: Annotated[str, typer.Argument(help="second operation id")],
) -> None:
    """What changed between two runs (parameters, data, seed, code) and how the metrics moved."""
    from ktrdr_core.runs import diff_runs

    with client() as api:
        first, second = _record(api, a), _record(api, b)
    if first.kind != second.kind:
        typer.echo(f"note: comparing a {first.kind} with a {second.kind}", err=True)
    result = diff_runs(first, second)

    def human() -> None:
        typer.echo(f"A {a}: {first.kind} of {first.strategy_name} ({first.state})")
        typer.echo(f"B {b}: {second.kind} of {second.strategy_name} ({second.state})")
        for note in first.notes + second.notes:
            typer.echo(f"note: {note}")
        if result.same_inputs:
            typer.echo("inputs: identical (parameters, data, seed and code versions)")
        sections = (
            ("parameter", result.parameters),
            ("data", result.data),
            ("code", result.versions),
        )
        for title, changes in sections:
            if changes:
                table([[k, _show(x), _show(y)] for k, x, y in changes], [title, "A", "B"])
        if result.seed:
            table([["seed", _show(result.seed[0]), _show(result.seed[1])]], ["", "A", "B"])
        if result.metrics:
            rows = [["period", period_text(*first.period), period_text(*second.period), ""]]
            rows += [
                [k, number(k, x), number(k, y), difference(k, d)] for k, x, y, d in result.metrics
            ]
            table(rows, ["metric", "A", "B", "B − A"])

    emit(
        {
            "a": first.__dict__,
            "b": second.__dict__,
            "parameters": result.parameters,
            "data": result.data,
            "seed": result.seed,
            "versions": result.versions,
            "metrics": result.metrics,
        },
        human,
    )
