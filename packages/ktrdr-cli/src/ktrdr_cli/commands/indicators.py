"""`ktrdr indicators list | show NAME`: the indicator catalog, offline."""

from __future__ import annotations

from typing import Annotated

import typer

from ktrdr_cli.context import emit, fail, group

app = group("Browse the indicator catalog (no backend needed).")


@app.command("list")
def list_indicators(
    category: Annotated[
        str | None, typer.Option(help="only this category: trend, momentum, volatility, volume")
    ] = None,
) -> None:
    """Every indicator with its category, outputs and description."""
    from ktrdr_core.catalog.indicators import INDICATORS

    specs = [s for s in INDICATORS.values() if category is None or s.category == category]
    if not specs:
        choices = ", ".join(sorted({s.category for s in INDICATORS.values()}))
        fail(f"no category {category!r}; choose from {choices}", code=2)
    specs.sort(key=lambda s: (s.category, s.name))

    def human() -> None:
        width = max(len(s.name) for s in specs)
        for spec in specs:
            outputs = ",".join(spec.outputs)
            typer.echo(
                f"{spec.name:<{width}}  {spec.category:<10}  {outputs:<24}  {spec.description}"
            )

    emit(specs, human)


@app.command("show")
def show_indicator(name: Annotated[str, typer.Argument(help="indicator type, e.g. rsi")]) -> None:
    """Parameters (type, default, bounds), outputs and description of one indicator."""
    from ktrdr_core.catalog.indicators import get_indicator

    try:
        spec = get_indicator(name)
    except ValueError as exc:
        fail(str(exc), code=2)

    def human() -> None:
        typer.echo(f"{spec.name} ({spec.category}): {spec.description}")
        typer.echo(f"outputs: {', '.join(spec.outputs)}")
        if not spec.params:
            typer.echo("parameters: none")
        for param in spec.params:
            typer.echo(
                f"  {param.name}: {param.type}, default {param.default}, "
                f"{param.minimum}..{param.maximum} — {param.description}"
            )

    emit(spec, human)
