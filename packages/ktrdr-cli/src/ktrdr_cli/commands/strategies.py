"""`ktrdr strategies init | validate | show | schema`: strategy files, offline; `ktrdr
strategies audit`: trust checks on a strategy and the backend's data, run by a worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ktrdr_cli.context import STATE, emit, fail, group, handles_api_errors
from ktrdr_core.examples import list_examples, read_example

if TYPE_CHECKING:
    from ktrdr_core.strategy_audit import StrategyAuditReport

app = group("Create and check strategy files (offline); audit one on the backend's data.")


@app.command("init")
def init(
    file: Annotated[Path, typer.Argument(help="where to write the new strategy file")],
    example: Annotated[
        str, typer.Option(help=f"example to start from: {', '.join(list_examples())}")
    ] = "rsi_zones",
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a strategy file from one of the shipped examples."""
    try:
        text = read_example(example)
    except ValueError as exc:
        fail(str(exc), code=2)
    if file.exists() and not force:
        fail(f"{file} exists; pass --force to overwrite it")
    file.write_text(text, encoding="utf-8")
    emit(
        {"path": str(file), "example": example},
        lambda: typer.echo(
            f"wrote {file} (from example {example!r})\n"
            f"check it with: ktrdr strategies validate {file}"
        ),
    )


@app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(help="strategy YAML files")],
) -> None:
    """Check each file; print every problem with its file, line and key path. Exit 1 on any."""
    from ktrdr_core.strategy import StrategyProblem, validate_strategy

    results: dict[Path, list[StrategyProblem]] = {}
    for file in files:
        if not file.is_file():
            results[file] = [StrategyProblem(path="", message="no such file", file=str(file))]
        else:
            results[file] = validate_strategy(file)

    def human() -> None:
        for file, issues in results.items():
            if not issues:
                typer.echo(f"{file}: ok")
                continue
            for issue in issues:
                typer.echo(str(issue), err=True)
            typer.echo(f"{file}: {len(issues)} problem(s)", err=True)

    emit(
        [
            {"file": str(file), "ok": not issues, "issues": issues}
            for file, issues in results.items()
        ],
        human,
    )
    if any(results.values()):
        raise typer.Exit(1)


@app.command("show")
def show(file: Annotated[Path, typer.Argument(help="a strategy YAML file")]) -> None:
    """The strategy's hash and its ordered model inputs (the feature names a bundle records)."""
    from ktrdr_core.strategy import StrategyError, load_strategy

    if not file.is_file():
        fail(f"{file}: no such file")
    try:
        strategy = load_strategy(file)
    except StrategyError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1) from None
    data = strategy.data
    features = [feature.name for feature in strategy.features()]

    def human() -> None:
        typer.echo(f"{strategy.name}: {strategy.description}".rstrip(": "))
        typer.echo(f"hash      {strategy.strategy_hash()}")
        typer.echo(f"symbols   {', '.join(data.symbols)}")
        timeframes = ", ".join(str(tf) for tf in data.timeframes)
        typer.echo(f"timeframes {timeframes} (base {data.timeframe})")
        typer.echo(f"labels    {strategy.labels.method}")
        typer.echo(f"model     {strategy.model.type}")
        typer.echo(f"features  {len(features)}")
        for index, name in enumerate(features):
            typer.echo(f"  {index:>3}  {name}")

    emit(
        {
            "name": strategy.name,
            "hash": strategy.strategy_hash(),
            "symbols": list(data.symbols),
            "timeframe": str(data.timeframe),
            "timeframes": [str(tf) for tf in data.timeframes],
            "labels": strategy.labels.method,
            "model": strategy.model.type,
            "features": features,
        },
        human,
    )


@app.command("schema")
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to a file")] = None,
) -> None:
    """The JSON Schema of strategy files, for editors."""
    from ktrdr_core.strategy import strategy_json_schema

    text = json.dumps(strategy_json_schema(), indent=2)
    if output is None:
        typer.echo(text)  # JSON already, with or without --json
        return
    output.write_text(text + "\n", encoding="utf-8")
    emit({"path": str(output)}, lambda: typer.echo(f"wrote {output}"))


_MARKS = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "inconclusive": "----", "skipped": "skip"}


