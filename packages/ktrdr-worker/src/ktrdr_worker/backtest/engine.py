"""The backtest engine: target positions in, trades, equity curve and metrics out.

Vectorised over the bars: only the change points of the target series are visited, and with
fractional units not even those in Python (each trade multiplies equity by a factor that
depends on prices alone, so equity before every trade is one cumulative product).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ktrdr_worker.backtest.config import BacktestConfig
from ktrdr_worker.backtest.metrics import compute_metrics
from ktrdr_worker.backtest.result import BacktestResult
from ktrdr_worker.backtest.validation import validate_inputs
from ktrdr_worker.calendars import resolve_calendar

__all__ = ["run"]


@dataclass(frozen=True)
class _Trades:
    """Per-trade arrays, in trade order (one element per trade actually opened)."""

    entry_bar: np.ndarray  # int64, bar whose open filled the entry
    exit_bar: np.ndarray  # int64, bar whose open (or, at the end of data, close) filled the exit
    end_bar: np.ndarray  # int64, first bar no longer held through its close
    side: np.ndarray  # float64, +1 long / -1 short
    units: np.ndarray
    entry_price: np.ndarray  # fill prices, slippage included
    exit_price: np.ndarray
    equity_before: np.ndarray  # equity just before the entry fill
    equity_after: np.ndarray  # equity just after the exit fill
    entry_commission: np.ndarray
    exit_commission: np.ndarray
    gross_pnl: np.ndarray
    net_pnl: np.ndarray
    end_of_data: bool  # the last trade was closed at the last bar's close


def _change_points(target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill bars of every target change, with the old and new target at each.

    A target set at bar t's close fills at bar t+1's open, so the last bar's target can never
    fill and is ignored; the position before the first bar is flat.
    """
    decided = target[:-1]
    before = np.empty_like(decided)
    before[0] = 0
    before[1:] = decided[:-1]
    changed = np.flatnonzero(decided != before)
    return changed + 1, before[changed], decided[changed]


