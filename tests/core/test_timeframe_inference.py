"""One rule for a series' bar size (core's ``bar_seconds``), used by the importer's spacing
check, the worker's calendars and the label report alike."""

from __future__ import annotations

import pytest

from ktrdr_core.timeframes import Timeframe, bar_seconds, timeframe_named


def test_the_bar_size_is_the_median_spacing():
    # Hourly bars with a night gap after every two bars: gaps are the minority of spacings.
    assert bar_seconds([3600, 3600, 79200, 3600, 3600, 79200, 3600]) == 3600
    # The rule is the median, not the most common spacing (here 3 h).
    assert bar_seconds([3600] * 3 + [7200] * 2 + [10800] * 4) == 7200


def test_too_few_bars_or_bars_that_do_not_increase_are_refused():
    with pytest.raises(ValueError, match="fewer than 2 bars"):
        bar_seconds([])
    with pytest.raises(ValueError, match="do not strictly increase"):
        bar_seconds([0, 0, -60])


def test_a_bar_size_is_named_only_when_a_timeframe_has_it():
    assert timeframe_named(3600) is Timeframe.H1
    assert timeframe_named(7200) is None
