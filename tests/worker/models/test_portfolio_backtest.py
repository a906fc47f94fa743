"""A model trained on GOOG and the S&P 500 (real daily bars) backtested as a portfolio: each
sleeve is the single-symbol backtest with its capital, trade for trade; the portfolio is the
sleeves' sum; data that misses the shared window is refused, every symbol's gap named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_core.reports import PortfolioReport, headline, load_backtest_report
from ktrdr_worker.models.backtest import backtest_model
from ktrdr_worker.models.portfolio import PortfolioCoverageError, backtest_portfolio
from tests.support.indicator_reference import load_real_frames
from tests.support.stack import TWO_SYMBOL_STRATEGY


@pytest.fixture(scope="module")
def pair() -> dict[str, pd.DataFrame]:
    frames = load_real_frames()
    return {
        "GOOG": frames["GOOG"],
        "SP500": frames["SP500"].loc["2004-01-01":"2013-03-01"],
    }


@pytest.fixture(scope="module")
def trained(pair):
    from ktrdr_worker.models.pipeline import train_strategy

    return train_strategy(TWO_SYMBOL_STRATEGY + "\n", pair, threads=1)


@pytest.fixture(scope="module")
def portfolio(trained, pair):
    return backtest_portfolio(trained.bundle, pair)


def _test_start(trained) -> str:
    return trained.result["splits"]["test"]["start"]


def _series(pairs) -> pd.Series:
    index = pd.DatetimeIndex([pd.Timestamp(t) for t, _ in pairs])
    return pd.Series([v for _, v in pairs], index=index, dtype=float)


def test_each_sleeve_is_the_single_symbol_backtest_with_its_capital(trained, pair, portfolio):
    report = portfolio.report
    assert isinstance(load_backtest_report(report), PortfolioReport)
    weights = report["portfolio"]["weights"]
    assert weights == {"GOOG": 0.25, "SP500": 0.75}  # the strategy's backtest.weights
    for symbol, weight in weights.items():
        alone = backtest_model(
            trained.bundle,
            pair[symbol],
            symbol=symbol,
            start=report["start"],
            end=report["end"],
            backtest={"capital": 100_000.0 * weight},
        ).report
        sleeve = report["symbols"][symbol]
        assert sleeve["config"]["capital"] == pytest.approx(100_000.0 * weight)
        assert sleeve["trades"] == alone["trades"]  # trade for trade
        assert sleeve["equity"] == alone["equity"]
        assert sleeve["metrics"] == alone["metrics"]
        assert sleeve["signal_counts"] == alone["signal_counts"]
    assert sum(len(s["trades"]) for s in report["symbols"].values()) > 0


def test_the_portfolio_is_the_sum_of_its_sleeves(portfolio):
    report = portfolio.report
    section = report["portfolio"]
    equity = _series(section["equity"])
    sleeves = {s: _series(r["equity"]) for s, r in report["symbols"].items()}
    union = sleeves["GOOG"].index.union(sleeves["SP500"].index)
    assert equity.index.equals(union)
    capital = {s: section["capital"] * w for s, w in section["weights"].items()}
    summed = sum(sleeves[s].reindex(union).ffill().fillna(capital[s]) for s in sleeves)
    np.testing.assert_allclose(equity.to_numpy(), summed.to_numpy(), rtol=1e-12)
    total = section["metrics"]["total_return"]
    assert total == pytest.approx(equity.iloc[-1] / section["capital"] - 1)
    assert sum(section["contributions"].values()) == pytest.approx(total)
    assert section["metrics"]["num_trades"] == sum(
        len(r["trades"]) for r in report["symbols"].values()
    )
    assert section["rebalancing"] == "none"
    # Both are NYSE days: the union calendar is an exchange-day one, 252 bars a year.
    assert section["calendar"]["calendar"] == "exchange"
    assert section["calendar"]["bars_per_year"] == 252
    assert headline(report) is section
    page = portfolio.series["portfolio"]
    assert page["metrics"] == section["metrics"] and len(page["equity"]) == report["bars"]
    assert set(portfolio.series["symbols"]) == set(report["symbols"])


def test_a_symbol_without_data_over_the_window_is_refused_with_every_gap(trained, pair):
    short = {
        "GOOG": pair["GOOG"].loc[:"2011-06-30"],  # ends inside the test window
        "SP500": pair["SP500"].loc["2012-06-01":],  # starts inside it: no warm-up
    }
    with pytest.raises(PortfolioCoverageError) as refused:
        backtest_portfolio(trained.bundle, short)
    message = str(refused.value)
    assert len(refused.value.problems) == 2
    start = pd.Timestamp(_test_start(trained))
    assert f"GOOG: no bars from {start}" in message
    assert f"SP500: no bars from {start} to 2012-06-01" in message and "warm-up" in message


def test_the_union_calendar_is_read_from_every_sleeves_bars():
    from ktrdr_worker.models.portfolio import union_calendar

    exchange_days = pd.bdate_range("2021-01-04", "2021-12-31", tz="UTC").drop(
        pd.DatetimeIndex(["2021-01-18", "2021-02-15", "2021-04-02"], tz="UTC")
    )
    # One exchange for all: its sessions count the year (2021: 252 NYSE sessions).
    both_nyse = union_calendar(exchange_days, "1d", ["XNYS", "XNYS"])
    assert (both_nyse.calendar, both_nyse.exchange) == ("exchange", "XNYS")
    assert both_nyse.bars_per_year == pytest.approx(252, abs=1)
    # A 24/5 market beside the exchange days: the union trades every weekday.
    weekdays = exchange_days.union(pd.bdate_range("2021-01-04", "2021-12-31", tz="UTC"))
    mixed = union_calendar(weekdays, "1d", ["XNYS", None])
    assert (mixed.calendar, mixed.bars_per_year, mixed.exchange) == ("weekdays", 260, None)
    # A 24/7 market beside them: every day.
    every_day = weekdays.union(pd.date_range("2021-01-01", "2021-12-31", tz="UTC"))
    assert union_calendar(every_day, "1d", [None, None]).calendar == "24/7"


def test_without_weights_the_sleeves_are_equal(trained, pair):
    report = backtest_portfolio(trained.bundle, pair, backtest={"weights": None}).report
    assert report["portfolio"]["weights"] == {"GOOG": 0.5, "SP500": 0.5}
    assert report["symbols"]["GOOG"]["config"]["capital"] == 50_000
