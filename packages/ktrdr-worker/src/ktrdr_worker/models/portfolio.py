"""Backtest a model trained on several symbols: one sleeve per symbol, summed into a portfolio.

:func:`backtest_portfolio` runs, for a bundle whose strategy lists several symbols:

1. **the window**: the bundle's test period (or the ``start``/``end`` asked for), which the
   split made common to every symbol. Before any work, every symbol's data is checked to cover
   it — enough warm-up bars before its start, bars up to its end — and every shortfall of
   every symbol is refused in one :class:`PortfolioCoverageError`;
2. **the sleeves**: the capital is split by ``backtest.weights`` (equal shares when left out)
   and each symbol is backtested by :func:`ktrdr_worker.models.backtest.simulate_symbol` with
   its sleeve's capital over the window: the very single-symbol backtest, report and all
   (trades, metrics, buy-and-hold, signal counts, no-trade reasons);
3. **the portfolio**: the sleeves' equity summed on the union of their bar times, each sleeve
   carried forward where its market has no bar (EURUSD trades 24/5, GOOG on exchange days)
   and holding its capital before its first bar. Sleeves are never rebalanced.

Annualisation of the portfolio's metrics, on the union calendar: the union's bar times are
handed to ``ktrdr_worker.calendars.resolve_calendar``, the one rule every backtest uses. When
every symbol's data names the same exchange, that exchange's sessions count the bars of a
year; otherwise the calendar is inferred from the union's bar times (so GOOG daily with
EURUSD hourly reads as a weekdays market: the union trades whenever either does).

Each symbol's contribution is its sleeve's profit over the whole capital; the contributions
add up to the portfolio's total return.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_core.bundles import BundleSource, read_manifest
from ktrdr_core.market_data.gaps import CLOSURE_SLACK
from ktrdr_core.reports import PortfolioReport, in_sample_parts
from ktrdr_core.timeframes import parse_timeframe
from ktrdr_worker.backtest.metrics import compute_metrics
from ktrdr_worker.calendars import TradingCalendar, resolve_calendar
from ktrdr_worker.models.backtest import (
    SERIES_NAME,
    ModelBacktestError,
    ModelBacktestOutcome,
    base_frame,
    finish_outcome,
    json_metrics,
    simulate_symbol,
    utc_timestamp,
)
from ktrdr_worker.models.series import backtest_series, portfolio_series, symbol_series

__all__ = [
    "PortfolioCoverageError",
    "backtest_portfolio",
    "sleeve_weights",
    "uncovered",
    "union_calendar",
]


class PortfolioCoverageError(ModelBacktestError):
    """Symbols whose data does not cover the shared window; ``problems`` lists each one."""

    def __init__(self, first: pd.Timestamp, last: pd.Timestamp, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(
            f"the symbols' data does not cover the shared window {first} … {last}:\n{lines}"
        )


def sleeve_weights(symbols: list[str], weights: Mapping[str, float] | None) -> dict[str, float]:
    """Each symbol's share of the capital: ``weights`` (every symbol named, summing to 1, as
    the strategy schema checks) or equal shares. Raises :class:`ModelBacktestError` when
    ``weights`` names other symbols."""
    if not weights:
        return {symbol: 1.0 / len(symbols) for symbol in symbols}
    if sorted(weights) != sorted(symbols):
        raise ModelBacktestError(
            f"backtest.weights names {', '.join(sorted(weights))}, the model trades "
            f"{', '.join(symbols)}: give one weight per symbol"
        )
    return {symbol: float(weights[symbol]) for symbol in symbols}


def uncovered(
    symbol: str,
    index: pd.DatetimeIndex,
    first: pd.Timestamp,
    last: pd.Timestamp,
    warmup_bars: int,
    timeframe: str,
) -> list[str]:
    """What of ``first`` … ``last`` (plus ``warmup_bars`` before it) one symbol's bars
    (``index``, open times, UTC) leave uncovered, each as a sentence naming the period.

    The end counts as covered when the last bar's close comes no more than
    ``ktrdr_core.market_data.gaps.CLOSURE_SLACK`` before it (weekends, holidays): the rule the
    backend refuses data by.
    """
    problems = []
    if len(index) == 0:
        return [f"{symbol}: no bars at all (the window is {first} … {last})"]
    ns = index.as_unit("ns").asi8
    before = int(np.searchsorted(ns, first.as_unit("ns").value, side="left"))
    if before < warmup_bars:
        gap = f"no bars from {first} to {index[0]}; " if index[0] > first else ""
        problems.append(
            f"{symbol}: {gap}{before} bars before {first}, the model needs {warmup_bars} of "
            f"warm-up: give data from {warmup_bars - before} bars before {index[0]} on"
        )
    bar = pd.Timedelta(seconds=parse_timeframe(timeframe).seconds)
    if index[-1] + bar + CLOSURE_SLACK < last:
        problems.append(f"{symbol}: no bars from {max(index[-1] + bar, first)} to {last}")
    if not problems and not ((index >= first) & (index <= last)).any():
        problems.append(f"{symbol}: no bar inside {first} … {last}")
    return problems


def union_calendar(
    union: pd.DatetimeIndex, timeframe: str, exchanges: list[str | None]
) -> TradingCalendar:
    """The calendar that annualises a portfolio, read from the union of its sleeves' bar
    times by ``resolve_calendar`` (the one rule): the exchange's sessions when every symbol
    names the same exchange, else the calendar the union's bars show."""
    named = set(exchanges)
    return resolve_calendar(union, timeframe, None, named.pop() if len(named) == 1 else None)


