"""`ktrdr tune STRATEGY --space SPACE.yaml` and `ktrdr tunes list | show | cancel | best`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ktrdr_cli.context import STATE, client, emit, fail, group, handles_api_errors, table
from ktrdr_cli.follow import FINAL_STATES, POLL_SECONDS, end_of, interrupted

if TYPE_CHECKING:
    from ktrdr_core.client import KtrdrClient
    from ktrdr_core.protocol import TuneView

tunes_app = group("Parameter studies: their trials, the holdout check, the best strategy.")

DIRECTIONS = {"max": "maximize", "min": "minimize"}


@handles_api_errors
def tune(
    strategy: Annotated[Path, typer.Argument(help="strategy YAML file")],
    space: Annotated[
        Path, typer.Option(help="search space YAML: dotted strategy path -> distribution")
    ],
    trials: Annotated[int, typer.Option(help="how many trials the study runs")] = 20,
    objective: Annotated[
        str, typer.Option(help="the walk-forward metric to optimise (sharpe, total_return…)")
    ] = "sharpe",
    direction: Annotated[str, typer.Option(help="max or min")] = "max",
    folds: Annotated[int, typer.Option(help="folds per trial (1: one train/test split)")] = 3,
    sampler: Annotated[str, typer.Option(help="tpe, random or grid")] = "tpe",
    prune: Annotated[
        bool, typer.Option(help="stop trials whose folds fall below the median")
    ] = False,
    parallel: Annotated[int, typer.Option(help="trials running at once")] = 2,
    holdout: Annotated[
        float, typer.Option(help="the last fraction of the range no trial sees")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="the sampler's seed")] = 0,
    keep: Annotated[
        int,
        typer.Option(
            min=1, help="once it ends, keep the model bundles of this many best trials only"
        ),
    ] = 3,
    follow_it: Annotated[bool, typer.Option("--follow", "-f", help="until it ends")] = False,
) -> None:
    """Search a strategy's parameters with Optuna; trials are walk-forwards on every worker.

    The best trials are re-checked on a holdout no trial saw; then only the best --keep
    trials keep their model bundles (every trial's record stays). The study's driver holds
    one backtest worker's slot until it ends."""
    from ktrdr_core.protocol import TuneRequest

    for path in (strategy, space):
        if not path.is_file():
            fail(f"{path}: no such file")
    if direction not in DIRECTIONS:
        fail(f"--direction {direction!r}: use max or min", code=2)
    if sampler not in ("tpe", "random", "grid"):
        fail(f"--sampler {sampler!r}: use tpe, random or grid", code=2)
    request = TuneRequest(
        strategy=strategy.read_text(encoding="utf-8"),
        space=space.read_text(encoding="utf-8"),
        space_name=str(space),
        trials=trials,
        objective=objective,
        direction=DIRECTIONS[direction],  # type: ignore[arg-type]
        folds=folds,
        sampler=sampler,  # type: ignore[arg-type]
        prune=prune,
        parallel=parallel,
        holdout=holdout,
        seed=seed,
        keep_best=keep,
    )
    with client() as api:
        view = api.start_tune(request)
        if not follow_it:
            emit(
                view,
                lambda: typer.echo(
                    f"study started: {view.operation_id} ({trials} trials of {objective})\n"
                    f"follow it with: ktrdr tunes show {view.operation_id} --follow"
                ),
            )
            return
        _show(api, view.operation_id, follow_it=True)


@tunes_app.command("list")
@handles_api_errors
def list_tunes(
    status: Annotated[str | None, typer.Option(help="running, completed, …")] = None,
) -> None:
    """Parameter studies, newest first."""
    with client() as api:
        views = api.list_tunes(status)

    def human() -> None:
        rows = [
            [
                v.operation_id,
                str(v.state),
                v.strategy_name or "-",
                f"{v.trials_done}/{getattr(v.inputs, 'trials', '-')}",
                f"{getattr(v.inputs, 'objective', '-')}",
                _num(v.best_value),
                v.progress.message or "-",
            ]
            for v in views
        ]
        table(rows, ["ID", "STATE", "STRATEGY", "TRIALS", "OBJECTIVE", "BEST", "PROGRESS"])

    emit(views, human)


@tunes_app.command("show")
@handles_api_errors
def show(
    operation_id: str,
    follow_it: Annotated[bool, typer.Option("--follow", "-f", help="until it ends")] = False,
) -> None:
    """The trials table, the holdout beside the search, importance and warnings."""
    with client() as api:
        _show(api, operation_id, follow_it=follow_it)


@tunes_app.command("cancel")
@handles_api_errors
def cancel(operation_id: str) -> None:
    """Cancel a study and its unfinished trials."""
    with client() as api:
        view = api.get_tune(operation_id).operation
        if str(view.state) not in FINAL_STATES:
            view = api.cancel_operation(operation_id)
    emit(view, lambda: typer.echo(f"{view.operation_id}: {view.state}"))


@tunes_app.command("best")
@handles_api_errors
def best(
    operation_id: str,
    write: Annotated[
        Path | None, typer.Option(help="write the best strategy to this YAML file")
    ] = None,
) -> None:
    """The best trial; ``--write`` saves its strategy, its header naming the study and the
    holdout result."""
    with client() as api:
        found = api.best_tune(operation_id)
    if write is not None:
        write.write_text(found["strategy"], encoding="utf-8")

    def human() -> None:
        trial = found["trial"]
        typer.echo(f"trial {trial['number']}: {_num(trial['value'])} {_params(trial['params'])}")
        held = found.get("holdout")
        typer.echo(f"holdout: {_num(held['value']) if held else 'not evaluated'}")
        if write is not None:
            typer.echo(f"written to {write}")

    emit(found, human)


# --- showing a study -----------------------------------------------------------------


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _params(params: dict[str, Any]) -> str:
    """``indicators.rsi_14.params.period=14`` shown as ``rsi_14.period=14`` (its last two
    names that say something)."""
    parts = []
    for path, value in params.items():
        names = [n for n in path.split(".") if n != "params"]
        parts.append(f"{'.'.join(names[-2:])}={value}")
    return ", ".join(parts)


def _show(api: KtrdrClient, operation_id: str, *, follow_it: bool) -> None:
    view = api.get_tune(operation_id)
    while follow_it and str(view.operation.state) not in FINAL_STATES:
        try:
            if not STATE.json:
                typer.echo(f"{view.operation.state}: {view.operation.progress.message}")
            time.sleep(max(POLL_SECONDS, 2.0))
            view = api.get_tune(operation_id)
        except KeyboardInterrupt:
            interrupted(api, operation_id)
    if follow_it:
        end_of(view.operation)
    emit(view, lambda: _report(view))


def _bundles(view: TuneView) -> str:
    """Which trials keep their model bundles, and what deleting the others freed."""
    study = view.operation
    keep = getattr(study.inputs, "keep_best", 3)
    state = str(study.state)
    if state == "completed":
        runs = view.trials + view.holdout
        kept = ", ".join(str(t.number) for t in view.trials if t.models) or "none"
        deleted = sum(t.models_deleted for t in runs)
        freed = sum(t.freed_bytes for t in runs)
        return (
            f"model bundles: trials {kept} keep theirs (the best {keep}, with their holdout "
            f"runs'); {deleted} models of the others deleted, {freed / 1e6:.2f} MB freed"
        )
    if state in ("failed", "cancelled"):
        return (
            f"model bundles: every trial keeps its own, the study having {state} "
            f"(`ktrdr ops retry {study.operation_id}` reuses its completed trials; the retry "
            f"keeps the best {keep} trials' bundles once it completes)"
        )
    return f"model bundles: every trial keeps its own until the study ends, then the best {keep}"


def _report(view: TuneView) -> None:
    study = view.operation
    inputs = study.inputs
    objective = getattr(inputs, "objective", "objective")
    typer.echo(
        f"study {study.operation_id} ({study.strategy_name}): {study.state}, "
        f"{objective} ({getattr(inputs, 'direction', '')})"
    )
    rows = [
        [
            str(t.number),
            _params(t.params),
            _num(t.value),
            f"{t.folds_done}/{t.folds}",
            "pruned" if t.pruned else str(t.state),
            "-" if t.duration_s is None else f"{t.duration_s:.0f}s",
            ",".join(t.workers) or "-",
            "kept" if t.models else "deleted" if t.models_deleted else "-",
        ]
        for t in view.trials
    ]
    table(
        rows,
        ["TRIAL", "PARAMETERS", objective.upper(), "FOLDS", "STATE", "TIME", "WORKERS", "BUNDLES"],
    )
    for t in view.trials:
        if t.error and str(t.state) == "failed":
            typer.echo(f"trial {t.number} failed: {t.error.splitlines()[0]}")
    typer.echo(_bundles(view))
    summary = study.result.summary if study.result else None
    if not summary:
        return
    typer.echo(
        f"holdout {summary['holdout_period'][0]} … {summary['holdout_period'][1]} "
        "(never seen by a trial):"
    )
    rows = [
        [str(r["rank"]), str(r["trial"]), _num(r["search"]), _num(r["holdout"])]
        for r in summary["holdout"]
    ]
    median = summary.get("median")
    if median:
        rows.append(
            ["median", str(median["trial"]), _num(median["search"]), _num(median["holdout"])]
        )
    table(rows, ["RANK", "TRIAL", "SEARCH", "HOLDOUT"])
    deflated = summary.get("deflated_sharpe")
    if deflated:
        typer.echo(
            f"deflated Sharpe (Bailey & López de Prado, {deflated['trials']} trials): "
            f"probability {deflated['probability']:.2f} that trial {deflated['trial']}'s Sharpe "
            f"{deflated['sharpe']:.2f} beats the best of as many unskilled trials "
            f"(expected {deflated['expected_max_sharpe']:.2f})"
        )
    importance = summary.get("importance")
    if isinstance(importance, dict):
        typer.echo(
            "parameter importance (PED-ANOVA): "
            + ", ".join(f"{k} {v:.2f}" for k, v in importance.items())
        )
    elif importance:
        typer.echo(f"parameter importance: {importance}")
    for warning in summary.get("warnings", []):
        typer.echo(f"warning: {warning}")
