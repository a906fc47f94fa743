"""Rendering training results and backtest reports for a person (JSON goes out as it is)."""

from __future__ import annotations

from typing import Any

import typer

from ktrdr_cli.context import table

# The metrics a person reads, in this order (the JSON output carries every key).
HEADLINE = (
    "total_return", "cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown",
    "max_drawdown_duration_bars", "calmar", "num_trades", "win_rate", "profit_factor",
    "avg_bars_held", "exposure", "total_commission", "final_equity",
)  # fmt: skip
# The unit of each metric, so that every row of a table reads in one unit.
FRACTIONS = {
    "total_return", "cagr", "max_drawdown", "win_rate", "exposure", "annual_volatility",
    "buy_and_hold_return", "best_trade_return", "worst_trade_return", "accuracy",
    "balanced_accuracy",
}  # fmt: skip
MONEY = {
    "total_commission", "final_equity", "initial_capital", "avg_win", "avg_loss",
    "largest_win", "largest_loss",
}  # fmt: skip
COUNTS = {"num_trades", "max_drawdown_duration_bars", "bars", "trades"}


def number(key: str, value: Any) -> str:
    """``value`` in ``key``'s unit: fractions as percent, money with two decimals, counts
    whole (JSON may carry them as floats), anything else with three decimals."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if key in FRACTIONS:
        return f"{value * 100:.2f}%"
    if key in MONEY:
        return f"{value:,.2f}"
    if key in COUNTS:
        return f"{value:.0f}"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


def difference(key: str, delta: float | None) -> str:
    """``b − a`` in the row's unit: percentage points for fractions."""
    if delta is None:
        return "-"
    if key in FRACTIONS:
        return f"{delta * 100:+.2f} pp"
    if key in MONEY:
        return f"{delta:+,.2f}"
    if key in COUNTS:
        return f"{delta:+.0f}"
    return f"{delta:+.3f}"


def period_text(start: Any, end: Any) -> str:
    """``2024-01-01 → 2024-03-01`` from ISO times (the date is what a reader compares)."""
    if start is None and end is None:
        return "-"
    return f"{str(start or '?')[:10]} → {str(end or '?')[:10]}"


def metric_value(entry: Any) -> Any:
    """Metrics may be plain numbers or {value, description} documents."""
    return entry.get("value") if isinstance(entry, dict) else entry


def ordered_keys(metrics: dict[str, Any]) -> list[str]:
    return [k for k in HEADLINE if k in metrics]


def show_training(result: dict[str, Any]) -> None:
    """Test metrics beside the majority baseline, then the explanation table."""
    test = result.get("test_metrics") or {}
    baseline = test.get("baseline") or {}
    typer.echo(
        f"model trained on {result.get('device_name', result.get('device'))}: "
        f"{result.get('epochs_run')} epochs (best {result.get('best_epoch')})"
    )
    table(
        [
            ["accuracy", f"{test.get('accuracy', 0):.3f}", f"{baseline.get('accuracy', 0):.3f}"],
            [
                "balanced accuracy",
                f"{test.get('balanced_accuracy', 0):.3f}",
                f"{baseline.get('balanced_accuracy', 0):.3f}",
            ],
        ],
        ["test set", "model", f"baseline (always {baseline.get('class', '?')})"],
    )
    per_class = test.get("per_class") or {}
    if per_class:
        table(
            [
                [
                    name,
                    f"{m['precision']:.3f}",
                    f"{m['recall']:.3f}",
                    f"{m['f1']:.3f}",
                    str(m["support"]),
                ]
                for name, m in per_class.items()
            ],
            ["class", "precision", "recall", "f1", "support"],
        )
    rows = result.get("explanations") or []
    if rows:
        typer.echo("what the model listens to:")
        table(
            [[str(r["rank"]), r["text"], f"{r['importance']:.4f}"] for r in rows[:10]],
            ["#", "membership → class", "importance"],
        )