def _series(pairs: list[Any]) -> pd.Series:
    index = pd.DatetimeIndex([pd.Timestamp(t) for t, _ in pairs]).tz_convert(UTC)
    return pd.Series([float(v) for _, v in pairs], index=index, dtype=np.float64)


def _on_union(series: pd.Series, union: pd.DatetimeIndex, capital: float) -> pd.Series:
    # Carried forward where the sleeve's market has no bar; its capital before its first bar.
    return series.reindex(union).ffill().fillna(capital)


def _union_trades(reports: Mapping[str, Mapping[str, Any]], union: pd.DatetimeIndex) -> Any:
    rows = [dict(trade, symbol=symbol) for symbol, r in reports.items() for trade in r["trades"]]
    columns = ["net_pnl", "return", "bars_held", "commission", "entry_bar", "exit_bar"]
    if not rows:
        return pd.DataFrame({column: pd.Series(dtype=np.float64) for column in columns})
    frame = pd.DataFrame(rows)
    ns = union.asi8
    for end in ("entry", "exit"):
        times = pd.to_datetime(frame[f"{end}_time"], utc=True).dt.as_unit("ns")
        frame[f"{end}_bar"] = np.searchsorted(ns, times.astype("int64").to_numpy())
    return frame[columns]


def backtest_portfolio(
    bundle: BundleSource,
    data: Mapping[str, pd.DataFrame | Mapping[str, pd.DataFrame]],
    *,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    decisions: Mapping[str, Any] | None = None,
    backtest: Mapping[str, Any] | None = None,
    exchanges: Mapping[str, str | None] | None = None,
    out_dir: str | Path | None = None,
    inference: str = "auto",
) -> ModelBacktestOutcome:
    """Backtest a model bundle trained on several symbols, as a portfolio of sleeves.

    In: the bundle (path or bytes); ``data``: symbol → its OHLCV frame on the model's base
    timeframe (or timeframe → frame), with warm-up bars before the window, for every symbol the
    model was trained on; ``start``/``end``: the window (UTC; default: the bundle's test
    period); ``decisions``/``backtest``: overrides of the strategy's sections (``capital`` is
    the whole portfolio's, ``weights`` its split); ``exchanges``: symbol → the exchange its
    data trades on (annualises its sleeve, and the portfolio when all agree); ``out_dir``:
    where to write ``report.json`` and ``series.json``; ``inference``: as for
    ``backtest_model``.

    Out: :class:`ModelBacktestOutcome` whose report is a ``ktrdr-backtest-report/2``
    (:class:`ktrdr_core.reports.PortfolioReport`). Raises :class:`PortfolioCoverageError`,
    before any backtest, listing every symbol whose data misses part of the window.
    """
    raw = bundle if isinstance(bundle, bytes) else Path(bundle).read_bytes()
    manifest = read_manifest(raw)
    symbols = list(manifest.symbols)
    missing = [symbol for symbol in symbols if symbol not in data]
    if missing:
        raise ModelBacktestError(
            f"the model was trained on {', '.join(symbols)}: no data given for {', '.join(missing)}"
        )
    timeframe = manifest.timeframe
    test = manifest.splits["test"]
    period = "test" if start is None and end is None else "custom"
    first = utc_timestamp(start if start is not None else test.start)
    last = utc_timestamp(end if end is not None else test.end)
    if first is None or last is None or first > last:
        raise ModelBacktestError(f"the period {first} … {last} is empty")
    problems = [
        problem
        for symbol in symbols
        for problem in uncovered(
            symbol,
            base_frame(data[symbol], timeframe).index,
            first,
            last,
            manifest.warmup_bars,
            timeframe,
        )
    ]
    if problems:
        raise PortfolioCoverageError(first, last, problems)

    section = {**manifest.backtest, **(backtest or {})}
    capital = float(section["capital"])
    weights = sleeve_weights(symbols, section.get("weights"))
    exchanges = dict(exchanges or {})
    reports: dict[str, dict[str, Any]] = {}
    pages: dict[str, dict[str, Any]] = {}
    for symbol in symbols:
        run = simulate_symbol(
            raw,
            data[symbol],
            symbol=symbol,
            start=first,
            end=last,
            decisions=decisions,
            backtest={**(backtest or {}), "capital": capital * weights[symbol]},
            inference=inference,
            exchange=exchanges.get(symbol),
        )
        reports[symbol] = {**run.report, "charts": {}}  # the portfolio's series hold them
        pages[symbol] = symbol_series(run.report, run.ohlcv, run.equity, run.held)

    sleeves = {symbol: _series(report["equity"]) for symbol, report in reports.items()}
    union = sleeves[symbols[0]].index
    for series in sleeves.values():
        union = union.union(series.index)
    union = union.as_unit("ns")
    equity = sum(
        (_on_union(sleeves[s], union, capital * weights[s]) for s in symbols),
        start=pd.Series(0.0, index=union),
    )
    # Buy-and-hold per sleeve: the sleeve's capital × close / first close (the one definition).
    held_sleeves = {}
    for symbol in symbols:
        close = base_frame(data[symbol], timeframe)["close"].reindex(sleeves[symbol].index)
        held_sleeves[symbol] = capital * weights[symbol] * close / float(close.iloc[0])
    held = sum(
        (_on_union(held_sleeves[s], union, capital * weights[s]) for s in symbols),
        start=pd.Series(0.0, index=union),
    )
    calendar = union_calendar(union, timeframe, [exchanges.get(symbol) for symbol in symbols])
    trades = _union_trades(reports, union)
    metrics = compute_metrics(
        index=union,
        equity=equity.to_numpy(dtype=np.float64),
        close=held.to_numpy(dtype=np.float64),
        trades=trades,
        calendar=calendar,
        capital=capital,
    )
    held_metrics = compute_metrics(
        index=union,
        equity=held.to_numpy(dtype=np.float64),
        close=held.to_numpy(dtype=np.float64),
        trades=trades.iloc[:0],
        calendar=calendar,
        capital=capital,
    )
    peak = equity.cummax()
    drawdown = (1.0 - equity / peak).where(peak > 0, 0.0)

    def pairs(series: pd.Series) -> list[tuple[str, float]]:
        return [(t.isoformat(), float(v)) for t, v in series.items()]

    document = PortfolioReport.model_validate(
        {
            "created_at": datetime.now(UTC).isoformat(),
            "strategy_name": manifest.strategy.name,
            "strategy_hash": manifest.strategy.hash,
            "bundle_sha256": hashlib.sha256(raw).hexdigest(),
            "timeframe": timeframe,
            "start": union[0].isoformat(),
            "end": union[-1].isoformat(),
            "bars": len(union),
            "period": period,
            "in_sample": in_sample_parts(
                manifest.splits, union[0].to_pydatetime(), union[-1].to_pydatetime()
            ),
            "inference": reports[symbols[0]]["inference"],
            "portfolio": {
                "capital": capital,
                "weights": weights,
                "calendar": {k: v for k, v in asdict(calendar).items() if k != "inferred"},
                "metrics": json_metrics(metrics),
                "buy_and_hold": json_metrics(held_metrics),
                "contributions": {
                    symbol: (float(sleeves[symbol].iloc[-1]) - capital * weights[symbol]) / capital
                    for symbol in symbols
                },
                "equity": pairs(equity),
                "drawdown": pairs(drawdown),
            },
            "symbols": reports,
            "charts": {"series": SERIES_NAME},
        }
    ).model_dump(mode="json", by_alias=True)
    drawn = backtest_series(document, pages, portfolio_series(document, equity, held))
    return finish_outcome(document, drawn, out_dir)
