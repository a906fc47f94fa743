"""Checks for the options several commands share, made before any request is sent.

A mistake in an option is one line that names the option and says what it expects (exit 2),
not the backend's answer about the request it would have become.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ktrdr_cli.context import fail


def timeframe(value: str, option: str = "--timeframe") -> str:
    """``value`` if it names a timeframe; otherwise fail naming ``option``."""
    from ktrdr_core.timeframes import Timeframe

    if value not in {tf.value for tf in Timeframe}:
        valid = ", ".join(tf.value for tf in Timeframe)
        fail(f"{option} {value!r}: expected one of {valid}", code=2)
    return value


def moment(value: str | None, option: str) -> datetime | None:
    """An ISO date or date-time (``2024-01-31`` or ``2024-01-31T14:00``, UTC) or None."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r}: expected a date, YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)", code=2)
    raise AssertionError("unreachable")


def period(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """``--start`` and ``--end`` as date-times, the first before the second."""
    start_at, end_at = moment(start, "--start"), moment(end, "--end")
    if start_at is not None and end_at is not None and _naive(start_at) >= _naive(end_at):
        fail(f"--start {start} must be before --end {end}", code=2)
    return start_at, end_at


def _naive(when: datetime) -> datetime:
    """UTC without tzinfo: a date and a ``...Z`` time compare without a TypeError."""
    from datetime import UTC

    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def backtest_settings(**options: float | None) -> dict[str, Any]:
    """The backtest overrides given (``capital=…``, ``commission=…``), checked against the
    strategy schema's ``backtest`` section; a bad one fails naming its option."""
    from pydantic import ValidationError

    from ktrdr_core.strategy.sections import BacktestConfig

    given = {name: value for name, value in options.items() if value is not None}
    for name, value in given.items():
        try:
            BacktestConfig.model_validate({name: value})
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            fail(f"--{name.replace('_', '-')} {value:g}: {reason[0].lower()}{reason[1:]}", code=2)
    return given
