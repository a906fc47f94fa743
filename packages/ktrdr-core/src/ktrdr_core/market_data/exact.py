"""The exact gap report: a dataset's bars checked against its exchange's official sessions.

A heuristic report (:mod:`ktrdr_core.market_data.gaps`) guesses the calendar from the data,
so one missing weekday looks like a holiday to it. When a dataset names its exchange, a
worker compares the bars with that exchange's sessions instead (``ktrdr_worker.sessions``,
through the ``exchange_calendars`` library) and sends this report, which the backend stores
beside the dataset version and the CLI shows. The schema lives here so that both read it
without pandas.

Which bars an exchange's sessions hold (``expected_bars``):

- daily bars: one per session, opening at 00:00 UTC of the session's date;
- weekly bars: one per week (Monday grid) that holds at least one session;
- intraday bars: every bar of the timeframe's grid that overlaps the session's trading time,
  from its open to its close less any lunch break. An early close (a US half day) holds
  fewer bars, and none of the ones after it is expected.

Every expected bar the data lacks is unexpected: consecutive ones form one listed stretch,
however many sessions it spans. A bar on a day the exchange was closed (a weekend, a holiday)
is listed too. A bar on a session's day but outside its hours (pre- and after-market data)
is only counted: it is not a fault, just not part of the session.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ClosedDayBar", "ExactGapReport", "SessionGap"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SessionGap(_Part):
    """Consecutive expected bars the data lacks: ``[start, end)`` in UTC bar opens (``end``
    is the open after the last missing bar), within the sessions of ``first_session`` to
    ``last_session`` (the exchange's own dates)."""

    kind: Literal["unexpected"] = "unexpected"
    start: datetime
    end: datetime
    missing_bars: int = Field(ge=1)
    first_session: date
    last_session: date
    sessions: int = Field(ge=1, description="sessions the stretch touches")


class ClosedDayBar(_Part):
    """A bar on a day the exchange held no session (its own date, ``day``)."""

    timestamp: datetime
    day: date


class ExactGapReport(_Part):
    """The bars of one dataset version against the sessions of ``exchange``.

    Counts: ``sessions`` from the first to the last bar's session, ``expected_bars`` they
    hold, ``bars_present``, ``missing_bars`` (expected ones absent), ``early_closes``
    (shortened sessions in the span), ``holidays_total`` (Monday-to-Friday dates in the span
    without a session), ``closed_day_bars_total`` and ``outside_hours_bars``. Listings, at
    most ``max_listed`` each, oldest first: ``unexpected`` (stretches of missing bars),
    ``holidays`` (those dates) and ``closed_day_bars``.
    """

    method: Literal["exchange"] = "exchange"
    exchange: str
    timezone: str = Field(description="the exchange's time zone, e.g. America/New_York")
    library: str = Field(description="what the sessions come from, e.g. exchange_calendars 4.13.2")
    timeframe: str
    first: datetime
    last: datetime
    bars_present: int = Field(ge=0)
    sessions: int = Field(ge=0)
    expected_bars: int = Field(ge=0)
    missing_bars: int = Field(ge=0)
    early_closes: int = Field(ge=0)
    has_breaks: bool = Field(description="the exchange pauses for lunch")
    unexpected: list[SessionGap] = Field(default_factory=list)
    unexpected_total: int = Field(ge=0, description="stretches of missing bars, all counted")
    holidays: list[date] = Field(default_factory=list)
    holidays_total: int = Field(ge=0)
    closed_day_bars: list[ClosedDayBar] = Field(default_factory=list)
    closed_day_bars_total: int = Field(ge=0)
    outside_hours_bars: int = Field(ge=0)
    max_listed: int = Field(ge=0)

    @property
    def has_unexpected(self) -> bool:
        """True when bars are missing from sessions, or bars lie on closed days."""
        return self.unexpected_total > 0 or self.closed_day_bars_total > 0
