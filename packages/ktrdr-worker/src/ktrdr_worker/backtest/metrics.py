"""Performance metrics of a backtest, with their definitions.

All returns and rates are fractions (0.12 = 12 %), money is in quote currency, durations are in
bars or days. Undefined values (no trades, zero volatility, no losing trade) are NaN, or
infinite where the ratio truly is (a profit factor with no losing trade).

Notation: ``E_t`` is equity at bar t's close (``E_0`` is the capital: nothing can fill before
bar 1's open), ``r_t = E_t / E_{t−1} − 1`` the per-bar return (t = 1 … n−1), ``N`` the bars per
year of the data's timeframe and calendar (``ktrdr_worker.calendars``), ``rf`` the annual
risk-free rate and ``rf_bar = (1 + rf)^(1/N) − 1`` its per-bar equivalent.

Equity metrics
    total_return
        ``E_{n−1} / capital − 1``.
    cagr
        ``(E_{n−1} / capital)^(1 / years) − 1`` with ``years`` = (last bar time − first bar
        time) / 365.25 days: the span the equity curve covers (−1 when equity ends <= 0).
    annual_volatility
        ``std(r, ddof=1) × √N``.
    sharpe
        ``mean(r − rf_bar) / std(r, ddof=1) × √N``.
    sortino
        ``mean(r − rf_bar) / √(mean(min(r − rf_bar, 0)²)) × √N`` (downside deviation over
        all bars, target rf_bar).
    max_drawdown
        ``max_t (1 − E_t / max_{s<=t} E_s)``, a positive fraction (0.25 = 25 % below the peak).
    max_drawdown_duration_bars, max_drawdown_duration_days
        the longest stretch from a peak to the bar where equity first regains it (or to the
        last bar if it never does), in bars and in calendar days between those bars' times
        (the longest of each; backtesting.py's "Max. Drawdown Duration" is the same days
        figure, except that it ignores a drawdown starting on the very last bar).
    calmar
        ``cagr / max_drawdown``.
    buy_and_hold_return
        ``close_{n−1} / close_0 − 1``: holding the asset from the first bar's close to the
        last bar's, without costs (backtesting.py's "Buy & Hold Return"). The one definition
        of buy-and-hold: reports compare against the equity of :func:`buy_and_hold_equity`,
        whose total return is this number.
    exposure
        share of bars during which a position was open at any moment: each trade covers its
        entry bar through its exit bar, both included (a flip covers its bar once). This is
        backtesting.py's "Exposure Time".

Trade metrics (over closed round trips, P&L net of commission)
    num_trades, win_rate
        number of trades; share with ``net_pnl > 0``.
    profit_factor
        sum of winning ``net_pnl`` / |sum of losing ``net_pnl``| (money-weighted).
    return_profit_factor
        sum of winning trade returns / |sum of losing trade returns| (each trade weighted
        equally whatever its size; backtesting.py's "Profit Factor").
    avg_win, avg_loss
        mean ``net_pnl`` of winning / losing trades (avg_loss is negative).
    largest_win, largest_loss
        largest ``net_pnl`` among winners; most negative among losers.
    best_trade_return, worst_trade_return
        largest and smallest trade ``return`` (net P&L / entry value).
    avg_bars_held
        mean bars a position was held through their closes.
    total_commission
        commission paid over all trades.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_worker.calendars import TradingCalendar

__all__ = ["buy_and_hold_equity", "compute_metrics"]

_NS_PER_DAY = 86_400 * 1_000_000_000


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0.0:
        if numerator == 0.0 or math.isnan(numerator):
            return math.nan
        return math.copysign(math.inf, numerator)
    return numerator / denominator


def _drawdown(equity: np.ndarray, ns: np.ndarray) -> tuple[float, int, float]:
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        max_dd = float(1.0 - np.nanmin(equity / peak))
    at_peak = np.flatnonzero(equity == peak)
    last_under = at_peak[-1] != len(equity) - 1
    if last_under:
        # Still under water at the end: the stretch runs to the last bar.
        at_peak = np.append(at_peak, len(equity) - 1)
    gaps = np.diff(at_peak)
    # A stretch between two peaks holds water when they are not adjacent; the stretch to the
    # appended last bar does whenever that bar is under water (even if only it is).
    under = gaps > 1
    if last_under:
        under[-1] = True
    if not under.any():
        return max_dd, 0, 0.0
    bars = int(gaps[under].max())
    span_ns = (ns[at_peak[1:]] - ns[at_peak[:-1]])[under]
    return max_dd, bars, float(span_ns.max()) / _NS_PER_DAY


def _exposure(entry_bar: np.ndarray, exit_bar: np.ndarray, n_bars: int) -> float:
    if len(entry_bar) == 0:
        return 0.0
    covered = int(np.sum(exit_bar - entry_bar + 1))
    # A flip exits and enters at the same bar: count that bar once.
    shared = int(np.sum(entry_bar[1:] == exit_bar[:-1]))
    return (covered - shared) / n_bars


def buy_and_hold_equity(close: np.ndarray, capital: float) -> np.ndarray:
    """Equity at each bar's close (quote currency) of ``capital`` put into the asset at the
    first bar's close, without costs: ``capital · close_t / close_0``."""
    close = np.asarray(close, dtype=np.float64)
    return capital * close / close[0]


