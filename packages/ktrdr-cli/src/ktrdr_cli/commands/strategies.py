"""`ktrdr strategies init | validate | show | schema`: strategy files, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ktrdr_cli.context import emit, fail, group
from ktrdr_core.examples import list_examples, read_example

app = group("Create and check strategy files (no backend needed).")


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
