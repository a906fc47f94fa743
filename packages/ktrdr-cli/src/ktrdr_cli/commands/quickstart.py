"""`ktrdr quickstart`: the whole research loop in one command.

Starts the local stack if needed, imports data (synthetic unless --data is given, or
fetched from a provider with --provider P SYMBOL, for machines with internet access),
validates an example strategy, trains it, backtests the model on its held-out
test period, prints the report, then checks the model for lookahead (the strategy audit's
first check); the last line is the URL of the backtest's page in the dashboard.

The synthetic market carries a planted, documented effect (``ktrdr_core.simulator.
RSI_REVERSION``: mean reversion after RSI extremes) unless ``--no-planted``; the quickstart
says what was planted and, at the end, whether the model found it. Nothing is tuned towards
that answer: the example's thresholds are its own, the effect is in the data, and the model
has to find it (``--no-planted`` trains on the same market without it, for comparison).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ktrdr_cli.context import STATE, fail, handles_api_errors

EXAMPLE = "rsi_zones"
SYNTHETIC_SYMBOL = "SYNTH"
SYNTHETIC_TIMEFRAME = "1d"
SYNTHETIC_BARS = 4000  # about eleven years of daily bars
# The example's memberships that see the planted effect (RSI extremes), for the closing lines.
PLANTED_MEMBERSHIPS = ("rsi_zone_oversold", "rsi_zone_overbought")
FOUND_MARGIN = 0.10  # "found": balanced accuracy this far above the baseline, and trades
STEPS = 6


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
    planted: Annotated[
        bool,
        typer.Option(
            help="plant the documented RSI mean-reversion effect in the synthetic market "
            "(--no-planted: the same market without it)"
        ),
    ] = True,
) -> None:
    """Import data, train the rsi_zones example, backtest it, print the report and its page.

    The last line printed is the URL of the backtest's page in the dashboard."""
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
        _say(f"[1/{STEPS}] using the backend at {STATE.url}")
    else:
        _say(f"[1/{STEPS}] starting the local stack (slot {slot}) …")
        try:
            stack = up(slot)
        except StackError as exc:
            fail(str(exc))
        STATE.url = stack.url
        _say(f"      up at {stack.url}; logs in {stack.logs}")

    synthetic = data is None and provider is None
    if provider is not None:
        symbol = fetch_symbol.upper()  # type: ignore[union-attr]
        _say(f"[2/{STEPS}] fetching {symbol} {timeframe} from {provider} …")
    elif synthetic:
        from ktrdr_core.simulator import RSI_REVERSION, SYNTHETIC_NOTE, simulate_csv

        symbol, timeframe = SYNTHETIC_SYMBOL, SYNTHETIC_TIMEFRAME
        folder = base_home() / "quickstart"
        folder.mkdir(parents=True, exist_ok=True)
        effect = RSI_REVERSION if planted else None
        kind = "planted" if planted else "plain"
        data = folder / f"{symbol}_{timeframe}_seed{seed}_{kind}.csv"
        data.write_text(simulate_csv(SYNTHETIC_BARS, timeframe, seed=seed, planted=effect))
        _say(f"[2/{STEPS}] importing {SYNTHETIC_BARS} bars of SYNTHETIC data ({SYNTHETIC_NOTE})")
        if effect is not None:
            _say(f"      planted effect (ktrdr_core.simulator.RSI_REVERSION): {effect.describe()}")
        else:
            _say("      no planted effect (--no-planted): nothing beyond the market's own noise")
    else:
        _say(f"[2/{STEPS}] importing {data} as {symbol} {timeframe}")
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
        _say(
            f"[3/{STEPS}] strategy {validation.name}{tag}: valid, "
            f"{len(validation.features)} features"
        )

        _say(f"[4/{STEPS}] training …")
        training = api.start_training(strategy, overrides)
        training = follow(api, training.operation_id, quiet=STATE.json)
        end_of(training)
        result = training.result
        summary = result.summary if result else {}
        model_id = result.model_id if isinstance(result, TrainingResultView) else None
        if not STATE.json and "test_metrics" in summary:
            show_training(summary)

        _say(f"[5/{STEPS}] backtesting model {model_id} on its test period{tag} …")
        backtest = api.start_backtest(model_id)
        backtest = follow(api, backtest.operation_id, quiet=STATE.json)
        end_of(backtest)
        report = api.backtest_report(backtest.operation_id)
        page = api.page_url("backtests", backtest.operation_id)

        _say(
            f"[6/{STEPS}] checking model {model_id} for lookahead (the strategy audit's "
            "first check) …"
        )
        audit = api.start_strategy_audit(
            strategy, symbol, overrides=overrides, model_id=model_id, checks=["lookahead"]
        )
        audit = follow(api, audit.operation_id, quiet=STATE.json)
        end_of(audit)
        lookahead = _lookahead(audit)

    elapsed = time.monotonic() - started
    found = _found(summary, report) if synthetic else None
    if STATE.json:
        import json

        typer.echo(
            json.dumps(
                {
                    "synthetic": synthetic,
                    "model_id": model_id,
                    "report": report,
                    "page": page,
                    "planted": planted if synthetic else None,
                    "found": found,
                    "lookahead": lookahead.model_dump(mode="json"),
                    "elapsed_s": round(elapsed, 1),
                },
                default=str,
            )
        )
        return
    show_backtest(report, None)
    if found is not None:
        _show_found(found, planted)
    typer.echo(f"lookahead: {lookahead.status.value.upper()} — {lookahead.summary}")
    if synthetic:
        typer.echo(f"note: every number above comes from {SYNTHETIC_NOTE}")
    typer.echo(f"quickstart finished in {elapsed:.0f} s; its backtest in the browser:")
    typer.echo(page)


