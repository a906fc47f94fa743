"""Cutting a range into walk-forward folds, and the stability of a feature ranking."""

from __future__ import annotations

import itertools
import math
from datetime import date, timedelta

import pytest

from ktrdr_core.protocol import WindowMode
from ktrdr_core.walkforward import (
    WalkforwardError,
    embargo_days,
    plan_folds,
    ranking_stability,
    spearman,
)

FIRST, LAST = date(2020, 1, 1), date(2020, 12, 31)  # 366 days


def test_rolling_folds_slide_a_fixed_window_and_tests_tile_the_end_of_the_range():
    folds = plan_folds(FIRST, LAST, folds=4, window=WindowMode.ROLLING, train_blocks=2, embargo=3)
    block = 366 // 6
    assert [f.index for f in folds] == [0, 1, 2, 3]
    for i, fold in enumerate(folds):
        assert fold.test_start == FIRST + timedelta(days=block * (2 + i))
        assert fold.train_start == FIRST + timedelta(days=block * i)
        # three embargo days between the last training day and the first test day
        assert (fold.test_start - fold.train_end).days == 4
    for before, after in itertools.pairwise(folds):
        assert after.test_start == before.test_end + timedelta(days=1)
    assert folds[-1].test_end == LAST  # the last window takes the remainder


def test_expanding_folds_always_train_from_the_first_day():
    folds = plan_folds(FIRST, LAST, folds=3, window=WindowMode.EXPANDING, train_blocks=1, embargo=0)
    assert {f.train_start for f in folds} == {FIRST}
    assert [f.train_end < f.test_start for f in folds] == [True] * 3
    lengths = [(f.train_end - f.train_start).days for f in folds]
    assert lengths == sorted(lengths) and len(set(lengths)) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"folds": 1}, "folds must be at least 2"),
        ({"folds": 200}, "366 days cannot hold 200 folds"),
        ({"embargo": 500}, "swallows the whole training window"),
    ],
)
def test_impossible_plans_say_what_to_change(kwargs, message):
    arguments = {"folds": 4, "window": WindowMode.ROLLING, "train_blocks": 2, "embargo": 0}
    with pytest.raises(WalkforwardError, match=message):
        plan_folds(FIRST, LAST, **(arguments | kwargs))


def test_the_embargo_in_days_covers_the_bars_at_the_data_spacing():
    # Hourly bars around the clock: 24 bars a day.
    assert embargo_days(48, FIRST, FIRST + timedelta(days=99), 100 * 24) == 3  # 2 days, rounded up
    # Daily bars with weekends: 252 bars over 365 days -> 5 bars span 7.3 calendar days.
    assert embargo_days(5, FIRST, LAST, 253) == 8
    assert embargo_days(0, FIRST, LAST, 253) == 0


def test_spearman_and_ranking_stability():
    a = {"x": 3.0, "y": 2.0, "z": 1.0}
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, {"x": 1.0, "y": 2.0, "z": 3.0}) == pytest.approx(-1.0)
    assert math.isnan(spearman(a, {"x": 1.0}))
    stability = ranking_stability([a, a, {"x": 3.0, "y": 1.0, "z": 2.0}], top=2)
    assert stability["folds"] == 3
    assert stability["mean_spearman"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    assert stability["min_spearman"] == pytest.approx(0.5)
    assert [f["feature"] for f in stability["features"]] == ["x", "y"]
    assert stability["features"][0]["ranks"] == [1.0, 1.0, 1.0]
    assert stability["features"][1]["folds_in_top"] == 2
