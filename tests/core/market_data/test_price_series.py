"""A dataset's price chart: one candle per bar up to MAX_CANDLES, then buckets that keep the
first open, the extremes, the last close and the summed volume."""

from __future__ import annotations

from ktrdr_core.market_data.prices import price_series


def _csv(n: int) -> list[str]:
    lines = ["timestamp,open,high,low,close,volume\n"]
    for i in range(n):
        lines.append(
            f"2024-01-01T{i // 60:02d}:{i % 60:02d}:00Z,{i},{i + 0.5},{i - 0.5},{i + 0.25},1\n"
        )
    return lines


def test_few_bars_are_drawn_one_candle_each():
    series = price_series(_csv(10), rows=10, max_candles=100)
    assert series["bars"] == 10 and series["bars_per_candle"] == 1
    assert series["candles"][0] == [1704067200, 0.0, 0.5, -0.5, 0.25, 1.0]


def test_many_bars_are_bucketed_keeping_the_extremes():
    series = price_series(_csv(1000), rows=1000, max_candles=100)
    assert series["bars_per_candle"] == 10 and len(series["candles"]) == 100
    first = series["candles"][0]
    assert first[1:] == [0.0, 9.5, -0.5, 9.25, 10.0]  # open of bar 0 … close of bar 9
    assert max(c[2] for c in series["candles"]) == 999.5
    assert min(c[3] for c in series["candles"]) == -0.5
