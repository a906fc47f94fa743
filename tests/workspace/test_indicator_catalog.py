"""The indicator catalog (ktrdr-core) and the kernels (ktrdr-worker) agree, entry for entry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_core.catalog.indicators import INDICATORS, get_indicator, resolve_params
from ktrdr_worker.indicators import KERNELS, compute

OHLCV = ("open", "high", "low", "close", "volume")

# The names, parameters and outputs strategies are written against.
REQUIRED = {
    "sma": (("period",), ("value",)),
    "ema": (("period",), ("value",)),
    "wma": (("period",), ("value",)),
    "rsi": (("period",), ("value",)),
    "macd": (("fast", "slow", "signal"), ("macd", "signal", "hist")),
    "bbands": (("period", "std"), ("upper", "middle", "lower")),
    "atr": (("period",), ("value",)),
    "adx": (("period",), ("adx", "plus_di", "minus_di")),
    "stoch": (("k_period", "k_smooth", "d_period"), ("k", "d")),
    "cci": (("period",), ("value",)),
    "willr": (("period",), ("value",)),
    "mfi": (("period",), ("value",)),
    "roc": (("period",), ("value",)),
    "mom": (("period",), ("value",)),
    "obv": ((), ("value",)),
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    spread = np.abs(rng.normal(0, 0.005, n)) * close
    return pd.DataFrame(
        {
            "open": close * (1 + rng.normal(0, 0.002, n)),
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": rng.uniform(1e3, 1e4, n),
        },
        index=pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC"),
    )


def test_every_catalog_entry_has_a_kernel_and_every_kernel_an_entry() -> None:
    assert sorted(set(INDICATORS) - set(KERNELS)) == [], "catalog entries without a kernel"
    assert sorted(set(KERNELS) - set(INDICATORS)) == [], "kernels without a catalog entry"


def test_catalog_covers_at_least_thirty_indicators_in_all_four_categories() -> None:
    assert len(INDICATORS) >= 30
    assert {spec.category for spec in INDICATORS.values()} == {
        "trend",
        "momentum",
        "volatility",
        "volume",
    }


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_required_indicators_have_exact_parameters_and_outputs(name) -> None:
    params, outputs = REQUIRED[name]
    spec = get_indicator(name)
    assert tuple(p.name for p in spec.params) == params
    assert spec.outputs == outputs


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_catalog_entry_is_well_formed(name) -> None:
    spec = INDICATORS[name]
    assert spec.name == name and spec.description
    assert spec.outputs and len(set(spec.outputs)) == len(spec.outputs)
    assert spec.inputs and set(spec.inputs) <= set(OHLCV)
    names = [p.name for p in spec.params]
    assert len(set(names)) == len(names)
    for p in spec.params:
        assert p.type in ("int", "float") and p.description
        assert p.minimum <= p.default <= p.maximum
        if p.type == "int":
            assert all(isinstance(v, int) for v in (p.default, p.minimum, p.maximum))
    for low, high in spec.less_than:
        assert {low, high} <= set(names)
    # The defaults must pass the catalog's own checks.
    assert resolve_params(name, {}) == {p.name: p.default for p in spec.params}


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_kernel_outputs_are_the_catalog_outputs(name, frame) -> None:
    out = compute(name, frame)
    assert tuple(out.columns) == INDICATORS[name].outputs
    assert out.index.equals(frame.index)
    assert all(dtype == np.float64 for dtype in out.dtypes)
    assert out.iloc[-1].notna().all(), "defaults must give values on 400 bars"


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_kernel_reads_only_the_declared_input_columns(name, frame) -> None:
    needed = frame[list(INDICATORS[name].inputs)]
    pd.testing.assert_frame_equal(compute(name, needed), compute(name, frame))


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_each_declared_parameter_is_accepted_from_minimum_to_maximum(name, frame) -> None:
    spec = INDICATORS[name]
    defaults = compute(name, frame)
    for p in spec.params:
        pd.testing.assert_frame_equal(compute(name, frame, **{p.name: p.default}), defaults)
        for value in (p.minimum, p.maximum):
            params = {**resolve_params(name, {}), p.name: value}
            violated = [(a, b) for a, b in spec.less_than if not params[a] < params[b]]
            if violated:
                with pytest.raises(ValueError, match="must be less than"):
                    compute(name, frame, **{p.name: value})
            else:
                out = compute(name, frame, **{p.name: value})
                assert tuple(out.columns) == spec.outputs and len(out) == len(frame)


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_values_just_outside_the_bounds_are_refused(name, frame) -> None:
    for p in INDICATORS[name].params:
        step = 1 if p.type == "int" else 1e-9 * max(1.0, abs(p.maximum))
        for value in (p.minimum - step, p.maximum + step):
            with pytest.raises(ValueError, match=rf"'{name}' parameter '{p.name}'.*out of bounds"):
                compute(name, frame, **{p.name: value})


def test_unknown_names_get_suggestions() -> None:
    with pytest.raises(ValueError, match="did you mean 'bbands'"):
        get_indicator("bbandz")
    with pytest.raises(ValueError, match="known indicators: ad, adosc"):
        get_indicator("nothing_like_it")
