"""`ktrdr strategies init | validate | show | schema`: strategy files, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ktrdr_core.examples import list_examples, read_example

app = typer.Typer(help="Create and check strategy files (no backend needed).", no_args_is_help=True)


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
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if file.exists() and not force:
        typer.echo(f"error: {file} exists; pass --force to overwrite it", err=True)
        raise typer.Exit(1)
    file.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {file} (from example {example!r})")
    typer.echo(f"check it with: ktrdr strategies validate {file}")


@app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(help="strategy YAML files")],
) -> None:
    """Check each file; print every problem with its file, line and key path. Exit 1 on any."""
    from ktrdr_core.strategy import validate_strategy

    failed = 0
    for file in files:
        if not file.is_file():
            typer.echo(f"{file}: no such file", err=True)
            failed += 1
            continue
        issues = validate_strategy(file)
        if issues:
            failed += 1
            for issue in issues:
                typer.echo(str(issue), err=True)
            typer.echo(f"{file}: {len(issues)} problem(s)", err=True)
        else:
            typer.echo(f"{file}: ok")
    if failed:
        raise typer.Exit(1)


@app.command("show")
def show(file: Annotated[Path, typer.Argument(help="a strategy YAML file")]) -> None:
    """The strategy's hash and its ordered model inputs (the feature names a bundle records)."""
    from ktrdr_core.strategy import StrategyError, load_strategy

    try:
        strategy = load_strategy(file)
    except StrategyError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1) from None
    data = strategy.data
    typer.echo(f"{strategy.name}: {strategy.description}".rstrip(": "))
    typer.echo(f"hash      {strategy.strategy_hash()}")
    typer.echo(f"symbols   {', '.join(data.symbols)}")
    typer.echo(f"timeframes {', '.join(str(tf) for tf in data.timeframes)} (base {data.timeframe})")
    typer.echo(f"labels    {strategy.labels.method}")
    typer.echo(f"model     {strategy.model.type}")
    features = strategy.features()
    typer.echo(f"features  {len(features)}")
    for index, feature in enumerate(features):
        typer.echo(f"  {index:>3}  {feature.name}")


@app.command("schema")
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to a file")] = None,
) -> None:
    """The JSON Schema of strategy files, for editors."""
    from ktrdr_core.strategy import strategy_json_schema

    text = json.dumps(strategy_json_schema(), indent=2)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {output}")
