"""Bars per year by timeframe and calendar, inferred from real and synthetic indexes."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from backtesting.test import EURUSD, GOOG

from ktrdr_worker.calendars import bars_per_year, resolve_calendar
from tests.support.bars import canonical


def test_fx_hourly_trades_around_the_clock_on_weekdays():
    cal = resolve_calendar(canonical(EURUSD).index)
    assert (cal.timeframe, cal.calendar, cal.bars_per_year) == ("1h", "weekdays", 260 * 24)
    assert cal.inferred == ("timeframe", "calendar")


def test_stock_daily_trades_on_exchange_days():
    cal = resolve_calendar(canonical(GOOG).index)
    assert (cal.timeframe, cal.calendar, cal.bars_per_year) == ("1d", "exchange", 252.0)


def test_crypto_hourly_and_daily_trade_every_day():
    hourly = pd.date_range("2024-01-01", periods=24 * 60, freq="1h", tz="UTC")
    daily = pd.date_range("2024-01-01", periods=400, freq="1D", tz="UTC")
    assert resolve_calendar(hourly).bars_per_year == 365 * 24
    assert resolve_calendar(daily).calendar == "24/7"
    assert resolve_calendar(daily).bars_per_year == 365.0


def test_stock_intraday_counts_bars_per_session():
    days = pd.bdate_range("2024-01-01", periods=60, tz="UTC")
    # 09:30-16:00 New York in winter: 7 hourly bars from 14:30 UTC.
    index = pd.DatetimeIndex(
        [
            d + pd.Timedelta(hours=14, minutes=30) + pd.Timedelta(hours=h)
            for d in days
            for h in range(7)
        ]
    )
    cal = resolve_calendar(index)
    assert (cal.calendar, cal.bars_per_session, cal.bars_per_year) == ("exchange", 7.0, 252 * 7)


def test_daily_weekdays_without_holidays_is_the_weekday_calendar():
    index = pd.bdate_range("2023-01-02", "2024-12-31", tz="UTC")
    assert resolve_calendar(index).calendar == "weekdays"
    assert resolve_calendar(index).bars_per_year == 260.0


def test_weekly_bars_ignore_the_calendar():
    index = pd.date_range("2020-01-06", periods=100, freq="7D", tz="UTC")
    assert resolve_calendar(index).bars_per_year == pytest.approx(365.25 / 7)


def test_explicit_settings_win_over_inference():
    index = canonical(EURUSD).index
    cal = resolve_calendar(index, timeframe="1h", calendar="24/7")
    assert (cal.calendar, cal.bars_per_year, cal.inferred) == ("24/7", 8760.0, ())
    assert resolve_calendar(index, calendar="auto").calendar == "weekdays"


def test_unknown_names_are_rejected():
    index = pd.date_range("2024-01-01", periods=10, freq="1h", tz="UTC")
    with pytest.raises(ValueError, match="calendar"):
        resolve_calendar(index, calendar="nyse")
    with pytest.raises(ValueError, match="timeframe"):
        resolve_calendar(index, timeframe="60m")
    with pytest.raises(ValueError, match="bars_per_session"):
        bars_per_year(3600, "exchange")


def test_annualisation_factor_is_not_sqrt_252_for_every_bar_size():
    assert math.sqrt(bars_per_year(3600, "24/7")) == pytest.approx(math.sqrt(8760))
    assert bars_per_year(14_400, "weekdays") == 260 * 6
    assert bars_per_year(86_400, "exchange") == 252
