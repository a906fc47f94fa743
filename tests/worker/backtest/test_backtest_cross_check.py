"""Cross-check against backtesting.py 0.6.6 on its own GOOG daily and EURUSD hourly files.

The same long/short signals run through both engines with whole units, the same sizing and
commission. backtesting.py is driven by a Strategy whose next() reads the precomputed targets:
on a change it closes the position, then buys or sells ``position_size`` of equity; its
orders fill at the next bar's open, like ours.

Two conventions differ by design and are handled openly here:
- backtesting.py closes positions still open at the end (``finalize_trades=True``) at the last
  bar's *open*, we at its *close*; the main windows therefore end on a bar whose open equals
  its close (GOOG bar 1830, EURUSD bar 4654), and a separate test checks the difference on the
  full files;
- a target change decided at the last bar cannot fill in our engine; backtesting.py would fill
  it at that same bar's open while finalising, so the driver ignores the last bar's target.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest
from backtesting.test import EURUSD, GOOG

from ktrdr_worker.backtest import BacktestConfig, run
from tests.support.bars import canonical
from tests.support.targets import follow_targets_strategy

CAPITAL = 100_000.0
POSITION_SIZE = 0.95

# name, frame, last bar of the window (its open equals its close), commission per side
DATASETS = [
    ("GOOG daily", GOOG, 1830, 0.002),
    ("EURUSD hourly", EURUSD, 4654, 0.0002),
]


def sma_targets(close: pd.Series) -> np.ndarray:
    """Long when SMA(5) is 0.1 % above SMA(20), short when 0.1 % below, flat in between."""
    fast = close.rolling(5).mean()
    slow = close.rolling(20).mean()
    target = np.where(fast > slow * 1.001, 1, np.where(fast < slow * 0.999, -1, 0))
    target[:20] = 0  # warm-up, and backtesting.py never acts on bar 0
    return target.astype(np.int8)


def run_backtesting_py(data: pd.DataFrame, target: np.ndarray, commission: float) -> pd.Series:
    FollowTargets = follow_targets_strategy(target, POSITION_SIZE)

    with warnings.catch_warnings():
        # "prices larger than initial cash" does not apply: cash is 100k.
        warnings.simplefilter("ignore")
        bt = Backtest(
            data, FollowTargets, cash=CAPITAL, commission=commission, finalize_trades=True
        )
        return bt.run()


def run_ours(data: pd.DataFrame, target: np.ndarray, commission: float):
    ohlcv = canonical(data)
    config = BacktestConfig(
        capital=CAPITAL,
        commission=commission,
        position_size=POSITION_SIZE,
        fractional=False,
        allow_short=True,
    )
    return run(ohlcv, pd.Series(target, index=ohlcv.index), config)


@pytest.fixture(scope="module", params=DATASETS, ids=[d[0] for d in DATASETS])
def both(request):
    _, frame, last_bar, commission = request.param
    data = frame.iloc[: last_bar + 1]
    assert data["Open"].iloc[-1] == data["Close"].iloc[-1]
    target = sma_targets(data["Close"])
    return run_ours(data, target, commission), run_backtesting_py(data, target, commission)


def test_enough_trades_on_both_sides_and_one_left_open(both):
    ours, _ = both
    trades = ours.trades
    assert len(trades) >= 50
    assert (trades["side"] == "long").sum() >= 20
    assert (trades["side"] == "short").sum() >= 20
    assert trades["exit_reason"].iloc[-1] == "end_of_data"
    assert (trades["exit_reason"].iloc[:-1] == "signal").all()


def test_trades_are_identical(both):
    ours, theirs = both
    mine = ours.trades
    peer = theirs["_trades"]
    assert len(mine) == len(peer)
    np.testing.assert_array_equal(mine["entry_bar"], peer["EntryBar"])
    np.testing.assert_array_equal(mine["exit_bar"], peer["ExitBar"])
    np.testing.assert_array_equal(mine["side"] == "long", peer["Size"] > 0)
    np.testing.assert_array_equal(mine["units"], peer["Size"].abs())
    np.testing.assert_array_equal(mine["entry_price"], peer["EntryPrice"])
    np.testing.assert_array_equal(mine["exit_price"], peer["ExitPrice"])
    np.testing.assert_allclose(mine["net_pnl"], peer["PnL"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(mine["commission"], peer["Commission"], rtol=1e-12)
    np.testing.assert_allclose(mine["return"], peer["ReturnPct"], rtol=1e-9, atol=1e-12)
    # Times are the fill bars' open times in both.
    np.testing.assert_array_equal(
        mine["entry_time"].dt.tz_localize(None).to_numpy(), peer["EntryTime"].to_numpy()
    )


def test_equity_curve_and_final_equity_agree(both):
    ours, theirs = both
    peer_equity = theirs["_equity_curve"]["Equity"].to_numpy()
    assert ours.metrics["final_equity"] == pytest.approx(theirs["Equity Final [$]"], rel=1e-6)
    np.testing.assert_allclose(ours.equity.to_numpy(), peer_equity, rtol=1e-9)


def test_metrics_both_compute_agree(both):
    ours, theirs = both
    m = ours.metrics
    pairs = {
        "total_return": theirs["Return [%]"] / 100,
        "max_drawdown": -theirs["Max. Drawdown [%]"] / 100,
        "win_rate": theirs["Win Rate [%]"] / 100,
        "return_profit_factor": theirs["Profit Factor"],
        "exposure": theirs["Exposure Time [%]"] / 100,
        "buy_and_hold_return": theirs["Buy & Hold Return [%]"] / 100,
        "cagr": theirs["CAGR [%]"] / 100,
        "best_trade_return": theirs["Best Trade [%]"] / 100,
        "worst_trade_return": theirs["Worst Trade [%]"] / 100,
        "total_commission": theirs["Commissions [$]"],
    }
    for name, expected in pairs.items():
        assert m[name] == pytest.approx(expected, rel=1e-6, abs=1e-12), name
    assert m["num_trades"] == theirs["# Trades"]
    duration = theirs["Max. Drawdown Duration"]
    assert m["max_drawdown_duration_days"] == pytest.approx(duration / pd.Timedelta(days=1))
    # Money-weighted profit factor, from backtesting.py's own trade P&L.
    pnl = theirs["_trades"]["PnL"]
    expected_pf = pnl[pnl > 0].sum() / -pnl[pnl < 0].sum()
    assert m["profit_factor"] == pytest.approx(expected_pf, rel=1e-6)


@pytest.mark.parametrize("name,frame,commission", [(d[0], d[1], d[3]) for d in DATASETS])
def test_full_file_differs_only_in_the_end_of_data_fill(name, frame, commission):
    """On the full files (last open != last close) only the final exit differs, by design."""
    target = sma_targets(frame["Close"])
    target[-2:] = target[-3]  # no change at the very end: keep one position open
    assert target[-1] != 0
    ours = run_ours(frame, target, commission)
    theirs = run_backtesting_py(frame, target, commission)
    mine, peer = ours.trades, theirs["_trades"]
    for ours_col, peer_col in [("entry_bar", "EntryBar"), ("exit_bar", "ExitBar")]:
        np.testing.assert_array_equal(mine[ours_col], peer[peer_col])
    np.testing.assert_array_equal(mine["units"], peer["Size"].abs())
    np.testing.assert_array_equal(mine["exit_price"].iloc[:-1], peer["ExitPrice"].iloc[:-1])
    assert mine["exit_price"].iloc[-1] == frame["Close"].iloc[-1]
    assert peer["ExitPrice"].iloc[-1] == frame["Open"].iloc[-1]
    # Re-price backtesting.py's final exit at the close: the final equities then agree.
    units = mine["units"].iloc[-1]
    side = 1.0 if mine["side"].iloc[-1] == "long" else -1.0
    move = frame["Close"].iloc[-1] - frame["Open"].iloc[-1]
    repriced = theirs["Equity Final [$]"] + side * units * move - units * move * commission
    assert ours.metrics["final_equity"] == pytest.approx(repriced, rel=1e-9)
