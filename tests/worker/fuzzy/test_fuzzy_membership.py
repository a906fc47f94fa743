"""Membership kernels: hand-computed degrees, edges, open shoulders, bounds and NaN handling."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from ktrdr_core.catalog.membership import MEMBERSHIPS
from ktrdr_worker.fuzzy import KERNELS, MembershipError, membership

INF = math.inf


def test_triangular_hand_computed() -> None:
    x = [10, 20, 25, 30, 35, 40, 50]
    got = membership("triangular", x, [20, 30, 40])
    np.testing.assert_allclose(got, [0, 0, 0.5, 1, 0.5, 0, 0])


def test_triangular_asymmetric_flanks() -> None:
    got = membership("triangular", [0, 5, 10, 40, 70, 100], [0, 10, 100])
    np.testing.assert_allclose(got, [0, 0.5, 1, 60 / 90, 30 / 90, 0])


def test_triangular_vertical_edges() -> None:
    # a == b: the left edge is a step; the right flank still falls linearly.
    np.testing.assert_allclose(membership("triangular", [-1, 0, 5, 10], [0, 0, 10]), [0, 1, 0.5, 0])
    # b == c: the right edge is a step.
    np.testing.assert_allclose(
        membership("triangular", [0, 5, 10, 10.0001], [0, 10, 10]), [0, 0.5, 1, 0]
    )


def test_trapezoidal_hand_computed() -> None:
    x = [0, 10, 15, 20, 25, 30, 35, 40, 45]
    got = membership("trapezoidal", x, [10, 20, 30, 40])
    np.testing.assert_allclose(got, [0, 0, 0.5, 1, 1, 1, 0.5, 0, 0])


def test_trapezoidal_open_left_shoulder_is_one_all_the_way_down() -> None:
    got = membership("trapezoidal", [-1e12, 0, 20, 25, 30, 31], [None, 10, 20, 30])
    np.testing.assert_allclose(got, [1, 1, 1, 0.5, 0, 0])


def test_trapezoidal_open_right_shoulder_is_one_all_the_way_up() -> None:
    got = membership("trapezoidal", [69, 70, 75, 80, 100, 1e12], [70, 80, 90, None])
    np.testing.assert_allclose(got, [0, 0, 0.5, 1, 1, 1])


def test_gaussian_hand_computed() -> None:
    got = membership("gaussian", [50, 60, 40, 70], {"mean": 50, "sigma": 10})
    np.testing.assert_allclose(got, [1, math.exp(-0.5), math.exp(-0.5), math.exp(-2)])


def test_sigmoid_hand_computed_and_falling_with_negative_slope() -> None:
    got = membership("sigmoid", [0, 1, -1], [0, 2])
    np.testing.assert_allclose(got, [0.5, 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(2))])
    falling = membership("sigmoid", [-10, 0, 10], [0, -1])
    assert falling[0] > 0.99 and falling[1] == 0.5 and falling[2] < 0.01


def test_sigmoid_saturates_without_overflow() -> None:
    with np.errstate(all="raise"):
        got = membership("sigmoid", [-1e6, 1e6], [0, 50])
    np.testing.assert_array_equal(got, [0.0, 1.0])


CASES = [
    ("triangular", [20, 30, 40]),
    ("triangular", [0, 0, 10]),
    ("trapezoidal", [10, 20, 30, 40]),
    ("trapezoidal", [None, 10, 20, 30]),
    ("trapezoidal", [70, 80, 90, None]),
    ("gaussian", [50, 10]),
    ("sigmoid", [50, -0.3]),
]


@pytest.mark.parametrize(("kind", "params"), CASES)
def test_degrees_stay_in_unit_interval_and_nan_passes_through(kind: str, params: list) -> None:
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(40, 40, 10_000), [np.nan, -1e300, 1e300, 0.0, np.nan]])
    got = membership(kind, x, params)
    assert got.shape == x.shape and got.dtype == np.float64
    finite = ~np.isnan(x)
    assert np.all(np.isnan(got[~finite]))
    assert np.all((got[finite] >= 0) & (got[finite] <= 1))


def test_shape_is_kept_for_2d_input_and_pandas_series() -> None:
    import pandas as pd

    grid = np.array([[20, 25], [30, 35]], dtype=float)
    assert membership("triangular", grid, [20, 30, 40]).shape == (2, 2)
    series = pd.Series([25.0, np.nan])
    got = membership("triangular", series, [20, 30, 40])
    assert got[0] == 0.5 and np.isnan(got[1])


@pytest.mark.parametrize(
    ("kind", "params", "fragment"),
    [
        ("triangular", [30, 20, 40], "a ≤ b ≤ c"),
        ("triangular", [1, 1, 1], "a < c"),
        ("triangular", [1, 2], "needs 3 numbers"),
        ("triangular", [None, 2, 3], "must be a number"),
        ("trapezoidal", [10, 5, 30, 40], "a ≤ b ≤ c ≤ d"),
        ("trapezoidal", [-INF, 0, 20, 30], "write null for an open shoulder"),
        ("trapezoidal", [0, None, 20, 30], "only a and d may be null"),
        ("trapezoidal", [None, 10, 20, None], "not both"),
        ("trapezoidal", [5, 5, 5, 5], "a < d"),
        ("gaussian", [0, 0], "sigma > 0"),
        ("gaussian", [0, -1], "sigma > 0"),
        ("gaussian", [INF, 1], "finite"),
        ("sigmoid", [0, 0], "slope ≠ 0"),
        ("sigmoid", {"center": 0}, "missing ['slope']"),
        ("sigmoid", {"center": 0, "slope": 1, "width": 2}, "unexpected ['width']"),
        ("sigmoid", [0, "1"], "must be a number"),
        ("cosine", [0, 1], "unknown membership function 'cosine'"),
    ],
)
def test_bad_parameters_are_rejected_with_a_clear_message(
    kind: str, params: object, fragment: str
) -> None:
    with pytest.raises(MembershipError, match=None) as info:
        membership(kind, [1.0, 2.0], params)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_mapping_and_positional_parameters_agree() -> None:
    x = np.linspace(0, 100, 101)
    for kind, params in CASES:
        named = dict(zip(MEMBERSHIPS[kind].param_names, params, strict=True))
        np.testing.assert_array_equal(membership(kind, x, params), membership(kind, x, named))


def test_every_catalog_membership_has_a_kernel_and_every_kernel_an_entry() -> None:
    assert sorted(KERNELS) == sorted(MEMBERSHIPS)


@pytest.mark.parametrize("kind", sorted(MEMBERSHIPS))
def test_kernel_parameters_are_the_catalog_parameters_in_order(kind: str) -> None:
    signature = list(inspect.signature(KERNELS[kind]).parameters)
    assert signature[0] == "values"
    assert tuple(signature[1:]) == MEMBERSHIPS[kind].param_names


def test_numpy_scalars_are_accepted_as_parameters() -> None:
    got = membership("triangular", [25.0], np.array([20, 30, 40]))
    np.testing.assert_allclose(got, [0.5])


def test_kernels_follow_the_catalog_formula_at_the_corners() -> None:
    # Exactly on the feet the degree is 0, exactly on the peak/plateau edges it is 1.
    np.testing.assert_array_equal(membership("triangular", [20, 30, 40], [20, 30, 40]), [0, 1, 0])
    np.testing.assert_array_equal(
        membership("trapezoidal", [10, 20, 30, 40], [10, 20, 30, 40]), [0, 1, 1, 0]
    )
    # A vertical left edge of a trapezoid: 0 just below, 1 on it.
    np.testing.assert_array_equal(
        membership("trapezoidal", [9.999, 10, 30, 35], [10, 10, 30, 40]), [0, 1, 1, 0.5]
    )
