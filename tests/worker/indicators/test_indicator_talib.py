"""TA-Lib-backed kernels return exactly what TA-Lib returns, column for column, bar for bar.

Equality on real data with default and non-default parameters proves the parameter mapping,
the output naming and order, and the alignment (NaN warm-up bars in the same places).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_core.catalog.indicators import INDICATORS
from ktrdr_worker.indicators import KERNELS, compute
from tests.support.indicator_reference import REAL_DATA, TALIB_DIRECT, arrays_of, varied_params

TALIB_BACKED = sorted(name for name, k in KERNELS.items() if k.backend == "talib")


def test_every_talib_backed_kernel_has_a_direct_talib_reference() -> None:
    assert set(TALIB_BACKED) == set(TALIB_DIRECT)
    assert len(TALIB_BACKED) >= 30


@pytest.mark.parametrize("variant", ["defaults", "varied"])
@pytest.mark.parametrize("data", REAL_DATA)
@pytest.mark.parametrize("name", TALIB_BACKED)
def test_talib_backed_kernel_equals_talib(name, data, variant, real_frames) -> None:
    frame = real_frames[data]
    spec = INDICATORS[name]
    params = (
        {p.name: p.default for p in spec.params} if variant == "defaults" else varied_params(spec)
    )
    ours = compute(name, frame) if variant == "defaults" else compute(name, frame, **params)
    expected = TALIB_DIRECT[name](arrays_of(frame), params)

    assert list(ours.columns) == list(expected)
    assert ours.index.equals(frame.index)
    for column, values in expected.items():
        got = ours[column].to_numpy()
        assert got.dtype == np.float64
        np.testing.assert_array_equal(np.isnan(got), np.isnan(values), err_msg=column)
        np.testing.assert_array_equal(got, values, err_msg=column)
    # Warm-up is a leading run of NaN and then real numbers: the alignment the model sees.
    assert ours.notna().any().all(), f"{name} produced no values on {data}"


def test_talib_emas_seed_from_their_first_window_so_a_prefix_is_unchanged(real_frames) -> None:
    """TA-Lib's EMA family starts from the series' first bars, not its last: truncating the
    series keeps every earlier value bit-identical (what the no-lookahead test relies on)."""
    frame = real_frames["GOOG"]
    for name in ("ema", "dema", "tema", "kama", "t3", "macd", "rsi", "adx", "atr", "trix"):
        full = compute(name, frame)
        prefix = compute(name, frame.iloc[:300])
        pd.testing.assert_frame_equal(prefix, full.iloc[:300], check_exact=True)
