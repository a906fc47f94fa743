"""Execution semantics of the backtest engine, on bars small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_worker.backtest import BacktestConfig, run
from tests.support.bars import make_bars, random_walk
from tests.support.targets import random_targets

OPENS = [10.0, 11.0, 12.0, 13.0, 14.0]
CLOSES = [10.5, 11.5, 12.5, 13.5, 14.5]


def targets(frame: pd.DataFrame, values: list[int]) -> pd.Series:
    return pd.Series(values, index=frame.index)


def test_a_change_at_the_close_fills_at_the_next_open():
    bars = make_bars(OPENS, CLOSES)
    result = run(bars, targets(bars, [1, 1, 0, 0, 0]), BacktestConfig(capital=1000.0))
    (trade,) = result.trades.itertuples()
    units = 1000.0 / 11.0
    assert trade.entry_time == bars.index[1]
    assert trade.exit_time == bars.index[3]
    assert trade.entry_price == 11.0
    assert trade.exit_price == 13.0
    assert trade.units == pytest.approx(units)
    assert trade.net_pnl == pytest.approx(units * 2.0)
    assert trade.bars_held == 2
    assert trade.exit_reason == "signal"
    # Marked at every close while held, settled at the exit open afterwards.
    expected = [1000.0, 1000 + units * 0.5, 1000 + units * 1.5, 1000 + units * 2, 1000 + units * 2]
    np.testing.assert_allclose(result.equity.to_numpy(), expected)
    assert result.positions.tolist() == [0, 1, 1, 0, 0]


def test_commission_and_slippage_move_both_fills_against_the_trader():
    bars = make_bars(OPENS, CLOSES)
    config = BacktestConfig(capital=1000.0, commission=0.01, slippage=0.002, position_size=0.5)
    trade = run(bars, targets(bars, [1, 1, 0, 0, 0]), config).trades.iloc[0]
    entry, exit_ = 11.0 * 1.002, 13.0 * 0.998
    units = 0.5 * 1000.0 / (entry * 1.01)
    assert trade["entry_price"] == pytest.approx(entry)
    assert trade["exit_price"] == pytest.approx(exit_)
    assert trade["units"] == pytest.approx(units)
    assert trade["gross_pnl"] == pytest.approx(units * (exit_ - entry))
    assert trade["commission"] == pytest.approx(0.01 * units * (entry + exit_))
    assert trade["net_pnl"] == pytest.approx(
        units * (exit_ - entry) - 0.01 * units * (entry + exit_)
    )
    assert trade["return"] == pytest.approx(trade["net_pnl"] / (units * entry))


def test_a_short_sells_low_buys_back_high_and_gains_when_price_falls():
    bars = make_bars([20.0, 18.0, 16.0, 14.0, 12.0])
    config = BacktestConfig(capital=1000.0, slippage=0.01, allow_short=True)
    result = run(bars, targets(bars, [-1, -1, 0, 0, 0]), config)
    trade = result.trades.iloc[0]
    assert trade["side"] == "short"
    assert trade["entry_price"] == pytest.approx(18.0 * 0.99)
    assert trade["exit_price"] == pytest.approx(14.0 * 1.01)
    units = 1000.0 / (18.0 * 0.99)
    assert trade["net_pnl"] == pytest.approx(units * (18.0 * 0.99 - 14.0 * 1.01))
    assert result.metrics["final_equity"] == pytest.approx(1000.0 + trade["net_pnl"])


def test_a_position_open_at_the_end_is_closed_at_the_last_close():
    bars = make_bars(OPENS, CLOSES)
    config = BacktestConfig(capital=1000.0, commission=0.001, slippage=0.001)
    result = run(bars, targets(bars, [0, 1, 1, 1, 1]), config)
    trade = result.trades.iloc[-1]
    assert trade["exit_reason"] == "end_of_data"
    assert trade["exit_time"] == bars.index[-1]
    assert trade["exit_price"] == pytest.approx(14.5 * 0.999)
    assert trade["bars_held"] == 3  # bars 2, 3 and 4, through the last close
    assert result.equity.iloc[-1] == pytest.approx(1000.0 + trade["net_pnl"])
    assert result.metrics["final_equity"] == result.equity.iloc[-1]


def test_a_change_decided_at_the_last_bar_cannot_fill():
    bars = make_bars(OPENS, CLOSES)
    result = run(bars, targets(bars, [0, 0, 0, 0, 1]), BacktestConfig(capital=1000.0))
    assert result.trades.empty
    assert (result.equity == 1000.0).all()
    assert result.metrics["num_trades"] == 0
    assert np.isnan(result.metrics["win_rate"])


def test_a_flip_closes_and_reopens_at_the_same_open_on_the_new_equity():
    bars = make_bars(OPENS, CLOSES)
    config = BacktestConfig(capital=1000.0, commission=0.01, allow_short=True)
    result = run(bars, targets(bars, [1, 1, -1, -1, -1]), config)
    long, short = result.trades.itertuples()
    assert (long.side, short.side) == ("long", "short")
    assert long.exit_time == short.entry_time == bars.index[3]
    equity_after_long = 1000.0 + long.net_pnl
    assert short.units == pytest.approx(equity_after_long / (13.0 * 1.01))
    assert result.positions.tolist() == [0, 1, 1, -1, -1]
    assert result.metrics["exposure"] == 1.0 - 1 / 5  # bars 1..4, the flip bar counted once


def reference_backtest(opens, closes, target, capital, commission, slippage, position_size):
    """A plain bar-by-bar cash account: sale proceeds credited, equity = cash + units × close."""
    n = len(opens)
    cash, units, held, start_equity = capital, 0.0, 0, capital
    equity = np.empty(n)
    pnl = []
    for t in range(n):
        if t >= 1 and target[t - 1] != held:
            if units:
                side = np.sign(units)
                price = opens[t] * (1 - side * slippage)
                cash += units * price - commission * abs(units) * price
                pnl.append(cash - start_equity)
                units = 0.0
            held = target[t - 1]
            if held:
                start_equity = cash
                price = opens[t] * (1 + held * slippage)
                size = position_size * cash / (price * (1 + commission))
                cash -= held * size * price + commission * size * price
                units = held * size
        equity[t] = cash + units * closes[t]
    if units:
        side = np.sign(units)
        price = closes[-1] * (1 - side * slippage)
        cash += units * price - commission * abs(units) * price
        pnl.append(cash - start_equity)
        equity[-1] = cash
    return equity, np.array(pnl)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorised_engine_matches_a_bar_by_bar_account(seed):
    bars = random_walk(600, seed)
    target = random_targets(600, seed, changes=80)
    config = BacktestConfig(
        capital=50_000.0, commission=0.001, slippage=0.0005, position_size=0.8, allow_short=True
    )
    result = run(bars, targets(bars, list(target)), config)
    equity, pnl = reference_backtest(
        bars["open"].to_numpy(), bars["close"].to_numpy(), target, 50_000.0, 0.001, 0.0005, 0.8
    )
    np.testing.assert_allclose(result.equity.to_numpy(), equity, rtol=1e-10)
    np.testing.assert_allclose(result.trades["net_pnl"].to_numpy(), pnl, rtol=1e-8, atol=1e-6)
    assert (result.trades["side"] == "short").any() and (result.trades["side"] == "long").any()


def test_whole_units_are_floored_and_a_trade_too_small_is_skipped():
    bars = make_bars([100.0, 95.0, 120.0, 130.0, 90.0, 80.0])
    config = BacktestConfig(capital=1000.0, commission=0.01, fractional=False)
    result = run(bars, targets(bars, [1, 0, 1, 0, 0, 0]), config)
    first = result.trades.iloc[0]
    assert first["units"] == 10.0  # floor(1000 / (95 × 1.01)) = floor(10.42)
    assert result.trades["units"].tolist() == [float(int(u)) for u in result.trades["units"]]
    tiny = run(
        make_bars([100.0] * 4),
        targets(make_bars([100.0] * 4), [1, 1, 0, 0]),
        BacktestConfig(capital=50.0, fractional=False),
    )
    assert tiny.trades.empty
    assert (tiny.equity == 50.0).all()


def test_a_ruinous_short_stops_all_later_trading():
    bars = make_bars([10.0, 10.0, 40.0, 40.0, 10.0, 10.0])
    config = BacktestConfig(capital=1000.0, allow_short=True)
    result = run(bars, targets(bars, [-1, 0, -1, 0, 0, 0]), config)
    assert len(result.trades) == 1
    assert result.trades["net_pnl"].iloc[0] == pytest.approx(-3000.0)
    np.testing.assert_allclose(result.equity.iloc[2:].to_numpy(), -2000.0)
    assert result.metrics["cagr"] == -1.0


def test_boolean_and_integer_targets_are_accepted():
    bars = make_bars(OPENS, CLOSES)
    from_bool = run(
        bars, targets(bars, [True, True, False, False, False]).astype(bool), BacktestConfig()
    )
    from_int = run(bars, targets(bars, [1, 1, 0, 0, 0]), BacktestConfig())
    pd.testing.assert_series_equal(from_bool.equity, from_int.equity)
