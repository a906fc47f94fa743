"""Fuzzy membership functions: vectorised kernels turning indicator values into degrees.

Every kernel takes a float array of indicator values and returns an equally shaped float64
array of membership degrees in [0, 1]; a NaN value (an indicator in warm-up) gives a NaN
degree, never a guessed 0 or 1. The parameter names and order of each kind follow the
membership catalog in ``ktrdr_core.catalog.membership``; a test keeps both in step.

- ``triangular(a, b, c)``: 0 at and outside ``a``/``c``, 1 at ``b``, linear in between.
  ``a == b`` or ``b == c`` gives a vertical edge (1 at the peak, 0 beyond it).
- ``trapezoidal(a, b, c, d)``: 1 on the plateau [b, c], linear flanks to 0 at ``a`` and ``d``.
  An open shoulder extends the plateau to infinity: ``a = b = -inf`` (degree 1 for every
  value up to ``c``) or ``c = d = +inf`` (degree 1 from ``b`` upwards).
- ``gaussian(mean, sigma)``: ``exp(-(x - mean)² / (2 sigma²))``, ``sigma > 0``.
- ``sigmoid(center, slope)``: ``1 / (1 + exp(-slope (x - center)))``; a negative slope falls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from ktrdr_core.errors import KtrdrError


class MembershipError(KtrdrError, ValueError):
    """A membership kind or its parameters are not usable; the message names which and why."""


Kernel = Callable[..., np.ndarray]


def _as_values(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _rising(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 up to ``a``, 1 from ``b`` on, linear in between; NaN stays NaN.

    ``a == b`` is a step (1 from ``b`` on); ``b == -inf`` is 1 everywhere (open shoulder).
    """
    if b == -math.inf:
        return np.where(np.isnan(x), np.nan, 1.0)
    if a == b:
        return np.where(np.isnan(x), np.nan, (x >= b).astype(np.float64))
    return np.clip((x - a) / (b - a), 0.0, 1.0)


def _falling(x: np.ndarray, c: float, d: float) -> np.ndarray:
    """1 up to ``c``, 0 from ``d`` on, linear in between; NaN stays NaN.

    ``c == d`` is a step (1 up to ``c``); ``c == +inf`` is 1 everywhere (open shoulder).
    """
    if c == math.inf:
        return np.where(np.isnan(x), np.nan, 1.0)
    if c == d:
        return np.where(np.isnan(x), np.nan, (x <= c).astype(np.float64))
    return np.clip((d - x) / (d - c), 0.0, 1.0)


def _check_finite(kind: str, **params: float) -> None:
    for name, value in params.items():
        if not math.isfinite(value):
            raise MembershipError(f"{kind}: parameter {name} must be a finite number, got {value}")


def triangular(values: Any, a: float, b: float, c: float) -> np.ndarray:
    """Triangle with feet at ``a`` and ``c`` and its peak (degree 1) at ``b``; needs a ≤ b ≤ c.

    ``values``: indicator values (any array-like, any units); returns degrees in [0, 1].
    """
    _check_finite("triangular", a=a, b=b, c=c)
    if not a <= b <= c or a == c:
        raise MembershipError(f"triangular needs a ≤ b ≤ c with a < c, got [{a}, {b}, {c}]")
    x = _as_values(values)
    return np.minimum(_rising(x, a, b), _falling(x, b, c))


def trapezoidal(values: Any, a: float, b: float, c: float, d: float) -> np.ndarray:
    """Trapezoid: 0 below ``a``, rising to 1 at ``b``, 1 on [b, c], falling to 0 at ``d``.

    Needs a ≤ b ≤ c ≤ d. Open shoulders: ``a = b = -inf`` keeps degree 1 for every value
    below ``c``; ``c = d = +inf`` keeps degree 1 for every value above ``b``.
    ``values``: indicator values; returns degrees in [0, 1].
    """
    for name, value in (("a", a), ("b", b), ("c", c), ("d", d)):
        if math.isnan(value):
            raise MembershipError(f"trapezoidal: parameter {name} is NaN")
    if not a <= b <= c <= d:
        raise MembershipError(f"trapezoidal needs a ≤ b ≤ c ≤ d, got [{a}, {b}, {c}, {d}]")
    # Infinity is meaningful only as a whole open shoulder (both points of one side).
    if math.isinf(a) != math.isinf(b) or (math.isinf(a) and a > 0):
        raise MembershipError(
            f"trapezoidal: a left open shoulder needs a = b = -inf, got a={a}, b={b}"
        )
    if math.isinf(c) != math.isinf(d) or (math.isinf(d) and d < 0):
        raise MembershipError(
            f"trapezoidal: a right open shoulder needs c = d = +inf, got c={c}, d={d}"
        )
    if math.isinf(b) and math.isinf(c):
        raise MembershipError("trapezoidal: both shoulders open gives degree 1 everywhere")
    x = _as_values(values)
    return np.minimum(_rising(x, a, b), _falling(x, c, d))


