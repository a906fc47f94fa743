"""The `ktrdr` command.

`ktrdr --help` imports typer and this module only: each sub-command lives in a
module under `ktrdr_cli.commands` that is imported when that command runs (or
its own help is asked for). The root help lists them from `COMMANDS`, whose
one-line descriptions a test keeps equal to the commands' own. The backend
client, pydantic and rich load inside the commands that use them.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ktrdr_cli.context import STATE

# name -> (module, attribute, one-line help). The attribute is a typer.Typer (a command
# group) or a function (a single command). Listed in the order a researcher uses them.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "quickstart": (
        "ktrdr_cli.commands.quickstart",
        "quickstart",
        "Import data, train the rsi_zones example, backtest it, print the report and its page.",
    ),
    "local": ("ktrdr_cli.commands.local", "app", "Run the API and workers on this machine."),
    "open": (
        "ktrdr_cli.commands.open",
        "open_page",
        "Open the dashboard, or the page of an operation, backtest, walk-forward, study or model.",
    ),
    "data": ("ktrdr_cli.commands.data", "app", "Import, fetch and inspect market data (OHLCV)."),
    "indicators": (
        "ktrdr_cli.commands.indicators",
        "app",
        "Browse the indicator catalog (no backend needed).",
    ),
    "strategies": (
        "ktrdr_cli.commands.strategies",
        "app",
        "Create and check strategy files (offline); audit one on the backend's data.",
    ),
    "train": (
        "ktrdr_cli.commands.research",
        "train",
        "Start training a strategy on the backend's data (a worker does the work).",
    ),
    "backtest": (
        "ktrdr_cli.commands.research",
        "backtest",
        "Backtest a trained model on data it never saw (default: its test period).",
    ),
    "backtests": ("ktrdr_cli.commands.research", "backtests_app", "Backtest results."),
    "walkforward": (
        "ktrdr_cli.commands.walkforward",
        "walkforward",
        "Walk-forward a strategy: train and backtest it fold after fold, on every worker.",
    ),
    "walkforwards": (
        "ktrdr_cli.commands.walkforward",
        "walkforwards_app",
        "Walk-forward results.",
    ),
    "tune": (
        "ktrdr_cli.commands.tune",
        "tune",
        "Search a strategy's parameters with Optuna; trials are walk-forwards on every worker.",
    ),
    "tunes": (
        "ktrdr_cli.commands.tune",
        "tunes_app",
        "Parameter studies: their trials, the holdout check, the best strategy.",
    ),
    "runs": (
        "ktrdr_cli.commands.runs",
        "app",
        "Experiments: list runs of a strategy, diff two of them.",
    ),
    "models": ("ktrdr_cli.commands.models", "app", "Trained model bundles."),
    "ops": (
        "ktrdr_cli.commands.ops",
        "app",
        "Operations: training, backtests and their progress.",
    ),
    "workers": (
        "ktrdr_cli.commands.ops",
        "workers",
        "Registered workers: kind, device, status and current operation.",
    ),
    "health": ("ktrdr_cli.commands.ops", "health", "Check that the backend answers."),
    "tokens": (
        "ktrdr_cli.commands.access",
        "tokens_app",
        "Bearer tokens with a role (admin, researcher, worker, reader): create, list, revoke.",
    ),
    "audit": (
        "ktrdr_cli.commands.access",
        "audit",
        "The audit trail: deletes, imports, cancels, token changes and refused requests.",
    ),
}


def load_command(name: str) -> Any:
    """Import sub-command `name` and build its click command (a group or a single command)."""
    module_name, attribute, _ = COMMANDS[name]
    target = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        return typer.main.get_group(target)
    single = typer.Typer(add_completion=False, rich_markup_mode=None)
    single.command(name)(target)
    return typer.main.get_command(single)


def _options_part(args: list[str]) -> list[str]:
    """The arguments before a ``--`` separator (after it, everything is a plain value)."""
    return args[: args.index("--")] if "--" in args else args


class LazyGroup(TyperGroup):
    """The root group: sub-commands are imported on first use, listed without importing."""

    def main(self, args: Any = None, *extra: Any, **kwargs: Any) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        if "--json" not in _options_part(args) or kwargs.get("standalone_mode") is False:
            return super().main(args, *extra, **kwargs)
        # Under --json a usage error is JSON too, with the exit code click gives it.
        kwargs["standalone_mode"] = False
        try:
            code = super().main(args, *extra, **kwargs)
        except typer.exceptions.TyperException as exc:  # click's usage and parameter errors
            import json

            exit_code = getattr(exc, "exit_code", 2)
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            typer.echo(json.dumps({"error": message, "code": exit_code}), err=True)
            sys.exit(exit_code)
        except typer.Abort:
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        # --json belongs to the root but reads naturally at the end too (`ktrdr data list
        # --json`): wherever it stands before a `--`, it is taken as the root's.
        head = _options_part(args)
        if "--json" in head[1:]:
            args = ["--json", *(a for a in head if a != "--json"), *args[len(head) :]]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return [*self.commands, *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        # The stored one-liners, so the root help imports no command module.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in self.list_commands(ctx):
            # TyperGroup suggests only among loaded commands; suggest among every name.
            from difflib import get_close_matches

            matches = get_close_matches(name, list(COMMANDS))
            hint = f" Did you mean {', '.join(map(repr, matches))}?" if matches else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="ktrdr",
    cls=LazyGroup,
    help="Research trading strategies built on neuro-fuzzy models.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    # Plain help text: rich's help formatting alone costs ~100 ms per call; rich stays
    # for progress bars and reports, where it earns its keep.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if not value:
        return
    from ktrdr_core.version import installed_distributions

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


def main() -> None:
    app()
