"""`ktrdr data import | fetch | list | show | delete | exchange | exchanges`: market data
held by the backend, and the exchange each symbol trades on."""

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

ExchangeOption = Annotated[
    str | None,
    typer.Option(
        help="the exchange the symbol trades on (XNYS, XLON, NASDAQ, 24/7; `ktrdr data "
        "exchanges` lists them): a worker checks the bars against its official sessions, "
        "and it becomes the symbol's setting",
    ),
]


def _exchange(value: str | None) -> str | None:
    """The exchange code ``value`` names, checked before anything is sent (exit 2 naming the
    close matches when it names none)."""
    if value is None:
        return None
    from ktrdr_core.exchanges import exchange_code

    try:
        return exchange_code(value)
    except ValueError as exc:
        fail(f"--exchange: {exc}", code=2)
    raise AssertionError("unreachable")


@app.command("import")
@handles_api_errors
def import_data(
    symbol: Annotated[str, typer.Argument(help="e.g. AAPL, EURUSD")],
    timeframe: Annotated[str, typer.Argument(help="1m 5m 15m 30m 1h 4h 1d 1w")],
    file: Annotated[Path, typer.Argument(help="CSV with timestamp,open,high,low,close,volume")],
    exchange: ExchangeOption = None,
) -> None:
    """Upload a CSV; the backend validates it (errors name the line) and stores a new version.

    With --exchange (or the symbol's setting) a worker also checks the bars against that
    exchange's official sessions; `ktrdr data show` shows that exact report once it is made.
    """
    options.timeframe(timeframe, "TIMEFRAME")
    code = _exchange(exchange)
    if not file.is_file():
        fail(f"{file}: no such file")
    with client() as api:
        dataset = api.import_data(symbol, timeframe, file, exchange=code)

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
    exchange: ExchangeOption = None,
    follow_it: Annotated[bool, typer.Option("--follow", "-f", help="show progress")] = False,
) -> None:
    """Fetch bars from a provider into a new version (a worker does the downloading).

    Bars already stored are never overwritten: re-fetched bars that disagree are reported.
    The version's exchange: --exchange, else the symbol's setting, else what the provider
    knows (IB's contract details; 24/7 for Binance).
    """

    from ktrdr_cli.follow import end_of, follow

    if mode not in FETCH_MODES:
        fail(f"--mode {mode!r}: use one of {', '.join(FETCH_MODES)}", code=2)
    options.timeframe(timeframe, "TIMEFRAME")
    code = _exchange(exchange)
    start_at, end_at = options.period(start, end)
    with client() as api:
        try:
            view = api.start_data_fetch(
                provider, symbol, timeframe, mode=mode, start=start_at, end=end_at, exchange=code
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
            f", {dataset.get('unexpected_gaps', 0)} unexpected gap(s) by the heuristic report"
        )
        if dataset.get("exact_report_operation_id"):
            typer.echo(
                f"  exchange  {dataset.get('exchange')}: exact gap report queued "
                f"({dataset['exact_report_operation_id']}); `ktrdr data show "
                f"{dataset.get('symbol')} {dataset.get('timeframe')}` shows it when made"
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


@app.command("exchange")
@handles_api_errors
def exchange_setting(
    symbol: str,
    code: Annotated[
        str | None, typer.Argument(help="XNYS, XLON, NASDAQ, 24/7 …; leave out to show it")
    ] = None,
    clear: Annotated[bool, typer.Option(help="name no exchange for the symbol")] = False,
) -> None:
    """Show or set the exchange SYMBOL trades on.

    Setting it checks the newest version of each of its timeframes against the exchange's
    official sessions (a worker makes each exact gap report), and later imports and fetches
    of the symbol use it. --clear goes back to the heuristic reports.
    """
    if code is not None and clear:
        fail("give an exchange or --clear, not both", code=2)
    with client() as api:
        if code is None and not clear:
            view = api.get_symbol(symbol)
        else:
            view = api.set_exchange(symbol, None if clear else _exchange(code))

    def human() -> None:
        typer.echo(f"{view.symbol}: exchange {view.exchange or 'none named'}")
        for operation_id in view.queued:
            typer.echo(f"  exact gap report queued: {operation_id}")

    emit(view, human)


@app.command("exchanges")
def exchanges() -> None:
    """Every exchange code whose official sessions ktrdr knows, and the aliases."""
    from ktrdr_core.exchanges import EXCHANGE_ALIASES, EXCHANGES

    def human() -> None:
        typer.echo(" ".join(EXCHANGES))
        typer.echo("aliases: " + ", ".join(f"{a}={c}" for a, c in EXCHANGE_ALIASES.items()))

    emit({"exchanges": list(EXCHANGES), "aliases": EXCHANGE_ALIASES}, human)


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
    if dataset.exact_gap_report is not None:
        typer.echo(f"  exchange  {dataset.exchange}")
        _exact(dataset.exact_gap_report)
        return
    status = dataset.exact_report
    if dataset.exchange is None:
        why = f"no exchange named (`ktrdr data exchange {dataset.symbol} CODE` names one)"
    elif status is not None and not status.state.is_terminal:
        why = f"shown while the exact report is {status.state} ({status.operation_id})"
    else:
        error = f": {status.error}" if status is not None and status.error else ""
        what = f"{status.state} ({status.operation_id}{error})" if status else "is not queued"
        why = f"as the exact report {what}; `ktrdr data exchange {dataset.symbol} "
        why += f"{dataset.exchange}` queues it again"
    if dataset.exchange is not None:
        typer.echo(f"  exchange  {dataset.exchange}")
    _heuristic(dataset.gap_report or {}, why)


def _heuristic(gaps: dict, why: str) -> None:
    """The heuristic report, labelled as one, with the calendar it guessed and why."""
    calendar = gaps.get("calendar") if isinstance(gaps.get("calendar"), dict) else {}
    guessed = calendar.get("kind", "?")
    if calendar.get("reason"):
        guessed += f": {calendar['reason']}"
    typer.echo(f"  gaps      heuristic report, {why}")
    typer.echo(f"            calendar guessed from the bars ({guessed})")
    counts = gaps.get("missing_bars") or {}
    text = ", ".join(f"{kind} {n}" for kind, n in counts.items() if n) or "none"
    typer.echo(f"  missing   {text} (bars)")
    for gap in (gaps.get("unexpected") or [])[:10]:
        start, end, bars = gap.get("start"), gap.get("end"), gap.get("missing_bars")
        typer.echo(f"    hole {start} → {end}: {bars} bars")


def _exact(report) -> None:  # type: ignore[no-untyped-def]
    """The exact report: the bars against the exchange's official sessions."""
    typer.echo(
        f"  gaps      exact report: the official sessions of {report.exchange} "
        f"({report.timezone}, {report.library})"
    )
    typer.echo(
        f"            {report.sessions} sessions ({report.early_closes} early closes), "
        f"{report.expected_bars} bars expected, {report.bars_present} present, "
        f"{report.missing_bars} missing in {report.unexpected_total} stretch(es)"
    )
    for gap in report.unexpected[:10]:
        sessions = str(gap.first_session)
        if gap.last_session != gap.first_session:
            sessions += f" … {gap.last_session}"
        typer.echo(
            f"    hole {gap.start:%Y-%m-%dT%H:%M:%SZ} → {gap.end:%Y-%m-%dT%H:%M:%SZ}: "
            f"{gap.missing_bars} bars (session {sessions})"
        )
    if report.unexpected_total > 10:
        typer.echo(f"    … and {report.unexpected_total - 10} more (--json lists them)")
    outside = report.outside_hours_bars
    typer.echo(
        f"  closed    {report.holidays_total} weekday(s) without a session (holidays); "
        f"{report.closed_day_bars_total} bar(s) on closed days"
        + (f"; {outside} outside session hours" if outside else "")
    )
    for bar in report.closed_day_bars[:10]:
        typer.echo(f"    bar on a closed day {bar.day}: {bar.timestamp:%Y-%m-%dT%H:%M:%SZ}")
