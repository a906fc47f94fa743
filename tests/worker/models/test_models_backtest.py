"""Model backtests: bundle + data → positions → engine → report and chart."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ktrdr_core.bundles import read_manifest
from ktrdr_core.reports import load_backtest_report
from ktrdr_worker.models.backtest import ModelBacktestError, backtest_model


def test_backtest_covers_the_test_period_and_writes_report_and_series(
    tmp_path, planted_outcome, planted_data
):
    outcome = backtest_model(planted_outcome.bundle, planted_data, out_dir=tmp_path)
    report = load_backtest_report(json.loads((tmp_path / "report.json").read_text()))
    test = read_manifest(planted_outcome.bundle).splits["test"]
    assert report.period == "test"
    assert report.start == test.start and report.end == test.end
    assert report.bars == len(report.equity) == len(report.drawdown)
    counts = report.signal_counts
    assert counts.BUY + counts.HOLD + counts.SELL + counts.no_data == report.bars
    # The planted signal is strong: the model trades, and the report shows the trades.
    assert report.zero_trade_reason is None
    assert report.metrics["num_trades"] == len(report.trades) > 10
    assert report.trades[0].entry_time >= report.start
    # One buy-and-hold number everywhere: the hold's total return is the strategy metrics'
    # buy_and_hold_return, close to close over the report's bars.
    hold = report.buy_and_hold["total_return"]
    assert report.metrics["buy_and_hold_return"] == pytest.approx(hold, rel=1e-12)
    closes = planted_data.loc[report.start : report.end, "close"]
    assert hold == pytest.approx(closes.iloc[-1] / closes.iloc[0] - 1, rel=1e-12)
    assert report.buy_and_hold["num_trades"] == 0
    assert report.metrics["total_return"] == pytest.approx(report.equity[-1][1] / 10_000 - 1)
    assert json.loads((tmp_path / "series.json").read_text()) == outcome.series
    assert report.charts == {"series": "series.json"}
    page = outcome.series["symbols"][report.symbol]
    # Below the decimation threshold the page gets every bar and every trade, unchanged.
    assert len(page["price"]) == len(page["equity"]) == report.bars
    assert len(page["trades"]) == len(report.trades)
    assert page["equity"][-1][1] == pytest.approx(report.equity[-1][1])
    assert max(v for _, v in page["drawdown"]) == pytest.approx(report.metrics["max_drawdown"])


def test_a_backtest_without_trades_says_why(planted_outcome, planted_data):
    outcome = backtest_model(
        planted_outcome.bundle, planted_data, decisions={"confidence_threshold": 1.0}
    )
    report = load_backtest_report(outcome.report)
    assert report.trades == []
    assert "confidence threshold 1" in report.zero_trade_reason


def test_too_little_warm_up_before_the_period_is_refused(planted_outcome, planted_data):
    start = pd.Timestamp(read_manifest(planted_outcome.bundle).splits["test"].start)
    with pytest.raises(ModelBacktestError, match="bars of warm-up"):
        backtest_model(planted_outcome.bundle, planted_data.loc[start - pd.Timedelta(hours=5) :])


def test_a_custom_period_can_be_backtested(planted_outcome, planted_data):
    outcome = backtest_model(
        planted_outcome.bundle,
        planted_data,
        start="2021-01-10",
        end="2021-01-20 23:00",
        backtest={"commission": 0.001},
    )
    report = load_backtest_report(outcome.report)
    assert report.period == "custom"
    assert report.start == pd.Timestamp("2021-01-10", tz="UTC")
    assert report.bars == 11 * 24
    assert report.config["commission"] == 0.001


def test_a_period_over_the_training_data_is_recorded_as_in_sample(planted_outcome, planted_data):
    splits = read_manifest(planted_outcome.bundle).splits
    out_of_sample = load_backtest_report(
        backtest_model(planted_outcome.bundle, planted_data).report
    )
    assert out_of_sample.in_sample == []
    inside = load_backtest_report(
        backtest_model(
            planted_outcome.bundle,
            planted_data,
            start=splits["train"].end,
            end=splits["validation"].end,
        ).report
    )
    assert inside.period == "custom"
    assert inside.in_sample == ["train", "validation"]


def test_the_datas_exchange_annualises_the_report(planted_outcome, planted_data):
    """A dataset that names its exchange is annualised by that exchange's sessions (here the
    around-the-clock 24/7 calendar over the planted hourly market's years), not by a guess."""
    from ktrdr_worker.sessions import exchange_year

    inferred = load_backtest_report(backtest_model(planted_outcome.bundle, planted_data).report)
    named = load_backtest_report(
        backtest_model(planted_outcome.bundle, planted_data, exchange="24/7").report
    )
    year = exchange_year("24/7", "1h", planted_data.index[0], planted_data.index[-1])
    assert named.calendar["exchange"] == "24/7" and named.calendar["calendar"] == "exchange"
    assert named.calendar["bars_per_year"] == year.bars_per_year
    assert inferred.calendar["exchange"] is None
    ratio = (year.bars_per_year / inferred.calendar["bars_per_year"]) ** 0.5
    assert named.metrics["sharpe"] == pytest.approx(inferred.metrics["sharpe"] * ratio)
