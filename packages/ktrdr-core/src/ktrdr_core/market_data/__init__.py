"""Market data contracts: OHLCV file validation and normalisation, gap reports.

Standard library only, so the backend can run it on every upload. The numeric side
(frames, resampling, multi-timeframe alignment) lives in ``ktrdr_worker.frames``.
"""

from ktrdr_core.market_data.gaps import (
    GAP_KINDS,
    CalendarKind,
    Gap,
    GapKind,
    GapReport,
    MarketCalendar,
    gap_report,
    infer_calendar,
)
from ktrdr_core.market_data.validation import (
    CANONICAL_COLUMNS,
    CANONICAL_HEADER,
    RULES,
    Issue,
    OHLCVValidationError,
    ValidationResult,
    format_timestamp,
    normalise,
    validate_ohlcv_csv,
)

__all__ = [
    "CANONICAL_COLUMNS",
    "CANONICAL_HEADER",
    "GAP_KINDS",
    "RULES",
    "CalendarKind",
    "Gap",
    "GapKind",
    "GapReport",
    "Issue",
    "MarketCalendar",
    "OHLCVValidationError",
    "ValidationResult",
    "format_timestamp",
    "gap_report",
    "infer_calendar",
    "normalise",
    "validate_ohlcv_csv",
]