def compute_metrics(
    *,
    index: pd.DatetimeIndex,
    equity: np.ndarray,
    close: np.ndarray,
    trades: pd.DataFrame,
    calendar: TradingCalendar,
    capital: float,
    risk_free_rate: float = 0.0,
) -> dict[str, Any]:
    """All metrics of one backtest, as defined in this module's docstring.

    Args:
        index: bar open times (UTC).
        equity: equity at each bar's close (quote currency), same length as ``index``.
        close: close prices, same length.
        trades: the engine's trades frame (``net_pnl``, ``return``, ``bars_held``,
            ``commission``, ``entry_bar``, ``exit_bar`` columns).
        calendar: annualisation basis (``bars_per_year``).
        capital: starting equity.
        risk_free_rate: annual risk-free rate, a fraction.

    Returns a JSON-ready dict: the metrics plus ``start``, ``end`` (ISO times), ``bars``,
    ``timeframe``, ``calendar``, ``bars_per_year``, ``initial_capital``, ``final_equity``.
    """
    n = len(equity)
    ns = index.as_unit("ns").asi8
    per_year = calendar.bars_per_year
    final = float(equity[-1])

    with np.errstate(divide="ignore", invalid="ignore"):
        excess = equity[1:] / equity[:-1]
    rf_bar = (1.0 + risk_free_rate) ** (1.0 / per_year) - 1.0
    # In place, to spare passes over a million bars: excess = r − rf_bar.
    excess -= 1.0 + rf_bar
    n_returns = len(excess)
    mean_excess = float(excess.mean())
    # std(r − rf_bar) = std(r). No BLAS dot here: it threads, and loses on a busy machine.
    vol = float(np.std(excess, ddof=1)) if n_returns > 1 else math.nan
    np.minimum(excess, 0.0, out=excess)
    np.square(excess, out=excess)
    downside = math.sqrt(float(excess.sum()) / n_returns)
    root_n = math.sqrt(per_year)

    years = (ns[-1] - ns[0]) / _NS_PER_DAY / 365.25
    growth = final / capital
    if years <= 0:
        cagr = math.nan
    elif growth <= 0:
        cagr = -1.0
    else:
        cagr = growth ** (1.0 / years) - 1.0
    max_dd, dd_bars, dd_days = _drawdown(equity, ns)

    net = trades["net_pnl"].to_numpy()
    rets = trades["return"].to_numpy()
    wins = net[net > 0]
    losses = net[net < 0]
    n_trades = len(net)

    def mean_or_nan(values: np.ndarray) -> float:
        return float(np.mean(values)) if len(values) else math.nan

    return {
        "start": index[0].isoformat(),
        "end": index[-1].isoformat(),
        "bars": n,
        "timeframe": calendar.timeframe,
        "calendar": calendar.calendar,
        "bars_per_year": float(per_year),
        "initial_capital": float(capital),
        "final_equity": final,
        "total_return": growth - 1.0,
        "cagr": cagr,
        "annual_volatility": vol * root_n,
        "sharpe": _ratio(mean_excess, vol) * root_n,
        "sortino": _ratio(mean_excess, downside) * root_n,
        "max_drawdown": max_dd,
        "max_drawdown_duration_bars": dd_bars,
        "max_drawdown_duration_days": dd_days,
        "calmar": _ratio(cagr, max_dd) if max_dd > 0 else math.nan,
        "num_trades": n_trades,
        "win_rate": len(wins) / n_trades if n_trades else math.nan,
        "profit_factor": (
            _ratio(float(wins.sum()), float(-losses.sum())) if n_trades else math.nan
        ),
        "return_profit_factor": (
            _ratio(float(rets[rets > 0].sum()), float(-rets[rets < 0].sum()))
            if n_trades
            else math.nan
        ),
        "avg_win": mean_or_nan(wins),
        "avg_loss": mean_or_nan(losses),
        "largest_win": float(wins.max()) if len(wins) else math.nan,
        "largest_loss": float(losses.min()) if len(losses) else math.nan,
        "best_trade_return": float(rets.max()) if n_trades else math.nan,
        "worst_trade_return": float(rets.min()) if n_trades else math.nan,
        "avg_bars_held": mean_or_nan(trades["bars_held"].to_numpy()),
        "exposure": _exposure(trades["entry_bar"].to_numpy(), trades["exit_bar"].to_numpy(), n),
        "total_commission": float(trades["commission"].sum()),
        "buy_and_hold_return": float(buy_and_hold_equity(close, capital)[-1] / capital - 1.0),
    }