def show_backtest(report: dict[str, Any], page: str | None, symbol: str | None = None) -> None:
    """A single symbol's report: metrics beside buy-and-hold, trades, signal counts. A
    portfolio's: the portfolio table, then one table per symbol (only ``symbol``'s when
    given; a symbol not in the report exits 1 naming those that are). Then its page's URL."""
    sections = report.get("symbols")
    if not isinstance(sections, dict):
        if symbol is not None and symbol.upper() != report.get("symbol"):
            _no_symbol(symbol, [str(report.get("symbol"))])
        _show_symbol(report, f"on {report.get('symbol')}")
    else:
        if symbol is not None:
            wanted = symbol.upper()
            if wanted not in sections:
                _no_symbol(symbol, list(sections))
            _show_symbol(sections[wanted], f"on {wanted}, a sleeve of a portfolio")
        else:
            _show_portfolio(report)
            for name, section in sections.items():
                typer.echo("")
                _show_symbol(section, f"on {name}, its sleeve")
    if page is not None:
        typer.echo(f"page: {page}")


def _no_symbol(symbol: str, known: list[str]) -> None:
    typer.echo(
        f"error: this backtest has no symbol {symbol!r}: it covers {', '.join(known)}", err=True
    )
    raise typer.Exit(1)


def _header(report: dict[str, Any], what: str) -> None:
    typer.echo(
        f"backtest {report.get('strategy_name')} {what} "
        f"{report.get('timeframe')}: {report.get('start')} → {report.get('end')} "
        f"({report.get('bars')} bars, {report.get('period')} period"
        + (f", {report['inference']} inference" if report.get("inference") else "")
        + ")"
    )
    if report.get("in_sample"):
        typer.echo(
            f"IN SAMPLE: these bars overlap the model's {' and '.join(report['in_sample'])} "
            "data; the numbers look better than they will on data it never saw"
        )


def _metrics_table(metrics: dict[str, Any], hold: dict[str, Any], what: str) -> None:
    table(
        [
            [k, number(k, metric_value(metrics[k])), number(k, metric_value(hold.get(k)))]
            for k in ordered_keys(metrics)
        ],
        ["metric", what, "buy & hold"],
    )


def _show_portfolio(report: dict[str, Any]) -> None:
    portfolio = report["portfolio"]
    _header(report, f"as a portfolio of {', '.join(report['symbols'])}")
    _metrics_table(portfolio.get("metrics") or {}, portfolio.get("buy_and_hold") or {}, "portfolio")
    calendar = portfolio.get("calendar") or {}
    typer.echo(
        f"sleeves, never rebalanced; equity summed on the union of their bars, annualised on "
        f"that union's calendar ({calendar.get('calendar')}, "
        f"{number('bars_per_year', calendar.get('bars_per_year'))} bars a year"
        + (f", {calendar['exchange']} sessions" if calendar.get("exchange") else "")
        + ")"
    )
    table(
        [
            [
                name,
                f"{weight * 100:.1f}%",
                number("final_equity", portfolio["capital"] * weight),
                number("total_return", portfolio["contributions"].get(name)),
                number(
                    "total_return",
                    metric_value(
                        (report["symbols"][name].get("metrics") or {}).get("total_return")
                    ),
                ),
                number("num_trades", len(report["symbols"][name].get("trades") or [])),
            ]
            for name, weight in portfolio["weights"].items()
        ],
        ["symbol", "weight", "capital", "contribution", "sleeve return", "trades"],
    )
    typer.echo(
        "contribution: the sleeve's profit over the whole capital; they add up to total_return"
    )


def _show_symbol(report: dict[str, Any], what: str) -> None:
    _header(report, what)
    _metrics_table(report.get("metrics") or {}, report.get("buy_and_hold") or {}, "strategy")
    typer.echo("buy & hold: the asset held from the first bar's close to the last bar's, no costs")
    counts = report.get("signal_counts") or {}
    if counts:
        typer.echo("signals: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    trades = report.get("trades") or []
    if trades:
        wins = sum(1 for t in trades if t["net_pnl"] > 0)
        typer.echo(
            f"trades: {len(trades)} ({wins} winners); last: {trades[-1]['side']} "
            f"{trades[-1]['entry_time']} → {trades[-1]['exit_time']}"
        )
    if report.get("zero_trade_reason"):
        typer.echo(f"no trades: {report['zero_trade_reason']}")
