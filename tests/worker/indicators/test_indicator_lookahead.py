"""No indicator looks ahead: the value at bar t depends only on bars up to t.

Computing on the series cut after bar t must reproduce every value up to t exactly. TA-Lib's
recursive indicators (EMA family, Wilder smoothing) seed from the first window, so a cut at
the end changes nothing before it; our own kernels (lane-parallel scan, blocked rolling sums)
must be just as exact whatever the length.
"""

from __future__ import annotations

import pandas as pd
import pytest

from ktrdr_core.catalog.indicators import INDICATORS
from ktrdr_worker.indicators import compute
from tests.support.indicator_reference import synthetic_ohlcv

CUTS = (40, 257, 1000, 1999, 3998)


@pytest.fixture(scope="module")
def series(real_frames) -> dict[str, pd.DataFrame]:
    return {"EURUSD": real_frames["EURUSD"], "synthetic": synthetic_ohlcv(4000, seed=3)}


@pytest.mark.parametrize("data", ["EURUSD", "synthetic"])
@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_values_up_to_a_cut_do_not_depend_on_later_bars(name, data, series) -> None:
    frame = series[data]
    full = compute(name, frame)
    for cut in CUTS:
        truncated = compute(name, frame.iloc[: cut + 1])
        pd.testing.assert_frame_equal(truncated, full.iloc[: cut + 1], check_exact=True)
    assert full.iloc[CUTS[-1]].notna().all(), "the comparison must cover real values"


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_changing_a_future_bar_leaves_the_past_unchanged(name, series) -> None:
    """The same property seen from the other side: replace bars t + 1 onwards only."""
    frame = series["synthetic"]
    cut = 1500
    shocked = frame.copy()
    other_future = synthetic_ohlcv(len(frame), seed=99)
    shocked.iloc[cut + 1 :] = other_future.iloc[cut + 1 :].to_numpy()
    before = compute(name, frame).iloc[: cut + 1]
    after = compute(name, shocked).iloc[: cut + 1]
    pd.testing.assert_frame_equal(after, before, check_exact=True)
    # ... while the future itself did change (the test can fail).
    assert not compute(name, shocked).iloc[cut + 40 :].equals(compute(name, frame).iloc[cut + 40 :])
