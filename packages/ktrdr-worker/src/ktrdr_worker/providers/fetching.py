"""The four fetch modes and the merge of fetched bars into stored ones (pure logic).

``plan_windows`` turns a mode, the stored bars and the requested range into the ranges to ask
the provider for; ``merge`` folds the fetched bars into the stored ones. A fetched bar for a
time already stored never replaces it: when the two disagree, the stored one is kept and the
disagreement is reported, so a provider's restated history cannot rewrite data silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ktrdr_core.market_data.gaps import gap_report
from ktrdr_core.protocol import FetchMode
from ktrdr_core.timeframes import Timeframe
from ktrdr_worker.providers.base import Bar, ProviderError, iso

__all__ = ["MAX_EXAMPLES", "Merge", "Window", "merge", "plan_windows"]

MAX_EXAMPLES = 5  # conflicting bars shown in a summary; all are counted
_FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Window:
    """Bar opens in ``[start, end)``, epoch seconds; ``missing_bars``: for a repaired hole,
    the bars the gap report counted missing there."""

    start: int
    end: int
    missing_bars: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": iso(self.start), "end": iso(self.end)}
        if self.missing_bars is not None:
            out["missing_bars"] = self.missing_bars
        return out


def _floor(epoch_s: int, timeframe: Timeframe) -> int:
    return epoch_s - (epoch_s - timeframe.origin) % timeframe.seconds


def _ceil(epoch_s: int, timeframe: Timeframe) -> int:
    floored = _floor(epoch_s, timeframe)
    return floored if floored == epoch_s else floored + timeframe.seconds


def plan_windows(
    mode: FetchMode,
    timeframe: Timeframe,
    stored: list[int],
    *,
    start: int | None,
    end: int | None,
    now: int,
    exchange: str | None = None,
) -> list[Window]:
    """The ranges to fetch, oldest first (empty: nothing to do).

    ``stored``: bar opens already stored (increasing epoch seconds). ``start``/``end``: the
    requested range (epoch seconds; ``end`` None means ``now``). ``exchange``: the series'
    exchange, whose sessions say which holes a repair fills (None: the heuristic gap
    report's unexpected ones). Raises ValueError when the mode cannot run on what is stored.
    """
    end_at = _ceil(min(end if end is not None else now, now), timeframe)
    begin = _ceil(start, timeframe) if start is not None else None
    if mode is FetchMode.FULL:
        if begin is None:
            raise ValueError("mode full needs a start")
        return [Window(begin, end_at)] if begin < end_at else []
    if not stored:
        raise ValueError(f"mode {mode} needs stored data; fetch with mode full and a start first")
    step = timeframe.seconds
    if mode is FetchMode.TAIL:
        first = stored[-1] + step
        return [Window(first, end_at)] if first < end_at else []
    if mode is FetchMode.BACKFILL:
        if begin is None:
            raise ValueError("mode backfill needs a start before the first stored bar")
        if begin >= stored[0]:
            raise ValueError(
                f"backfill start {iso(begin)} is not before the first stored bar {iso(stored[0])}"
            )
        return [Window(begin, stored[0])]
    if mode is FetchMode.REPAIR:
        if exchange is not None:
            from ktrdr_worker.sessions import exact_gap_report

            holes = exact_gap_report(stored, timeframe, exchange, max_listed=1_000_000).unexpected
        else:
            holes = gap_report(stored, timeframe, max_listed=1_000_000).unexpected  # type: ignore[assignment]
        windows = []
        for gap in holes:
            a, b = int(gap.start.timestamp()), int(gap.end.timestamp())
            a = max(a, begin) if begin is not None else a
            b = min(b, end_at) if end is not None else b
            if a < b:
                windows.append(Window(a, b, gap.missing_bars))
        return windows
    raise ValueError(f"unknown mode {mode!r}")


@dataclass
class Merge:
    """Stored bars with the fetched ones folded in.

    ``added``: fetched bars at times not stored before; ``overlapping``: fetched bars at
    stored times; ``conflicts``: those of them whose values differ (the stored ones kept);
    ``examples``: the first few conflicts, stored and fetched values side by side.
    """

    bars: list[Bar]
    added: int = 0
    overlapping: int = 0
    conflicts: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


def _same(a: Bar, b: Bar) -> bool:
    # Prices round-trip exactly through the canonical CSV; a tiny relative tolerance keeps
    # float noise (volume sums on the provider's side) from counting as a disagreement.
    return all(
        math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) for x, y in zip(a[1:], b[1:], strict=True)
    )


def merge(stored: list[Bar], fetched: list[Bar]) -> Merge:
    """Fold ``fetched`` into ``stored`` (both oldest first); stored values always win."""
    by_time = {bar.time: bar for bar in stored}
    result = Merge(bars=[])
    new: list[Bar] = []
    for bar in fetched:
        old = by_time.get(bar.time)
        if old is None:
            new.append(bar)
            by_time[bar.time] = bar
            continue
        result.overlapping += 1
        if not _same(old, bar):
            result.conflicts += 1
            if len(result.examples) < MAX_EXAMPLES:
                result.examples.append(
                    {
                        "timestamp": iso(bar.time),
                        "stored": dict(zip(_FIELDS, old[1:], strict=True)),
                        "fetched": dict(zip(_FIELDS, bar[1:], strict=True)),
                    }
                )
    result.added = len(new)
    result.bars = sorted(by_time.values(), key=lambda b: b.time)
    return result


def canonical_csv(bars: list[Bar], timeframe: Timeframe, where: str) -> str:
    """The bars as ktrdr's canonical CSV, through the same validation every import passes
    (so the backend stores these bytes unchanged)."""
    from ktrdr_core.market_data import CANONICAL_HEADER, validate_ohlcv_csv

    lines = [CANONICAL_HEADER]
    lines += [
        f"{iso(b.time)},{b.open!r},{b.high!r},{b.low!r},{b.close!r},{b.volume!r}" for b in bars
    ]
    result = validate_ohlcv_csv("\n".join(lines) + "\n", timeframe)
    if not result.ok:
        first = result.issues[0] if result.issues else "?"
        raise ProviderError(f"{where}: the merged bars fail validation: {first}")
    return result.canonical_csv()


def read_bars(path_or_text: Any, timeframe: Timeframe) -> list[Bar]:
    """Bars of a canonical CSV (a stored dataset version)."""
    from ktrdr_core.market_data import validate_ohlcv_csv

    result = validate_ohlcv_csv(path_or_text, timeframe)
    result.raise_for_errors()
    return [
        Bar(t, o, h, low, c, v)
        for t, o, h, low, c, v in zip(
            result.timestamps,
            result.open,
            result.high,
            result.low,
            result.close,
            result.volume,
            strict=True,
        )
    ]
