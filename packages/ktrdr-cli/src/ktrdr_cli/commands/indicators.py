"""`ktrdr indicators list | show NAME`: the indicator catalog, offline."""

from __future__ import annotations

from typing import Annotated

import typer

from ktrdr_core.catalog.indicators import INDICATORS, get_indicator

app = typer.Typer(help="Browse the indicator catalog (no backend needed).", no_args_is_help=True)


@app.command("list")
def list_indicators(
    category: Annotated[
        str | None, typer.Option(help="only this category: trend, momentum, volatility, volume")
    ] = None,
) -> None:
    """Every indicator with its category, outputs and description."""
    specs = [s for s in INDICATORS.values() if category is None or s.category == category]
    if not specs:
        categories = sorted({s.category for s in INDICATORS.values()})
        choices = ", ".join(categories)
        typer.echo(f"error: no category {category!r}; choose from {choices}", err=True)
        raise typer.Exit(2)
    width = max(len(s.name) for s in specs)
    for spec in sorted(specs, key=lambda s: (s.category, s.name)):
        outputs = ",".join(spec.outputs)
        typer.echo(f"{spec.name:<{width}}  {spec.category:<10}  {outputs:<24}  {spec.description}")


@app.command("show")
def show_indicator(name: Annotated[str, typer.Argument(help="indicator type, e.g. rsi")]) -> None:
    """Parameters (type, default, bounds), outputs and description of one indicator."""
    try:
        spec = get_indicator(name)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{spec.name} ({spec.category}): {spec.description}")
    typer.echo(f"outputs: {', '.join(spec.outputs)}")
    if not spec.params:
        typer.echo("parameters: none")
    for param in spec.params:
        typer.echo(
            f"  {param.name}: {param.type}, default {param.default}, "
            f"{param.minimum}..{param.maximum} — {param.description}"
        )