def _fractional_sizing(
    side: np.ndarray,
    entry_price: np.ndarray,
    exit_price: np.ndarray,
    config: BacktestConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Units, equity before and after each trade with fractional units (no Python loop).

    units = position_size × equity_before / (entry_price × (1 + commission)), so the position
    and its entry commission cost exactly ``position_size`` of equity. Equity after the trade
    is then equity_before × growth, with growth a function of prices only, and equity before
    every trade is a cumulative product. Returns (units, before, after, kept) where ``kept``
    is the number of trades taken: none after one that leaves equity <= 0 (ruin).
    """
    c = config.commission
    units_per_equity = config.position_size / (entry_price * (1.0 + c))
    growth = 1.0 + units_per_equity * (
        side * (exit_price - entry_price) - c * (entry_price + exit_price)
    )
    ruined = np.flatnonzero(growth <= 0.0)
    kept = len(growth) if len(ruined) == 0 else int(ruined[0]) + 1
    after = config.capital * np.cumprod(growth[:kept])
    before = np.empty_like(after)
    if kept:
        before[0] = config.capital
        before[1:] = after[:-1]
    return units_per_equity[:kept] * before, before, after, kept


def _whole_unit_sizing(
    side: np.ndarray,
    open_at_entry: np.ndarray,
    entry_price: np.ndarray,
    exit_price: np.ndarray,
    config: BacktestConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Whole units sized and settled exactly as backtesting.py 0.6.6 does (a loop over trades).

    units = floor(equity × position_size / (entry_price + open × commission)): the commission
    in the sizing is on the raw open, as backtesting.py's ``_Broker._process_orders`` computes
    it, and the float operations are written in its order so that floors agree. Cash is then
    debited the entry commission and credited the gross P&L less the exit commission, as its
    ``_open_trade`` / ``_close_trade`` do. A trade whose units floor to 0 is not taken; none is
    taken once equity is <= 0. Returns (taken trade indices, units, before, after).
    """
    c = config.commission
    ps = config.position_size
    cash = float(config.capital)
    taken: list[int] = []
    units_out: list[float] = []
    before_out: list[float] = []
    after_out: list[float] = []
    rows = zip(
        side.tolist(),
        open_at_entry.tolist(),
        entry_price.tolist(),
        exit_price.tolist(),
        strict=True,
    )
    for k, (s, open_price, pe, px) in enumerate(rows):
        if cash <= 0.0:
            break
        # backtesting.py: adjusted_price + commission(size_fraction, price) / |size_fraction|
        per_unit = pe + (ps * open_price * c) / ps
        units = float(int((cash * ps) // per_unit))
        if units < 1.0:
            continue
        before_out.append(cash)
        cash -= units * pe * c
        cash += (s * units) * (px - pe) - units * px * c
        taken.append(k)
        units_out.append(units)
        after_out.append(cash)
    return (
        np.asarray(taken, dtype=np.int64),
        np.asarray(units_out, dtype=np.float64),
        np.asarray(before_out, dtype=np.float64),
        np.asarray(after_out, dtype=np.float64),
    )


def _simulate(
    open_: np.ndarray, close: np.ndarray, target: np.ndarray, config: BacktestConfig
) -> _Trades:
    n = len(close)
    fill, old, new = _change_points(target)
    opens = new != 0
    entry_bar = fill[opens]
    side = new[opens].astype(np.float64)
    exit_fills = fill[old != 0]
    n_trades = len(entry_bar)
    # Trades never overlap: the k-th exit closes the k-th entry; an entry without an exit is
    # the position still open at the end of the data.
    end_of_data = len(exit_fills) < n_trades
    exit_bar = np.empty(n_trades, dtype=np.int64)
    exit_bar[: len(exit_fills)] = exit_fills
    end_bar = exit_bar.copy()
    exit_raw = np.empty(n_trades, dtype=np.float64)
    exit_raw[: len(exit_fills)] = open_[exit_fills]
    if end_of_data:
        exit_bar[-1] = n - 1
        end_bar[-1] = n
        exit_raw[-1] = close[-1]

    slip = config.slippage
    open_at_entry = open_[entry_bar]
    # Slippage moves every fill against the trader: buys higher, sells lower.
    entry_price = open_at_entry * (1.0 + side * slip)
    exit_price = exit_raw * (1.0 - side * slip)

    if config.fractional:
        units, before, after, kept = _fractional_sizing(side, entry_price, exit_price, config)
        taken = slice(0, kept)
    else:
        taken, units, before, after = _whole_unit_sizing(
            side, open_at_entry, entry_price, exit_price, config
        )
    entry_bar, exit_bar, end_bar = entry_bar[taken], exit_bar[taken], end_bar[taken]
    side, entry_price, exit_price = side[taken], entry_price[taken], exit_price[taken]
    end_of_data = bool(len(end_bar)) and int(end_bar[-1]) == n

    c = config.commission
    entry_commission = units * entry_price * c
    exit_commission = units * exit_price * c
    gross = side * units * (exit_price - entry_price)
    return _Trades(
        entry_bar=entry_bar,
        exit_bar=exit_bar,
        end_bar=end_bar,
        side=side,
        units=units,
        entry_price=entry_price,
        exit_price=exit_price,
        equity_before=before,
        equity_after=after,
        entry_commission=entry_commission,
        exit_commission=exit_commission,
        gross_pnl=gross,
        net_pnl=gross - entry_commission - exit_commission,
        end_of_data=end_of_data,
    )


def _mark_to_market(
    trades: _Trades, close: np.ndarray, capital: float
) -> tuple[np.ndarray, np.ndarray]:
    """Equity at every bar's close and the side held through it, without a loop over bars.

    The bars split into alternating flat and held segments: flat before trade 0, held by
    trade 0, flat after it, and so on. On every segment equity is affine in the close:
    equity = intercept + slope × close, with slope = side × units while a trade is held and
    intercept = (equity before − entry commission) − slope × entry price; flat segments carry
    the equity left by the previous trade with slope 0. Two ``np.repeat`` calls spread the
    segment coefficients over the bars.
    """
    n = len(close)
    m = len(trades.entry_bar)
    bounds = np.empty(2 * m + 2, dtype=np.int64)
    bounds[0] = 0
    bounds[1:-1:2] = trades.entry_bar
    bounds[2:-1:2] = trades.end_bar
    bounds[-1] = n
    lengths = np.diff(bounds)
    slope = np.zeros(2 * m + 1)
    intercept = np.empty(2 * m + 1)
    side = np.zeros(2 * m + 1, dtype=np.int8)
    held_slope = trades.side * trades.units
    slope[1::2] = held_slope
    side[1::2] = trades.side
    intercept[0] = capital
    intercept[1::2] = (
        trades.equity_before - trades.entry_commission - held_slope * trades.entry_price
    )
    intercept[2::2] = trades.equity_after
    equity = np.repeat(intercept, lengths)
    equity += np.repeat(slope, lengths) * close
    if trades.end_of_data:
        # The open position is closed at the last close: the last bar shows settled equity.
        equity[-1] = trades.equity_after[-1]
    return equity, np.repeat(side, lengths)


def _trades_frame(trades: _Trades, index: pd.DatetimeIndex) -> pd.DataFrame:
    n_trades = len(trades.entry_bar)
    reason = np.full(n_trades, "signal", dtype=object)
    if trades.end_of_data:
        reason[-1] = "end_of_data"
    with np.errstate(divide="ignore", invalid="ignore"):
        trade_return = trades.net_pnl / (trades.units * trades.entry_price)
    return pd.DataFrame(
        {
            "entry_time": index[trades.entry_bar],
            "exit_time": index[trades.exit_bar],
            "side": np.where(trades.side > 0, "long", "short").astype(object),
            "units": trades.units,
            "entry_price": trades.entry_price,
            "exit_price": trades.exit_price,
            "gross_pnl": trades.gross_pnl,
            "commission": trades.entry_commission + trades.exit_commission,
            "net_pnl": trades.net_pnl,
            "return": trade_return,
            "bars_held": trades.end_bar - trades.entry_bar,
            "exit_reason": reason,
            "entry_bar": trades.entry_bar,
            "exit_bar": trades.exit_bar,
        }
    )


def run(ohlcv: pd.DataFrame, positions: pd.Series, config: BacktestConfig) -> BacktestResult:
    """Backtest a series of target positions on OHLCV bars.

    Args:
        ohlcv: canonical bars: UTC DatetimeIndex of bar open times (strictly increasing, >= 2
            bars), float columns ``open, high, low, close`` (``volume`` unused), no NaN.
        positions: target position decided at each bar's close, on exactly ``ohlcv``'s index:
            1 long, 0 flat, -1 short (only with ``config.allow_short``).
        config: capital, costs, sizing and calendar (``BacktestConfig``).

    Returns:
        ``BacktestResult`` with ``trades`` (one row per round trip), ``equity`` (marked to
        market at every bar's close, in quote currency), ``positions`` (side held through each
        bar: -1, 0, 1), ``metrics`` (see ``ktrdr_worker.backtest.metrics``) and ``write()``.

    Execution:
        - A change of target at bar t fills at bar t+1's open; a change at the last bar cannot
          fill and is ignored. A change from long to short (or back) closes, then opens, at
          the same open.
        - Fills move against the trader by ``slippage`` (a fraction of price); ``commission``
          (a fraction of traded value) is charged on the entry and the exit fill.
        - A position still open after the last bar is closed at the last bar's close (slippage
          and commission included) with exit reason ``"end_of_data"``.
        - Sizing, with ``fractional=True`` (default): units = position_size × equity /
          (entry_price × (1 + commission)), so the position plus its entry commission cost
          ``position_size`` of equity and ``position_size=1`` never borrows.
        - Shorts receive the sale proceeds and are marked to market at each close; there is
          no margin model, borrow fee or margin call. If a trade leaves equity <= 0 the
          account is ruined: no further trade is taken and equity stays where it fell.

    Whole units (``fractional=False``) reproduce backtesting.py 0.6.6 driven with the same
    signals (``Backtest(..., commission=c, finalize_trades=True)``, ``buy/sell(size=
    position_size)`` after closing the position, on change points): units are
    ``floor(equity × position_size / (entry_price + open × commission))`` and a trade whose
    units floor to 0 is skipped. Trades, equity and the metrics both compute agree (see
    tests/worker/backtest/test_cross_check.py). Differences from the default mode and from
    backtesting.py:

        - default mode: fractional units, and the sizing commission is on the fill price
          rather than the raw open (equal when slippage is 0);
        - backtesting.py's ``spread`` adjusts entry prices only; our ``slippage`` adjusts
          entries and exits (the cross-check uses slippage 0);
        - backtesting.py closes positions left at the end at the last bar's *open*; we close
          them at the last bar's *close* (the cross-check windows end on a bar whose open
          equals its close);
        - backtesting.py never acts on the first bar's target (its strategy starts at bar 1);
          we fill bar 0's target at bar 1's open;
        - backtesting.py stops when marked-to-market equity reaches 0 within a trade; we
          check for ruin when trades close.

    Raises:
        ValueError: bad inputs (see ``validate_inputs``) or config, before any computation.
    """
    inputs = validate_inputs(ohlcv, positions, config)
    calendar = resolve_calendar(inputs.index, config.timeframe, config.calendar, config.exchange)
    if config.bars_per_year is not None:
        calendar = replace(calendar, bars_per_year=float(config.bars_per_year))

    trades = _simulate(inputs.open, inputs.close, inputs.target, config)
    equity, side_held = _mark_to_market(trades, inputs.close, config.capital)
    trades_df = _trades_frame(trades, inputs.index)
    metrics = compute_metrics(
        index=inputs.index,
        equity=equity,
        close=inputs.close,
        trades=trades_df,
        calendar=calendar,
        capital=config.capital,
        risk_free_rate=config.risk_free_rate,
    )
    return BacktestResult(
        trades=trades_df,
        equity=pd.Series(equity, index=inputs.index, name="equity"),
        positions=pd.Series(side_held, index=inputs.index, name="position"),
        metrics=metrics,
        config=config,
        calendar=calendar,
    )
