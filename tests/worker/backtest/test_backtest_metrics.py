"""Metric definitions, checked on equity curves and trades worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ktrdr_worker.backtest import BacktestConfig, compute_metrics, run
from ktrdr_worker.calendars import TradingCalendar
from tests.support.bars import make_bars

DAILY_STOCK = TradingCalendar(86_400, "1d", "exchange", 252.0, None, ())
HOURLY_CRYPTO = TradingCalendar(3_600, "1h", "24/7", 8_760.0, None, ())


def no_trades() -> pd.DataFrame:
    return trades_frame(net=[], returns=[], entry=[], exit_=[])


def trades_frame(net, returns, entry, exit_, bars_held=None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "net_pnl": np.asarray(net, dtype=float),
            "return": np.asarray(returns, dtype=float),
            "bars_held": np.asarray(bars_held or [1] * len(net)),
            "commission": np.zeros(len(net)),
            "entry_bar": np.asarray(entry, dtype=np.int64),
            "exit_bar": np.asarray(exit_, dtype=np.int64),
        }
    )


def metrics_of(equity, calendar=DAILY_STOCK, trades=None, close=None, freq="1D", rf=0.0):
    equity = np.asarray(equity, dtype=float)
    index = pd.date_range("2020-01-01", periods=len(equity), freq=freq, tz="UTC")
    return compute_metrics(
        index=index,
        equity=equity,
        close=np.asarray(close if close is not None else equity, dtype=float),
        trades=trades if trades is not None else no_trades(),
        calendar=calendar,
        capital=float(equity[0]),
        risk_free_rate=rf,
    )


def test_drawdown_depth_and_duration():
    # Peaks at bars 0, 1, 4; under water on 2-3 (from 110 to 88 = 20 %), then again at 5-6.
    m = metrics_of([100, 110, 99, 88, 120, 114, 118])
    assert m["max_drawdown"] == pytest.approx(0.2)
    assert m["max_drawdown_duration_bars"] == 3  # peak at bar 1, regained at bar 4
    assert m["max_drawdown_duration_days"] == 3.0


def test_a_drawdown_that_never_recovers_runs_to_the_last_bar():
    m = metrics_of([100, 120, 119, 118, 117, 116, 115])
    assert m["max_drawdown_duration_bars"] == 5
    only_last = metrics_of([100, 120, 119])
    assert only_last["max_drawdown_duration_bars"] == 1


def test_sharpe_sortino_and_volatility_use_the_bars_per_year():
    equity = 100 * np.cumprod([1.0, 1.01, 0.99, 1.02, 1.0, 1.005])
    r = equity[1:] / equity[:-1] - 1
    m = metrics_of(equity)
    assert m["annual_volatility"] == pytest.approx(np.std(r, ddof=1) * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(np.mean(r) / np.std(r, ddof=1) * math.sqrt(252))
    downside = math.sqrt(np.mean(np.minimum(r, 0) ** 2))
    assert m["sortino"] == pytest.approx(np.mean(r) / downside * math.sqrt(252))
    # The same bar returns on a 24/7 hourly series annualise with √8760, not √252.
    hourly = metrics_of(equity, calendar=HOURLY_CRYPTO, freq="1h")
    assert hourly["sharpe"] / m["sharpe"] == pytest.approx(math.sqrt(8760 / 252))


def test_risk_free_rate_is_taken_per_bar():
    equity = 100 * np.cumprod([1.0, 1.01, 0.99, 1.02, 1.0, 1.005])
    r = equity[1:] / equity[:-1] - 1
    rf_bar = 1.05 ** (1 / 252) - 1
    m = metrics_of(equity, rf=0.05)
    assert m["sharpe"] == pytest.approx(np.mean(r - rf_bar) / np.std(r, ddof=1) * math.sqrt(252))


def test_cagr_and_calmar_over_calendar_time():
    index = pd.DatetimeIndex(["2020-01-01", "2022-01-01"], tz="UTC")
    years = (index[1] - index[0]).days / 365.25
    m = compute_metrics(
        index=index,
        equity=np.array([100.0, 200.0]),
        close=np.array([1.0, 3.0]),
        trades=no_trades(),
        calendar=DAILY_STOCK,
        capital=100.0,
    )
    assert m["total_return"] == 1.0
    assert m["cagr"] == pytest.approx(2 ** (1 / years) - 1)
    assert math.isnan(m["calmar"])  # no drawdown
    assert m["buy_and_hold_return"] == 2.0


def test_trade_statistics():
    trades = trades_frame(
        net=[100.0, -50.0, 30.0, -20.0],
        returns=[0.02, -0.03, 0.01, -0.005],
        entry=[1, 4, 6, 8],
        exit_=[3, 6, 7, 9],
        bars_held=[2, 2, 1, 1],
    )
    m = metrics_of(np.full(10, 100.0), trades=trades)
    assert m["num_trades"] == 4
    assert m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(130 / 70)
    assert m["return_profit_factor"] == pytest.approx(0.03 / 0.035)
    assert m["avg_win"] == 65.0 and m["avg_loss"] == -35.0
    assert m["largest_win"] == 100.0 and m["largest_loss"] == -50.0
    assert m["best_trade_return"] == 0.02 and m["worst_trade_return"] == -0.03
    assert m["avg_bars_held"] == 1.5
    # Bars 1-3, 4-6, 6-7, 8-9 with bar 6 shared by a flip: 9 of 10 bars (bar 0 is flat).
    assert m["exposure"] == pytest.approx(0.9)


def test_profit_factor_without_losers_is_infinite():
    trades = trades_frame(net=[10.0, 5.0], returns=[0.1, 0.05], entry=[1, 3], exit_=[2, 4])
    m = metrics_of(np.full(6, 100.0), trades=trades)
    assert m["profit_factor"] == math.inf
    assert math.isnan(m["avg_loss"])


def test_run_reports_the_annualisation_it_used():
    bars = make_bars(list(100 + np.sin(np.arange(500) / 7)), freq="1h")  # 24/7 hourly
    positions = pd.Series((np.arange(500) // 25) % 2, index=bars.index)
    m = run(bars, positions, BacktestConfig()).metrics
    assert (m["timeframe"], m["calendar"], m["bars_per_year"]) == ("1h", "24/7", 8760.0)
    forced = run(bars, positions, BacktestConfig(bars_per_year=252.0)).metrics
    assert forced["bars_per_year"] == 252.0
    assert m["sharpe"] / forced["sharpe"] == pytest.approx(math.sqrt(8760 / 252))