def show_audit(report: StrategyAuditReport) -> None:
    """One line per check (verdict, name, summary), the first lookahead offence in full, and
    the overall verdict."""
    model = report.model_id or (
        f"trained by the audit ({report.bundle_sha256[:12]}…)" if report.bundle_sha256 else None
    )
    typer.echo(
        f"audit of {report.strategy_name} on {report.symbol} {report.timeframe}: "
        f"{report.bars} bars, {report.first[:10]} → {report.last[:10]}"
        + (f"; model {model}" if model else "")
    )
    for check in report.checks:
        hard = " (hard)" if check.hard else ""
        typer.echo(f"  {_MARKS[check.status.value]}  {check.name}{hard}: {check.summary}")
    offence = (report.check("lookahead").evidence if report.check("lookahead") else {}).get(
        "first_offence"
    )
    if offence:

        def shown(value: float | None) -> str:
            return "NaN" if value is None else f"{value:.6g}"

        typer.echo(
            f"        first offence: {offence['what']} {offence['column']} at {offence['bar']} "
            f"(data cut at {offence['cut']}): {shown(offence.get('truncated_value'))} on the "
            f"cut data, {shown(offence.get('full_value'))} on all of it"
        )
    failed = [check.name for check in report.checks if check.failed_hard]
    typer.echo(
        "verdict: a hard check failed (" + ", ".join(failed) + "): do not trust results of this "
        "strategy until it is fixed"
        if failed
        else "verdict: no hard check failed"
    )


@app.command("audit")
@handles_api_errors
def audit(
    strategy: Annotated[Path, typer.Argument(help="strategy YAML file")],
    symbol: Annotated[str, typer.Option(help="audit on this symbol's stored data")],
    timeframe: Annotated[str | None, typer.Option(help="base timeframe instead")] = None,
    start: Annotated[str | None, typer.Option(help="first date (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, typer.Option(help="last date (YYYY-MM-DD)")] = None,
    model: Annotated[
        str | None, typer.Option(help="model id: also check its decisions and significance")
    ] = None,
    train: Annotated[
        bool,
        typer.Option(help="train two models with the file's seed (reproducibility; model checks)"),
    ] = False,
    check: Annotated[
        list[str] | None,
        typer.Option(help="run only these checks (lookahead, warmup, leakage, ...); repeatable"),
    ] = None,
    cuts: Annotated[int, typer.Option(help="cut points of the lookahead check")] = 50,
    permutations: Annotated[
        int, typer.Option(help="block permutations of the significance check")
    ] = 1000,
) -> None:
    """Trust checks on a strategy and the backend's data, run by a training worker: lookahead,
    warm-up, label leakage, reproducibility (--train), significance (--model or --train).
    Exit 1 when a hard check (lookahead, leakage) fails."""
    from ktrdr_cli import options
    from ktrdr_cli.context import client
    from ktrdr_cli.follow import end_of, follow
    from ktrdr_core.protocol import StrategyAuditResultView
    from ktrdr_core.strategy_audit import AUDIT_CHECKS

    if not strategy.is_file():
        fail(f"{strategy}: no such file", code=2)
    if model and train:
        fail("give --model ID or --train, not both", code=2)
    unknown = [name for name in check or [] if name not in AUDIT_CHECKS]
    if unknown:
        fail(f"--check {', '.join(unknown)}: known checks are {', '.join(AUDIT_CHECKS)}", code=2)
    if timeframe:
        options.timeframe(timeframe)
    options.period(start, end)
    overrides: dict[str, Any] = {}
    if timeframe:
        overrides["data.timeframe"] = timeframe
    if start:
        overrides["data.start"] = start
    if end:
        overrides["data.end"] = end
    with client() as api:
        view = api.start_strategy_audit(
            strategy.read_text(encoding="utf-8"),
            symbol,
            overrides=overrides,
            model_id=model,
            train=train,
            checks=check,
            cuts=cuts,
            permutations=permutations,
        )
        view = follow(api, view.operation_id, quiet=STATE.json)
    end_of(view)
    result = view.result
    if not isinstance(result, StrategyAuditResultView):
        fail(f"operation {view.operation_id} completed without an audit report")
    report = result.report  # type: ignore[union-attr]
    emit(
        {"operation_id": view.operation_id, **report.model_dump(mode="json")},
        lambda: show_audit(report),
    )
    if not report.passed:
        raise typer.Exit(1)
