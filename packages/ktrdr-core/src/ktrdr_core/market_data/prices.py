"""A dataset version's price chart, as the dashboard draws it: candles bucketed for a screen.

Pure Python (the backend serves it, and the backend computes nothing numeric with numpy):
one pass over a canonical CSV (``timestamp,open,high,low,close,volume``). With more bars than
``max_candles``, consecutive bars are merged into one candle per bucket of
``ceil(rows / max_candles)`` bars: the first open, the highest high, the lowest low, the last
close, the volume summed, at the bucket's first bar time. So every extreme of the price
survives; what goes is the detail inside a bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

PRICE_SERIES_FORMAT = "ktrdr-price-series/1"
MAX_CANDLES = 2000
"""Most candles a price chart gets (a wide screen's pixels)."""


def price_series(lines: Iterable[str], rows: int, max_candles: int = MAX_CANDLES) -> dict[str, Any]:
    """The bucketed candles of a canonical CSV's ``lines`` (header first) holding ``rows``
    bars: ``{"format", "bars", "bars_per_candle", "candles": [[unix seconds, open, high, low,
    close, volume], ...]}``."""
    per = max(1, math.ceil(rows / max_candles))
    candles: list[list[float]] = []
    current: list[float] | None = None
    seen = 0
    iterator = iter(lines)
    next(iterator, None)  # the header
    for line in iterator:
        if not line.strip():
            continue
        stamp, o, h, lo, c, v = line.rstrip("\n").split(",")
        high, low, close, volume = float(h), float(lo), float(c), float(v)
        if seen % per == 0:
            current = [
                datetime.fromisoformat(stamp).timestamp(),
                float(o),
                high,
                low,
                close,
                volume,
            ]
            candles.append(current)
        else:
            assert current is not None
            current[2] = max(current[2], high)
            current[3] = min(current[3], low)
            current[4] = close
            current[5] += volume
        seen += 1
    for candle in candles:
        candle[0] = int(candle[0])
    return {
        "format": PRICE_SERIES_FORMAT,
        "bars": seen,
        "bars_per_candle": per,
        "candles": candles,
    }
