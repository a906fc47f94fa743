"""The `ktrdr` command.

Command modules import only typer and the standard library at load time; the
backend client, pydantic and rich load when a command runs, so `ktrdr --help`
stays quick.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ktrdr_cli.commands import (
    data,
    indicators,
    local,
    models,
    ops,
    quickstart,
    research,
    strategies,
)
from ktrdr_cli.context import STATE
from ktrdr_core.version import installed_distributions

app = typer.Typer(
    name="ktrdr",
    help="Research trading strategies built on neuro-fuzzy models.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    # Plain help text: rich's help formatting alone costs ~100 ms per call; rich stays
    # for progress bars and reports, where it earns its keep.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.add_typer(local.app, name="local")
app.add_typer(data.app, name="data")
app.add_typer(indicators.app, name="indicators")
app.add_typer(strategies.app, name="strategies")
app.command("train")(research.train)
app.command("backtest")(research.backtest)
app.add_typer(research.backtests_app, name="backtests")
app.add_typer(ops.app, name="ops")
app.command("workers")(ops.workers)
app.add_typer(models.app, name="models")
app.command("quickstart")(quickstart.quickstart)


def _print_version(value: bool) -> None:
    if not value:
        return
    for name, version in installed_distributions().items():
        typer.echo(f"{name} {version}")
    raise typer.Exit()


@app.callback()
def root(
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="KTRDR_API_URL", help="backend URL", show_default=False),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="KTRDR_API_TOKEN", help="API token", show_default=False),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="machine-readable output on every command")
    ] = False,
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
    STATE.url, STATE.token, STATE.json = url, token, json_output


@app.command()
def health() -> None:
    """Check that the backend answers."""
    from ktrdr_cli.context import client, emit, handles_api_errors

    @handles_api_errors
    def run() -> None:
        with client() as api:
            info = api.health()
        emit(
            info,
            lambda: typer.echo(
                f"backend {api.base_url}: {info['status']} (database: {info['database']})"
            ),
        )

    run()


def main() -> None:
    app()
