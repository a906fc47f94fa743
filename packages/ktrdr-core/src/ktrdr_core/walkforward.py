"""Walk-forward evaluation, the pure parts: cutting a date range into folds, and how stable a
feature-importance ranking stays from fold to fold.

A walk-forward trains a model on one window of history and backtests it on the window right
after, then moves on; stitched together, the test windows form an out-of-sample record that a
single train/test split cannot flatter. The backend (``ktrdr_api.walkforward``) runs each
fold as child operations; the report job (``ktrdr_worker.walkforward``) stitches them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from itertools import combinations

from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import FoldPlan, WindowMode

__all__ = [
    "MIN_TEST_DAYS",
    "WalkforwardError",
    "embargo_days",
    "plan_folds",
    "ranking_stability",
    "spearman",
]

MIN_TEST_DAYS = 2
"""A fold's test window must hold at least this many days (shorter says nothing)."""


class WalkforwardError(KtrdrError):
    """A walk-forward cannot be planned as asked; the message says what to change."""


def embargo_days(
    embargo_bars: int, first: date, last: date, rows: int, *, exchange_bars: int | None = None
) -> int:
    """Whole days covering ``embargo_bars`` bars at the average bar spacing over [first, last].

    The spacing is the span's days over its bars: the bars the exchange's sessions hold there
    (``exchange_bars``, from the dataset's exact gap report) when the data names an exchange,
    else the data's own ``rows``. Either way weekends and holidays count in, as the calendar
    time that ``embargo_bars`` bars take.
    """
    if embargo_bars <= 0:
        return 0
    span_days = (last - first).days + 1
    bars = exchange_bars if exchange_bars is not None else rows
    per_bar = span_days / max(bars - 1, 1)
    return max(1, math.ceil(embargo_bars * per_bar))


def plan_folds(
    first: date,
    last: date,
    *,
    folds: int,
    window: WindowMode,
    train_blocks: int,
    embargo: int,
) -> list[FoldPlan]:
    """Cut [first, last] (whole days, inclusive) into ``folds`` train/test pairs.

    The days are split into ``folds + train_blocks`` blocks of equal length (the last test
    block takes the remainder). Fold *i* tests on block ``train_blocks + i``; it trains on
    the ``train_blocks`` blocks before that (``rolling``) or on every day before it
    (``expanding``), less ``embargo`` days right before the test window.
    """
    if folds < 2:
        raise WalkforwardError(f"folds must be at least 2, got {folds}")
    if train_blocks < 1:
        raise WalkforwardError(f"train_blocks must be at least 1, got {train_blocks}")
    if last < first:
        raise WalkforwardError(f"the range is empty: {first} is after {last}")
    days = (last - first).days + 1
    blocks = folds + train_blocks
    block = days // blocks
    if block < MIN_TEST_DAYS:
        raise WalkforwardError(
            f"{days} days cannot hold {folds} folds with a training window of {train_blocks} "
            f"test windows: each window would be {block} day(s), at least {MIN_TEST_DAYS} "
            f"are needed; use fewer folds or a smaller --train-blocks, or more data"
        )
    if embargo >= block * train_blocks:
        raise WalkforwardError(
            f"an embargo of {embargo} days swallows the whole training window "
            f"({block * train_blocks} days); use fewer folds or more data"
        )
    plans = []
    for index in range(folds):
        test_start = first + timedelta(days=block * (train_blocks + index))
        is_last = index == folds - 1
        test_end = last if is_last else test_start + timedelta(days=block - 1)
        train_start = (
            first if window == WindowMode.EXPANDING else first + timedelta(days=block * index)
        )
        train_end = test_start - timedelta(days=embargo + 1)
        plans.append(
            FoldPlan(
                index=index,
                train_start=train_start,
                train_end=train_end,
                test_start=test_start,
                test_end=test_end,
            )
        )
    return plans


def _ranks(values: Mapping[str, float], names: Sequence[str]) -> list[float]:
    """Rank of each name by descending value (1 = most important); ties share the mean."""
    order = sorted(names, key=lambda name: -values.get(name, 0.0))
    ranks: dict[str, float] = {}
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values.get(order[j + 1], 0.0) == values.get(order[i], 0.0):
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return [ranks[name] for name in names]


def spearman(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Spearman's rank correlation of two importance tables over their common features."""
    names = sorted(set(a) & set(b))
    if len(names) < 2:
        return math.nan
    ra, rb = _ranks(a, names), _ranks(b, names)
    mean = (len(names) + 1) / 2
    cov = sum((x - mean) * (y - mean) for x, y in zip(ra, rb, strict=True))
    var_a = sum((x - mean) ** 2 for x in ra)
    var_b = sum((y - mean) ** 2 for y in rb)
    if var_a == 0 or var_b == 0:
        return math.nan
    return cov / math.sqrt(var_a * var_b)


def ranking_stability(importances: Sequence[Mapping[str, float]], top: int = 5) -> dict:
    """How much the folds agree on which features matter.

    Returns ``mean_spearman`` (mean rank correlation over every pair of folds; 1 = the same
    order every time, about 0 = unrelated), ``min_spearman``, and ``features``: for the
    ``top`` features by mean importance, their rank in each fold and how many folds put them
    in the top ``top``.
    """
    tables = [t for t in importances if t]
    pairs = [spearman(a, b) for a, b in combinations(tables, 2)]
    finite = [p for p in pairs if not math.isnan(p)]
    names = sorted({name for table in tables for name in table})
    mean_importance = {
        name: sum(table.get(name, 0.0) for table in tables) / len(tables) for name in names
    }
    leaders = sorted(names, key=lambda name: -mean_importance[name])[:top]
    per_fold_ranks = [dict(zip(names, _ranks(table, names), strict=True)) for table in tables]
    return {
        "folds": len(tables),
        "mean_spearman": sum(finite) / len(finite) if finite else None,
        "min_spearman": min(finite) if finite else None,
        "features": [
            {
                "feature": name,
                "mean_importance": mean_importance[name],
                "ranks": [ranks[name] for ranks in per_fold_ranks],
                "folds_in_top": sum(ranks[name] <= top for ranks in per_fold_ranks),
            }
            for name in leaders
        ],
    }
