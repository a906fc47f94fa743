"""Membership-function catalog: names, parameters, constraints and exact definitions.

Metadata and parameter checks only; ktrdr-worker implements the maths from the definitions
below, and a test keeps both sides in step. In a strategy file a membership is written as
``{type: <name>, params: [p1, p2, ...]}`` with the parameters in the order listed here, in the
units of the indicator output the fuzzy set reads (e.g. RSI points, price, MACD units).

Definitions, for an indicator value ``x`` (every function returns a degree in [0, 1]; a NaN
``x`` — indicator warm-up — gives NaN):

``triangular [a, b, c]`` with ``a ≤ b ≤ c`` and ``a < c``
    ``1`` at ``x == b``; ``(x - a) / (b - a)`` for ``a < x < b``; ``(c - x) / (c - b)`` for
    ``b < x < c``; ``0`` for ``x ≤ a`` or ``x ≥ c`` (except ``x == b``, which is 1, so
    ``a == b`` gives a vertical left edge and ``b == c`` a vertical right edge).

``trapezoidal [a, b, c, d]`` with ``a ≤ b ≤ c ≤ d``
    ``1`` for ``b ≤ x ≤ c``; ``(x - a) / (b - a)`` for ``a < x < b``; ``(d - x) / (d - c)``
    for ``c < x < d``; ``0`` for ``x ≤ a`` or ``x ≥ d`` (outside ``[b, c]``). **Open
    shoulders**: ``a`` may be ``null`` (no left edge: degree 1 for every ``x ≤ c``, i.e.
    ``-inf``) and ``d`` may be ``null`` (no right edge: degree 1 for every ``x ≥ b``, i.e.
    ``+inf``). ``null`` is used rather than ``.inf`` so the file stays valid JSON; ``b`` and
    ``c`` must be finite, not both ``a`` and ``d`` may be ``null`` (that would be a constant
    1), and with both ends finite ``a < d``.

``gaussian [mean, sigma]`` with ``sigma > 0``
    ``exp(-(x - mean)² / (2 · sigma²))``.

``sigmoid [center, slope]`` with ``slope ≠ 0``
    ``1 / (1 + exp(-slope · (x - center)))``: 0.5 at ``center``; rising with ``x`` for a
    positive slope, falling for a negative one; ``slope`` is per unit of ``x``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "MEMBERSHIPS",
    "MembershipParam",
    "MembershipSpec",
    "format_params",
    "get_membership",
]


@dataclass(frozen=True)
class MembershipParam:
    """One positional parameter of a membership function.

    ``nullable`` marks a parameter that may be ``None`` (``null`` in YAML): an open
    trapezoid shoulder. Every other parameter must be a finite number.
    """

    name: str
    description: str
    nullable: bool = False


@dataclass(frozen=True)
class MembershipSpec:
    """One membership-function type: its positional parameters and their constraints.

    ``constraint`` is the rule in words (shown in errors and in the JSON Schema),
    ``formula`` the exact definition the worker implements.
    """

    name: str
    description: str
    params: tuple[MembershipParam, ...]
    constraint: str
    formula: str
    order_check: Callable[[Sequence[float | None]], bool] = field(repr=False, compare=False)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def check(self, values: Sequence[float | None]) -> str | None:
        """Check parameter values for this function.

        Takes the positional parameters as written (numbers or None). Returns None when they
        are valid, else one message saying what was expected and what was got, e.g.
        ``triangular needs 3 increasing numbers [a, b, c] with a ≤ b ≤ c and a < c,
        got [30, 20, 40]``.
        """
        got = format_params(values)
        count = len(self.params)
        names = ", ".join(self.param_names)
        if len(values) != count:
            return f"{self.name} needs {count} numbers [{names}], got {len(values)}: {got}"
        for value, param in zip(values, self.params, strict=True):
            if value is None:
                if not param.nullable:
                    nullable = [p.name for p in self.params if p.nullable]
                    hint = f" (only {' and '.join(nullable)} may be null)" if nullable else ""
                    return f"{self.name} parameter {param.name} must be a number{hint}, got {got}"
            elif isinstance(value, bool) or not isinstance(value, int | float):
                return f"{self.name} parameter {param.name} must be a number, got {got}"
            elif not math.isfinite(value):
                hint = " (write null for an open shoulder)" if param.nullable else ""
                return f"{self.name} parameter {param.name} must be finite{hint}, got {got}"
        if not self.order_check(values):
            return f"{self.name} needs {self.constraint}, got {got}"
        return None


def format_params(values: Sequence[object]) -> str:
    """Render parameters the way a user wrote them: ``[30, 20.5, null]``."""

    def one(v: object) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and not math.isfinite(v):
            return ".nan" if math.isnan(v) else (".inf" if v > 0 else "-.inf")  # YAML spelling
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        if isinstance(v, int | float):
            return repr(v)
        return repr(v)

    return "[" + ", ".join(one(v) for v in values) + "]"


def _triangular_ok(v: Sequence[float | None]) -> bool:
    a, b, c = v
    assert a is not None and b is not None and c is not None
    return a <= b <= c and a < c


def _trapezoidal_ok(v: Sequence[float | None]) -> bool:
    a, b, c, d = v
    assert b is not None and c is not None
    if a is None and d is None:
        return False
    points = [p for p in (a, b, c, d) if p is not None]
    ordered = all(x <= y for x, y in itertools.pairwise(points))
    return ordered and (a is None or d is None or a < d)


def _gaussian_ok(v: Sequence[float | None]) -> bool:
    _mean, sigma = v
    assert sigma is not None
    return sigma > 0


def _sigmoid_ok(v: Sequence[float | None]) -> bool:
    _center, slope = v
    return slope != 0


MEMBERSHIPS: dict[str, MembershipSpec] = {
    spec.name: spec
    for spec in (
        MembershipSpec(
            name="triangular",
            description="Peak of 1 at b, falling linearly to 0 at a and at c.",
            params=(
                MembershipParam("a", "left foot: degree 0 at and below a"),
                MembershipParam("b", "peak: degree 1"),
                MembershipParam("c", "right foot: degree 0 at and above c"),
            ),
            constraint="3 increasing numbers [a, b, c] with a ≤ b ≤ c and a < c",
            formula=("1 if x == b; (x-a)/(b-a) if a < x < b; (c-x)/(c-b) if b < x < c; else 0"),
            order_check=_triangular_ok,
        ),
        MembershipSpec(
            name="trapezoidal",
            description=(
                "Plateau of 1 between b and c, linear edges down to 0 at a and d; "
                "a or d null makes an open shoulder."
            ),
            params=(
                MembershipParam(
                    "a", "left foot: degree 0 at and below a; null = open left shoulder", True
                ),
                MembershipParam("b", "start of the plateau of 1"),
                MembershipParam("c", "end of the plateau of 1"),
                MembershipParam(
                    "d", "right foot: degree 0 at and above d; null = open right shoulder", True
                ),
            ),
            constraint=(
                "4 non-decreasing numbers [a, b, c, d] (a ≤ b ≤ c ≤ d, a < d; a or d may be "
                "null for an open shoulder, not both)"
            ),
            formula=(
                "1 if b <= x <= c; (x-a)/(b-a) if a < x < b; (d-x)/(d-c) if c < x < d; "
                "else 0; a=null means 1 for all x <= c, d=null means 1 for all x >= b"
            ),
            order_check=_trapezoidal_ok,
        ),
        MembershipSpec(
            name="gaussian",
            description="Bell curve centred on mean with width sigma.",
            params=(
                MembershipParam("mean", "centre: degree 1"),
                MembershipParam("sigma", "standard deviation, in units of x; > 0"),
            ),
            constraint="[mean, sigma] with sigma > 0",
            formula="exp(-(x-mean)^2 / (2*sigma^2))",
            order_check=_gaussian_ok,
        ),
        MembershipSpec(
            name="sigmoid",
            description="Logistic step through 0.5 at center; rising if slope > 0, else falling.",
            params=(
                MembershipParam("center", "value where the degree is 0.5"),
                MembershipParam("slope", "steepness per unit of x; sign gives direction; ≠ 0"),
            ),
            constraint="[center, slope] with slope ≠ 0",
            formula="1 / (1 + exp(-slope*(x-center)))",
            order_check=_sigmoid_ok,
        ),
    )
}


def get_membership(name: str) -> MembershipSpec:
    """Return the catalog entry for a membership type; ValueError naming the known ones."""
    try:
        return MEMBERSHIPS[name]
    except KeyError:
        known = ", ".join(MEMBERSHIPS)
        raise ValueError(f"unknown membership type {name!r}; known: {known}") from None
