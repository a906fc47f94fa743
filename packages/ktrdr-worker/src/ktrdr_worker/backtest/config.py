"""Backtest settings: capital, costs, sizing, shorting and the annualisation calendar."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any

from ktrdr_core.exchanges import exchange_code
from ktrdr_core.timeframes import parse_timeframe
from ktrdr_worker.calendars import CALENDARS

__all__ = ["BacktestConfig"]


@dataclass(frozen=True)
class BacktestConfig:
    """How a backtest trades and how its metrics are annualised.

    Every field is checked when the config is built; a bad value raises ``ValueError`` naming
    the field, before any computation.

    Attributes:
        capital: starting equity, in quote currency; > 0.
        commission: fraction of traded value charged on every fill (entry and exit);
            0 <= commission < 1 (0.001 = 10 bp per side).
        slippage: fraction of price by which every fill moves against the trader (buys fill at
            ``price × (1 + slippage)``, sells at ``price × (1 − slippage)``); 0 <= slippage < 1.
        position_size: fraction of current equity committed to each new position, entry
            commission included; 0 < position_size <= 1 (no leverage).
        fractional: True (default) allows fractional units; False floors units to whole numbers
            and reproduces backtesting.py's sizing exactly (see ``ktrdr_worker.backtest.run``).
        allow_short: whether target positions of -1 (short) are accepted.
        calendar: ``"24/7"``, ``"weekdays"``, ``"exchange"``, or None / ``"auto"`` to infer it
            from the data (see ``ktrdr_worker.calendars``).
        exchange: the exchange the data trades on (``"XNYS"``; the dataset's): its official
            sessions give the bars per year, and ``calendar`` must then be None, ``"auto"``
            or ``"exchange"``.
        timeframe: a ktrdr timeframe name (``"1h"``), or None to infer it from the index.
        bars_per_year: explicit annualisation factor (bars in a year); overrides the calendar.
        risk_free_rate: annual risk-free rate (fraction) subtracted in Sharpe and Sortino.
    """

    capital: float = 100_000.0
    commission: float = 0.0
    slippage: float = 0.0
    position_size: float = 1.0
    fractional: bool = True
    allow_short: bool = False
    calendar: str | None = None
    exchange: str | None = None
    timeframe: str | None = None
    bars_per_year: float | None = None
    risk_free_rate: float = 0.0

    def __post_init__(self) -> None:
        _check_number("capital", self.capital, low=0.0, low_inclusive=False)
        _check_number("commission", self.commission, low=0.0, high=1.0)
        _check_number("slippage", self.slippage, low=0.0, high=1.0)
        _check_number(
            "position_size",
            self.position_size,
            low=0.0,
            low_inclusive=False,
            high=1.0,
            high_inclusive=True,
        )
        _check_number("risk_free_rate", self.risk_free_rate, low=-1.0, low_inclusive=False)
        for name in ("fractional", "allow_short"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"BacktestConfig.{name} must be True or False, got {getattr(self, name)!r}"
                )
        if self.calendar is not None and self.calendar != "auto" and self.calendar not in CALENDARS:
            raise ValueError(
                f"BacktestConfig.calendar must be 'auto' or one of {', '.join(CALENDARS)}; "
                f"got {self.calendar!r}"
            )
        if self.exchange is not None:
            try:
                exchange_code(self.exchange)
            except ValueError as exc:
                raise ValueError(f"BacktestConfig.exchange: {exc}") from None
            if self.calendar not in (None, "auto", "exchange"):
                raise ValueError(
                    f"BacktestConfig.calendar {self.calendar!r} contradicts exchange "
                    f"{self.exchange}, whose sessions annualise the metrics"
                )
        if self.timeframe is not None:
            try:
                parse_timeframe(self.timeframe)
            except ValueError as exc:
                raise ValueError(f"BacktestConfig.timeframe: {exc}") from None
        if self.bars_per_year is not None:
            _check_number("bars_per_year", self.bars_per_year, low=0.0, low_inclusive=False)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return asdict(self)


def _check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"BacktestConfig.{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"BacktestConfig.{name} must be finite, got {value!r}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(
            f"BacktestConfig.{name} must lie in {left}{lo}, {hi}{right}, got {value!r}"
        )
