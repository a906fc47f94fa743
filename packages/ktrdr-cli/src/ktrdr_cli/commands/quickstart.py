"""`ktrdr quickstart`: the whole research loop in one command.

Starts the local stack if needed, imports data (synthetic unless --data is given, or
fetched from a provider with --provider P SYMBOL, for machines with internet access),
validates an example strategy, trains it, backtests the model on its held-out
test period, prints the report and saves the chart.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ktrdr_cli.context import STATE, fail, handles_api_errors

EXAMPLE = "rsi_zones"
SYNTHETIC_SYMBOL = "SYNTH"
SYNTHETIC_TIMEFRAME = "1d"
SYNTHETIC_BARS = 4000  # about eleven years of daily bars


def _say(text: str) -> None:
    if not STATE.json:
        typer.echo(text)


@handles_api_errors
def quickstart(
    fetch_symbol: Annotated[
        str | None, typer.Argument(metavar="SYMBOL", help="with --provider: what to fetch")
    ] = None,
    provider: Annotated[
        str | None, typer.Option(help="fetch SYMBOL from this provider (binance, ib)")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="a real OHLCV CSV instead of synthetic data")
    ] = None,
    symbol: Annotated[str, typer.Option(help="symbol name for --data")] = "DATA",
    timeframe: Annotated[str, typer.Option(help="timeframe of --data")] = SYNTHETIC_TIMEFRAME,
    slot: Annotated[int, typer.Option(help="local stack slot to use")] = 0,
    seed: Annotated[int, typer.Option(help="seed for the simulator and training")] = 7,
    charts: Annotated[Path, typer.Option(help="folder for the chart")] = Path("ktrdr-charts"),
) -> None:
    """Import data, train the rsi_zones example, backtest it, print the report and chart path."""
    from ktrdr_cli.commands.research import _report_and_chart
    from ktrdr_cli.context import client
    from ktrdr_cli.follow import end_of, follow
    from ktrdr_cli.local_stack import StackError, base_home, healthy, up
    from ktrdr_cli.reports import show_backtest, show_training
    from ktrdr_core.examples import read_example
    from ktrdr_core.protocol import DATA_PROVIDERS, TrainingResultView
    from ktrdr_core.timeframes import TimeframeError, parse_timeframe

    # Every argument is checked before anything starts: a mistake leaves no stack behind.
    if (provider is None) != (fetch_symbol is None):
        fail(
            "--provider and SYMBOL go together: ktrdr quickstart --provider binance BTCUSDT", code=2
        )
    if provider is not None and data is not None:
        fail("give --data or --provider SYMBOL, not both", code=2)
    if data is not None and not data.is_file():
        fail(f"--data {data}: no such file", code=2)
    if provider is not None and provider not in DATA_PROVIDERS:
        fail(f"--provider {provider!r}: known providers are {', '.join(DATA_PROVIDERS)}", code=2)
    if data is not None or provider is not None:
        try:
            parse_timeframe(timeframe)
        except TimeframeError as exc:
            fail(f"--timeframe: {exc}", code=2)

    started = time.monotonic()
    if STATE.url and healthy(STATE.url):
        _say(f"[1/5] using the backend at {STATE.url}")
    else:
        _say(f"[1/5] starting the local stack (slot {slot}) …")
        try:
            stack = up(slot)
        except StackError as exc:
            fail(str(exc))
        STATE.url = stack.url
        _say(f"      up at {stack.url}; logs in {stack.logs}")

    synthetic = data is None and provider is None
    if provider is not None:
        symbol = fetch_symbol.upper()  # type: ignore[union-attr]
        _say(f"[2/5] fetching {symbol} {timeframe} from {provider} …")
    elif synthetic:
        from ktrdr_core.simulator import SYNTHETIC_NOTE, simulate_csv

        symbol, timeframe = SYNTHETIC_SYMBOL, SYNTHETIC_TIMEFRAME
        folder = base_home() / "quickstart"
        folder.mkdir(parents=True, exist_ok=True)
        data = folder / f"{symbol}_{timeframe}_seed{seed}.csv"
        data.write_text(simulate_csv(SYNTHETIC_BARS, timeframe, seed=seed))
        _say(f"[2/5] importing {SYNTHETIC_BARS} bars of SYNTHETIC data ({SYNTHETIC_NOTE})")
    else:
        _say(f"[2/5] importing {data} as {symbol} {timeframe}")
    tag = " (synthetic)" if synthetic else ""

    with client() as api:
        if provider is not None:
            dataset = _fetch(api, provider, symbol, timeframe)
        else:
            dataset = api.import_data(symbol, timeframe, data)
        _say(f"      {dataset.rows} bars{tag}, {dataset.first:%Y-%m-%d} → {dataset.last:%Y-%m-%d}")

        strategy = read_example(EXAMPLE)
        overrides = {
            "data.symbols": [symbol],
            "data.timeframe": timeframe,
            "data.start": None,
            "data.end": None,
            "training.seed": seed,
            "training.device": "cpu" if synthetic else "auto",
        }
        validation = api.validate_strategy(strategy, overrides)
        _say(f"[3/5] strategy {validation.name}{tag}: valid, {len(validation.features)} features")

        _say("[4/5] training …")
        training = api.start_training(strategy, overrides)
        training = follow(api, training.operation_id, quiet=STATE.json)
        end_of(training)
        result = training.result
        summary = result.summary if result else {}
        model_id = result.model_id if isinstance(result, TrainingResultView) else None
        if not STATE.json and "test_metrics" in summary:
            show_training(summary)

        _say(f"[5/5] backtesting model {model_id} on its test period{tag} …")
        backtest = api.start_backtest(model_id)
        backtest = follow(api, backtest.operation_id, quiet=STATE.json)
        end_of(backtest)
        report, chart = _report_and_chart(api, backtest.operation_id, charts)

    elapsed = time.monotonic() - started
    if STATE.json:
        import json

        typer.echo(
            json.dumps(
                {
                    "synthetic": synthetic,
                    "model_id": model_id,
                    "report": report,
                    "chart": str(chart) if chart else None,
                    "elapsed_s": round(elapsed, 1),
                },
                default=str,
            )
        )
        return
    show_backtest(report, chart)
    if synthetic:
        typer.echo(f"note: every number above comes from {SYNTHETIC_NOTE}")
    typer.echo(f"quickstart finished in {elapsed:.0f} s")


def _fetch(api, provider: str, symbol: str, timeframe: str):  # type: ignore[no-untyped-def]
    """Fetch about SYNTHETIC_BARS bars up to now (fewer when the market is younger) through a
    data-fetch operation, and return the dataset version it made."""
    from datetime import UTC, datetime, timedelta

    from ktrdr_cli.commands.data import show_fetch
    from ktrdr_cli.follow import end_of, follow
    from ktrdr_core.protocol import DataFetchResultView
    from ktrdr_core.timeframes import parse_timeframe

    span = parse_timeframe(timeframe).duration * SYNTHETIC_BARS
    start = datetime.now(UTC) - span - timedelta(days=1)
    view = api.start_data_fetch(provider, symbol, timeframe, mode="full", start=start)
    view = follow(api, view.operation_id, quiet=STATE.json)
    end_of(view)
    result = view.result if isinstance(view.result, DataFetchResultView) else None
    if not STATE.json:
        show_fetch(result)
    dataset = (result.dataset if result else None) or {}
    return api.get_data(symbol, timeframe, dataset.get("version"))
