"""The `ktrdr` command."""

from __future__ import annotations

from typing import Annotated

import typer

from ktrdr_cli.commands import indicators, strategies
from ktrdr_core.version import installed_distributions

app = typer.Typer(
    name="ktrdr",
    help="Research trading strategies built on neuro-fuzzy models.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(indicators.app, name="indicators")
app.add_typer(strategies.app, name="strategies")


def _print_version(value: bool) -> None:
    if not value:
        return
    for name, version in installed_distributions().items():
        typer.echo(f"{name} {version}")
    raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version of every installed ktrdr distribution and exit.",
        ),
    ] = False,
) -> None:
    """Research trading strategies built on neuro-fuzzy models."""


@app.command()
def health() -> None:
    """Check that the backend answers (KTRDR_API_URL)."""
    from ktrdr_core.client import KtrdrClient
    from ktrdr_core.errors import ApiError

    try:
        with KtrdrClient() as client:
            info = client.health()
    except ApiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"backend {client.base_url}: {info['status']} (database: {info['database']})")


def main() -> None:
    app()
