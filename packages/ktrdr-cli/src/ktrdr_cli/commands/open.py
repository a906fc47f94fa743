"""`ktrdr open [ID]`: the dashboard's page of an operation, backtest, walk-forward, parameter
study or model in the browser, or its URL printed where there is no browser. The token is
never put in the URL: the page asks for it once and keeps it for the tab."""

from __future__ import annotations

from typing import Annotated

import typer

from ktrdr_cli.context import client, handles_api_errors

# An operation's kind -> the page that shows its result once it completed.
RESULT_PAGES = {"backtest": "backtests", "walkforward": "walkforwards"}


@handles_api_errors
def open_page(
    item: Annotated[
        str | None,
        typer.Argument(help="an operation or study id (op_…), or a model id; none: the operations"),
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="print the URL, do not start a browser")
    ] = False,
) -> None:
    """Open the dashboard, or the page of an operation, backtest, walk-forward, study or
    model."""
    import webbrowser

    with client() as api:
        if item is None:
            url = api.page_url("operations")
        elif item.startswith("op_"):
            view = api.get_operation(item)
            page = RESULT_PAGES.get(str(view.kind))
            if str(view.kind) == "tune":  # a study's page shows it running too
                url = api.page_url("tunes", item)
            else:
                done = str(view.state) == "completed"
                url = api.page_url(page if page and done else "operations", item)
        else:
            api.get_model(item)  # a clear error for an id that is neither
            url = api.page_url("models", item)
    if print_only or not webbrowser.open(url):
        typer.echo(url)
    else:
        typer.echo(f"opened {url}")
