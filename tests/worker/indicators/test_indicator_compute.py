"""compute(): parameter checking against the catalog, defaults, input columns, odd lengths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_core.catalog.indicators import INDICATORS
from ktrdr_worker.indicators import KERNELS, compute
from tests.support.indicator_reference import synthetic_ohlcv


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_ohlcv(500, seed=5)


def test_registry_lists_one_kernel_per_catalog_entry() -> None:
    assert sorted(KERNELS) == sorted(INDICATORS)
    assert {k.backend for k in KERNELS.values()} == {"talib", "native"}
    assert all(k.name == name for name, k in KERNELS.items())


def test_missing_parameters_take_their_catalog_defaults(frame) -> None:
    explicit = compute("macd", frame, fast=12, slow=26, signal=9)
    pd.testing.assert_frame_equal(compute("macd", frame), explicit)
    partial = compute("macd", frame, fast=5)
    pd.testing.assert_frame_equal(partial, compute("macd", frame, fast=5, slow=26, signal=9))
    assert not partial.equals(explicit)


def test_float_parameters_accept_integers(frame) -> None:
    pd.testing.assert_frame_equal(
        compute("bbands", frame, std=2), compute("bbands", frame, std=2.0)
    )


def test_numpy_integers_are_accepted(frame) -> None:
    pd.testing.assert_frame_equal(
        compute("rsi", frame, period=np.int64(9)), compute("rsi", frame, period=9)
    )


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("rsi", {"periods": 14}, "'periods'"),
        ("rsi", {"period": 14.0}, "expected int"),
        ("rsi", {"period": "14"}, "expected int"),
        ("rsi", {"period": True}, "expected int"),
        ("rsi", {"period": 1}, "out of bounds"),
        ("rsi", {"period": 10_001}, "out of bounds"),
        ("bbands", {"std": "2"}, "expected float"),
        ("bbands", {"std": float("nan")}, "finite"),
        ("bbands", {"std": 0.0}, "out of bounds"),
        ("macd", {"fast": 30}, "must be less than 'slow'"),
        ("ultosc", {"period2": 40}, "must be less than 'period3'"),
        ("sar", {"acceleration": 0.5, "maximum": 0.2}, "must be less than 'maximum'"),
        ("obv", {"period": 3}, "declared parameters: none"),
    ],
)
def test_bad_parameters_are_refused_naming_indicator_and_parameter(
    frame, name, params, message
) -> None:
    with pytest.raises(ValueError) as error:
        compute(name, frame, **params)
    text = str(error.value)
    assert repr(name) in text
    assert message in text
    assert any(p in text for p in params)


def test_unknown_indicator_is_refused_with_close_names(frame) -> None:
    with pytest.raises(ValueError, match=r"unknown indicator 'macdd'.*did you mean 'macd'"):
        compute("macdd", frame)


def test_a_missing_input_column_is_named(frame) -> None:
    with pytest.raises(ValueError, match=r"'obv' needs column 'volume'"):
        compute("obv", frame.drop(columns="volume"))


def test_integer_columns_are_read_as_float(frame) -> None:
    as_int = frame.assign(volume=frame["volume"].round().astype("int64"))
    as_float = frame.assign(volume=frame["volume"].round())
    pd.testing.assert_frame_equal(compute("obv", as_int), compute("obv", as_float))


@pytest.mark.parametrize("length", [0, 1, 3])
@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_series_shorter_than_the_warm_up_give_all_nan(name, length, frame) -> None:
    out = compute(name, frame.iloc[:length])
    assert list(out.columns) == list(INDICATORS[name].outputs)
    assert len(out) == length
    if name not in {"bop", "obv", "ad", "sar", "trange"}:  # defined from the first bars
        assert out.isna().all().all()
