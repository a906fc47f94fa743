"""The membership catalog: names, parameter conventions and constraint checks."""

from __future__ import annotations

import math

import pytest

from ktrdr_core.catalog.membership import MEMBERSHIPS, get_membership


def test_catalog_names_and_parameter_order():
    assert {name: spec.param_names for name, spec in MEMBERSHIPS.items()} == {
        "triangular": ("a", "b", "c"),
        "trapezoidal": ("a", "b", "c", "d"),
        "gaussian": ("mean", "sigma"),
        "sigmoid": ("center", "slope"),
    }
    nullable = {(s.name, p.name) for s in MEMBERSHIPS.values() for p in s.params if p.nullable}
    assert nullable == {("trapezoidal", "a"), ("trapezoidal", "d")}


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("triangular", [0, 0, 10]),
        ("triangular", [0, 10, 10]),
        ("trapezoidal", [0, 0, 10, 10]),
        ("trapezoidal", [None, 0, 10, 20]),
        ("trapezoidal", [0, 10, 10, None]),
        ("gaussian", [-5, 0.001]),
        ("sigmoid", [0, -3]),
    ],
)
def test_valid_parameters_pass(name, params):
    assert MEMBERSHIPS[name].check(params) is None


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        (
            "triangular",
            [30, 20, 40],
            "triangular needs 3 increasing numbers [a, b, c] with "
            "a ≤ b ≤ c and a < c, got [30, 20, 40]",
        ),
        ("triangular", [5, 5, 5], "got [5, 5, 5]"),
        ("triangular", [1, 2, 3, 4], "triangular needs 3 numbers [a, b, c], got 4: [1, 2, 3, 4]"),
        ("triangular", [1, math.nan, 3], "must be finite, got [1, .nan, 3]"),
        ("trapezoidal", [5, 5, 5, 5], "a < d"),
        ("trapezoidal", [0, None, 1, 2], "parameter b must be a number (only a and d may be null)"),
        (
            "trapezoidal",
            [-math.inf, 0, 1, 2],
            "(write null for an open shoulder), got [-.inf, 0, 1, 2]",
        ),
        ("gaussian", [0, 0], "sigma > 0"),
        ("sigmoid", [0, 0.0], "slope ≠ 0"),
        ("sigmoid", [0, True], "must be a number"),
    ],
)
def test_invalid_parameters_say_what_was_expected_and_got(name, params, message):
    problem = MEMBERSHIPS[name].check(params)
    assert problem is not None and message in problem


def test_unknown_type_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown membership type 'bell'; known: triangular"):
        get_membership("bell")
