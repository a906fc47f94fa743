"""`ktrdr data import | fetch | list | show | delete`: market data held by the backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ktrdr_cli import options
from ktrdr_cli.context import (
    STATE,
    client,
    emit,
    fail,
    group,
    handles_api_errors,
    short_time,
    table,
)

if TYPE_CHECKING:
    from ktrdr_core.protocol import DataFetchResultView

app = group("Import, fetch and inspect market data (OHLCV).")

FETCH_MODES = ("full", "tail", "backfill", "repair")


@app.command("import")
@handles_api_errors
def import_data(
    symbol: Annotated[str, typer.Argument(help="e.g. AAPL, EURUSD")],
    timeframe: Annotated[str, typer.Argument(help="1m 5m 15m 30m 1h 4h 1d 1w")],
    file: Annotated[Path, typer.Argument(help="CSV with timestamp,open,high,low,close,volume")],
) -> None:
    """Upload a CSV; the backend validates it (errors name the line) and stores a new version."""
    options.timeframe(timeframe, "TIMEFRAME")
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


@app.command("fetch")
@handles_api_errors
def fetch(
    symbol: Annotated[str, typer.Argument(help="e.g. BTCUSDT (binance), AAPL or EURUSD (ib)")],
    timeframe: Annotated[str, typer.Argument(help="1m 5m 15m 30m 1h 4h 1d 1w")],
    provider: Annotated[str, typer.Option(help="binance or ib")],
    mode: Annotated[
        str,
        typer.Option(
            help="full: --start..--end; tail: after the last stored bar; backfill: --start up "
            "to the first stored bar; repair: only the unexpected holes"
        ),
    ] = "full",
    start: Annotated[str | None, typer.Option(help="first bar, UTC (YYYY-MM-DD[THH:MM])")] = None,
    end: Annotated[str | None, typer.Option(help="end, exclusive (default: now)")] = None,
    follow_it: Annotated[bool, typer.Option("--follow", "-f", help="show progress")] = False,
) -> None:
    """Fetch bars from a provider into a new version (a worker does the downloading).

    Bars already stored are never overwritten: re-fetched bars that disagree are reported.
    """

    from ktrdr_cli.follow import end_of, follow

    if mode not in FETCH_MODES:
        fail(f"--mode {mode!r}: use one of {', '.join(FETCH_MODES)}", code=2)
    options.timeframe(timeframe, "TIMEFRAME")
    start_at, end_at = options.period(start, end)
    with client() as api:
        try:
            view = api.start_data_fetch(
                provider, symbol, timeframe, mode=mode, start=start_at, end=end_at
            )
        except ValueError as exc:  # the request model refused it before sending
            fail(_first_error(exc), code=2)
        if not follow_it:
            emit(
                view,
                lambda: typer.echo(
                    f"fetch started: {view.operation_id}\n"
                    f"follow it with: ktrdr ops follow {view.operation_id}"
                ),
            )
            return
        view = follow(api, view.operation_id, quiet=STATE.json)
    end_of(view)
    from ktrdr_core.protocol import DataFetchResultView

    result = view.result if isinstance(view.result, DataFetchResultView) else None
    emit(view, lambda: show_fetch(result))


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg", exc)).removeprefix("Value error, ")
        return f"{where}: {message}" if where else message
    return str(exc)


def show_fetch(result: DataFetchResultView | None) -> None:
    """What a finished fetch did: bars fetched and added, conflicts, holes, the version."""
    summary = result.summary if result else {}
    dataset = (result.dataset if result else None) or {}
    typer.echo(
        f"{summary.get('provider')} {summary.get('symbol')} {summary.get('timeframe')} "
        f"({summary.get('mode')}): {summary.get('bars_fetched', 0)} bars fetched in "
        f"{summary.get('requests', 0)} request(s), {summary.get('bars_added', 0)} added, "
        f"{summary.get('bars_overlapping', 0)} already stored"
    )
    for window in summary.get("windows") or []:
        typer.echo(f"  window    {window['start']} → {window['end']}")
    if summary.get("retries"):
        typer.echo(
            f"  retries   {summary['retries']} (waited {summary.get('waited_s', 0)} s on "
            "rate limits and errors)"
        )
    conflicts = summary.get("conflicts", 0)
    if conflicts:
        typer.echo(f"  CONFLICTS {conflicts} re-fetched bar(s) disagree; the stored values kept:")
        for example in summary.get("conflict_examples") or []:
            stored, fetched = example["stored"], example["fetched"]
            diffs = ", ".join(
                f"{key} {stored[key]} vs {fetched[key]}"
                for key in stored
                if stored[key] != fetched[key]
            )
            typer.echo(f"    {example['timestamp']}: stored vs fetched {diffs}")
    for hole in summary.get("holes") or []:
        still = hole["missing_bars"] - hole["filled"]
        typer.echo(
            f"  hole      {hole['start']} → {hole['end']}: {hole['filled']} of "
            f"{hole['missing_bars']} bars filled"
            + (f" ({still} the provider lacks too)" if still > 0 else "")
        )
    if dataset:
        verb = "new version" if dataset.get("created") else "unchanged, still version"
        typer.echo(
            f"{dataset.get('symbol')} {dataset.get('timeframe')}: {verb} {dataset.get('version')}"
            f", {dataset.get('rows')} bars {dataset.get('first')} → {dataset.get('last')}"
            f", {dataset.get('unexpected_gaps', 0)} unexpected gap(s)"
        )


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
