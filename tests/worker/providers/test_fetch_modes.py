"""The four fetch modes (which ranges are asked for) and the merge (stored bars win)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ktrdr_core.protocol import FetchMode
from ktrdr_core.timeframes import Timeframe
from ktrdr_worker.providers.base import Bar
from ktrdr_worker.providers.fetching import (
    MAX_EXAMPLES,
    Window,
    canonical_csv,
    merge,
    plan_windows,
    read_bars,
)

T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
H = 3600
NOW = T0 + 1000 * H + 1800  # half way through bar 1000
STORED = [T0 + i * H for i in range(100, 200)]  # bars 100..199, no holes


def plan(mode, stored=STORED, *, start=None, end=None):
    return plan_windows(FetchMode(mode), Timeframe.H1, stored, start=start, end=end, now=NOW)


def test_full_asks_for_the_range_snapped_to_bar_opens():
    assert plan("full", [], start=T0 + 10, end=T0 + 5 * H) == [Window(T0 + H, T0 + 5 * H)]
    assert plan("full", start=T0) == [Window(T0, T0 + 1001 * H)]  # end: now, rounded up
    with pytest.raises(ValueError, match="mode full needs a start"):
        plan("full")


def test_tail_starts_after_the_last_stored_bar():
    assert plan("tail") == [Window(T0 + 200 * H, T0 + 1001 * H)]
    assert plan("tail", end=T0 + 300 * H) == [Window(T0 + 200 * H, T0 + 300 * H)]
    assert plan("tail", end=T0 + 150 * H) == []  # already up to date
    with pytest.raises(ValueError, match="mode tail needs stored data"):
        plan("tail", [])


def test_backfill_ends_at_the_first_stored_bar():
    assert plan("backfill", start=T0) == [Window(T0, T0 + 100 * H)]
    with pytest.raises(ValueError, match="not before the first stored bar 2024-01-05T04:00:00Z"):
        plan("backfill", start=T0 + 100 * H)
    with pytest.raises(ValueError, match="backfill needs a start"):
        plan("backfill")


def test_repair_asks_only_for_the_unexpected_holes():
    # Crypto trades around the clock: every missing hour is unexpected.
    holes = [t for t in STORED if not (120 * H <= t - T0 < 123 * H or t - T0 == 150 * H)]
    assert plan("repair", holes) == [
        Window(T0 + 120 * H, T0 + 123 * H, 3),
        Window(T0 + 150 * H, T0 + 151 * H, 1),
    ]
    # A range narrows the repair to the holes inside it.
    assert plan("repair", holes, start=T0 + 140 * H) == [Window(T0 + 150 * H, T0 + 151 * H, 1)]
    assert plan("repair") == []  # no holes: nothing to ask for


def test_repair_leaves_weekends_of_a_weekday_market_alone():
    # FX-like hourly data: weekdays only. Weekends are explained; a Wednesday hole is not.
    monday = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    stamps = [
        monday + d * 86_400 + h * H
        for d in range(21)
        for h in range(24)
        if (d % 7) < 5 and not (d == 9 and 10 <= h < 13)
    ]
    windows = plan_windows(FetchMode.REPAIR, Timeframe.H1, stamps, start=None, end=None,
                           now=stamps[-1] + 10 * H)  # fmt: skip
    assert windows == [Window(monday + 9 * 86_400 + 10 * H, monday + 9 * 86_400 + 13 * H, 3)]


def test_repair_with_an_exchange_asks_for_the_sessions_the_heuristic_calls_holidays():
    # Daily NYSE-like bars of May 2012 (Memorial Day, the 28th, closed) less Wednesday the
    # 16th: a lone missing weekday, a holiday to the heuristic, a hole to the exchange.
    days = [datetime(2012, 5, d, tzinfo=UTC) for d in range(1, 32)]
    stamps = [int(d.timestamp()) for d in days if d.weekday() < 5 and d.day not in (16, 28)]
    now = stamps[-1] + 3 * 86_400
    heuristic = plan_windows(FetchMode.REPAIR, Timeframe.D1, stamps, start=None, end=None,
                             now=now)  # fmt: skip
    exact = plan_windows(FetchMode.REPAIR, Timeframe.D1, stamps, start=None, end=None, now=now,
                         exchange="XNYS")  # fmt: skip
    assert heuristic == []
    wednesday = int(datetime(2012, 5, 16, tzinfo=UTC).timestamp())
    assert exact == [Window(wednesday, wednesday + 86_400, 1)]


def bar(t: int, close: float = 10.0, volume: float = 5.0) -> Bar:
    return Bar(t, 10.0, 11.0, 9.0, close, volume)


def test_merge_adds_new_bars_and_keeps_stored_ones_that_agree():
    stored = [bar(T0), bar(T0 + 2 * H)]
    result = merge(stored, [bar(T0 + H), bar(T0 + 2 * H), bar(T0 + 3 * H)])
    assert [b.time for b in result.bars] == [T0, T0 + H, T0 + 2 * H, T0 + 3 * H]
    assert (result.added, result.overlapping, result.conflicts) == (2, 1, 0)


def test_disagreeing_refetched_bars_are_reported_never_written():
    stored = [bar(T0 + i * H) for i in range(10)]
    fetched = [bar(T0 + i * H, close=10.5) for i in range(8)] + [bar(T0 + 10 * H)]
    result = merge(stored, fetched)
    assert result.conflicts == 8 and result.overlapping == 8 and result.added == 1
    assert [b.close for b in result.bars[:10]] == [10.0] * 10  # stored values kept
    assert len(result.examples) == MAX_EXAMPLES
    assert result.examples[0] == {
        "timestamp": "2024-01-01T00:00:00Z",
        "stored": {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.0, "volume": 5.0},
        "fetched": {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 5.0},
    }


def test_merge_tolerates_float_noise_only():
    stored = [bar(T0, volume=1234.56789)]
    assert merge(stored, [bar(T0, volume=1234.56789 * (1 + 1e-12))]).conflicts == 0
    assert merge(stored, [bar(T0, volume=1234.568)]).conflicts == 1


def test_canonical_csv_round_trips_through_validation(tmp_path):
    bars = [Bar(T0 + i * H, 42000.5, 42100.0, 41900.25, 42050.0, 12.5) for i in range(3)]
    text = canonical_csv(bars, Timeframe.H1, "test")
    assert text.splitlines()[:2] == [
        "timestamp,open,high,low,close,volume",
        "2024-01-01T00:00:00Z,42000.5,42100,41900.25,42050,12.5",
    ]
    path = tmp_path / "x.csv"
    path.write_text(text)
    assert read_bars(path, Timeframe.H1) == bars
