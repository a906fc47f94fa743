"""`ktrdr data import | list | show | delete`: market data held by the backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ktrdr_cli.context import client, emit, fail, group, handles_api_errors, short_time, table

app = group("Import and inspect market data (OHLCV CSV).")


@app.command("import")
@handles_api_errors
def import_data(
    symbol: Annotated[str, typer.Argument(help="e.g. AAPL, EURUSD")],
    timeframe: Annotated[str, typer.Argument(help="1m 5m 15m 30m 1h 4h 1d 1w")],
    file: Annotated[Path, typer.Argument(help="CSV with timestamp,open,high,low,close,volume")],
) -> None:
    """Upload a CSV; the backend validates it (errors name the line) and stores a new version."""
    if not file.is_file():
        fail(f"{file}: no such file")
    with client() as api:
        dataset = api.import_data(symbol, timeframe, file)

    def human() -> None:
        verb = "unchanged (same content as" if dataset.unchanged else "imported as"
        typer.echo(
            f"{dataset.symbol} {dataset.timeframe}: {verb} version {dataset.version}"
            + (")" if dataset.unchanged else "")
        )
        _describe(dataset)

    emit(dataset, human)


@app.command("list")
@handles_api_errors
def list_data(
    symbol: Annotated[str | None, typer.Option(help="only this symbol")] = None,
    timeframe: Annotated[str | None, typer.Option(help="only this timeframe")] = None,
    all_versions: Annotated[bool, typer.Option(help="every stored version")] = False,
) -> None:
    """Stored datasets: symbol, timeframe, version, rows and range."""
    with client() as api:
        datasets = api.list_data(symbol, timeframe, all_versions)
    emit(
        datasets,
        lambda: table(
            [
                [
                    d.symbol,
                    str(d.timeframe),
                    str(d.version),
                    str(d.rows),
                    short_time(d.first),
                    short_time(d.last),
                    d.checksum[:12],
                ]
                for d in datasets
            ],
            ["SYMBOL", "TF", "VER", "ROWS", "FIRST", "LAST", "SHA256"],
        ),
    )


@app.command("show")
@handles_api_errors
def show(
    symbol: str,
    timeframe: str,
    version: Annotated[int | None, typer.Option(help="default: the newest")] = None,
) -> None:
    """Range, rows, checksum and the gap report of one dataset."""
    with client() as api:
        dataset = api.get_data(symbol, timeframe, version)
    emit(dataset, lambda: _describe(dataset))


@app.command("delete")
@handles_api_errors
def delete(
    symbol: str,
    timeframe: str,
    version: Annotated[int | None, typer.Option(help="default: every version")] = None,
    force: Annotated[
        bool, typer.Option(help="delete even if a model or operation uses it")
    ] = False,
) -> None:
    """Delete stored data; refused while a model or operation refers to it, unless --force."""
    with client() as api:
        deleted = api.delete_data(symbol, timeframe, version, force)
    emit(
        deleted,
        lambda: [typer.echo(f"deleted {d.symbol} {d.timeframe} v{d.version}") for d in deleted],
    )


def _describe(dataset) -> None:  # type: ignore[no-untyped-def]
    typer.echo(f"  rows      {dataset.rows}")
    typer.echo(f"  range     {dataset.first} → {dataset.last} (bar open times, UTC)")
    typer.echo(f"  sha256    {dataset.checksum}")
    for warning in dataset.warnings:
        typer.echo(f"  note      {warning}")
    gaps = dataset.gap_report or {}
    if gaps:
        counts = gaps.get("missing_bars") or {}
        text = ", ".join(f"{kind} {n}" for kind, n in counts.items() if n) or "none"
        typer.echo(f"  missing   {text} (bars; calendar: {_calendar(gaps)})")
        for gap in (gaps.get("unexpected") or [])[:10]:
            typer.echo(
                f"    hole {gap.get('start')} → {gap.get('end')}: {gap.get('missing_bars')} bars"
            )


def _calendar(gaps: dict) -> str:
    calendar = gaps.get("calendar")
    return calendar.get("kind", "?") if isinstance(calendar, dict) else str(calendar or "?")