def gaussian(values: Any, mean: float, sigma: float) -> np.ndarray:
    """Bell curve ``exp(-(x - mean)² / (2 sigma²))``: 1 at ``mean``; ``sigma > 0`` in value units.

    ``values``: indicator values; returns degrees in (0, 1].
    """
    _check_finite("gaussian", mean=mean, sigma=sigma)
    if sigma <= 0:
        raise MembershipError(f"gaussian needs sigma > 0, got {sigma}")
    z = (_as_values(values) - mean) / sigma
    # z² overflowing to inf for absurd values is harmless: exp(-inf) is the right 0.
    with np.errstate(over="ignore"):
        return np.exp(-0.5 * z * z)


def sigmoid(values: Any, center: float, slope: float) -> np.ndarray:
    """Logistic ``1 / (1 + exp(-slope (x - center)))``: 0.5 at ``center``; rising if slope > 0.

    ``slope`` is per value unit and must not be 0. Returns degrees in [0, 1] (exactly 0 or 1
    only where the float64 exponent saturates).
    """
    _check_finite("sigmoid", center=center, slope=slope)
    if slope == 0:
        raise MembershipError("sigmoid needs a non-zero slope, got 0")
    # expit is the numerically stable logistic: no overflow warnings for large |slope·x|.
    return expit(slope * (_as_values(values) - center))


KERNELS: dict[str, Kernel] = {
    "triangular": triangular,
    "trapezoidal": trapezoidal,
    "gaussian": gaussian,
    "sigmoid": sigmoid,
}

#: Parameter names of each kind, in the order a list of numbers gives them.
PARAMETERS: dict[str, tuple[str, ...]] = {
    "triangular": ("a", "b", "c"),
    "trapezoidal": ("a", "b", "c", "d"),
    "gaussian": ("mean", "sigma"),
    "sigmoid": ("center", "slope"),
}


def _to_float(kind: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise MembershipError(f"{kind}: parameter {name} must be a number, got {value!r}")
    return float(value)


def membership(
    kind: str, values: Any, params: Sequence[float] | Mapping[str, float]
) -> np.ndarray:
    """Degrees of ``values`` in one membership function.

    ``kind``: one of ``KERNELS`` (``triangular``, ``trapezoidal``, ``gaussian``, ``sigmoid``).
    ``params``: either the numbers in catalog order (``[a, b, c]`` for triangular) or a mapping
    by parameter name (``{"mean": 50, "sigma": 10}``). ``values``: array-like of indicator
    values. Returns a float64 array of the same shape with degrees in [0, 1], NaN where the
    value is NaN.
    """
    if kind not in KERNELS:
        raise MembershipError(
            f"unknown membership function {kind!r}; known: {', '.join(sorted(KERNELS))}"
        )
    names = PARAMETERS[kind]
    if isinstance(params, Mapping):
        missing = [n for n in names if n not in params]
        extra = [n for n in params if n not in names]
        if missing or extra:
            raise MembershipError(
                f"{kind} takes parameters {list(names)}; missing {missing}, unexpected {extra}"
            )
        args = [_to_float(kind, n, params[n]) for n in names]
    else:
        if isinstance(params, str | bytes) or len(params) != len(names):
            raise MembershipError(
                f"{kind} needs {len(names)} numbers {list(names)}, got {params!r}"
            )
        args = [_to_float(kind, n, v) for n, v in zip(names, params, strict=True)]
    return KERNELS[kind](values, *args)