def _lookahead(view):  # type: ignore[no-untyped-def]
    """The lookahead check of a finished audit operation."""
    from ktrdr_core.protocol import StrategyAuditResultView

    result = view.result
    check = (
        result.report.check("lookahead") if isinstance(result, StrategyAuditResultView) else None
    )
    if check is None:
        fail(f"audit {view.operation_id} completed without a lookahead check")
    return check


def _found(summary: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """Did the model find the planted effect: balanced accuracy against the baseline, the best
    rank of a membership that sees it in the explanation table, and the trades."""
    test = summary.get("test_metrics") or {}
    accuracy = float(test.get("balanced_accuracy") or 0.0)
    baseline = float((test.get("baseline") or {}).get("balanced_accuracy") or 0.0)
    rows = summary.get("explanations") or []
    ranks = [
        (int(row["rank"]), str(row["feature"]))
        for row in rows
        if str(row["feature"]).endswith(PLANTED_MEMBERSHIPS)
    ]
    rank, feature = min(ranks) if ranks else (None, None)
    trades = len(report.get("trades") or [])
    return {
        "balanced_accuracy": round(accuracy, 4),
        "baseline": round(baseline, 4),
        "points_above_baseline": round(100 * (accuracy - baseline), 1),
        "membership": feature,
        "membership_rank": rank,
        "features": len(rows),
        "trades": trades,
        "found": accuracy - baseline >= FOUND_MARGIN and trades > 0,
    }


def _show_found(found: dict[str, Any], planted: bool) -> None:
    what = "the planted effect" if planted else "an effect (none was planted)"
    verdict = "found" if found["found"] else "did not find"
    typer.echo(
        f"the model {verdict} {what}: balanced accuracy {found['balanced_accuracy']:.3f} "
        f"against {found['baseline']:.3f} for the baseline ({found['points_above_baseline']:+.1f} "
        f"points; found means ≥ {FOUND_MARGIN * 100:.0f} points and trades), "
        f"{found['trades']} trades"
        + (
            f", {found['membership']} ranks {found['membership_rank']} of {found['features']} "
            "in the explanation"
            if found["membership_rank"]
            else ""
        )
    )


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
