"""Fuzzy membership functions: vectorised kernels turning indicator values into degrees.

Every kernel takes a float array of indicator values and returns an equally shaped float64
array of membership degrees in [0, 1]; a NaN value (an indicator in warm-up) gives a NaN
degree, never a guessed 0 or 1. Names, parameter order, constraints and exact definitions are
those of the membership catalog, ``ktrdr_core.catalog.membership`` (a test keeps both in step):

- ``triangular [a, b, c]``: 0 at and outside ``a``/``c``, 1 at ``b``, linear in between;
  ``a == b`` or ``b == c`` gives a vertical edge.
- ``trapezoidal [a, b, c, d]``: 1 on [b, c], linear edges to 0 at ``a`` and ``d``. Open
  shoulders: ``a = None`` (``null`` in YAML) means degree 1 for every value up to ``c``,
  ``d = None`` degree 1 for every value from ``b`` up.
- ``gaussian [mean, sigma]``: ``exp(-(x - mean)² / (2 sigma²))``, ``sigma > 0``.
- ``sigmoid [center, slope]``: ``1 / (1 + exp(-slope (x - center)))``; a negative slope falls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ktrdr_core.catalog.membership import MEMBERSHIPS
from ktrdr_core.errors import KtrdrError


class MembershipError(KtrdrError, ValueError):
    """A membership kind or its parameters are not usable; the message names which and why."""


Kernel = Callable[..., np.ndarray]


def _as_values(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _rising(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 at and below ``a``, 1 from ``b`` on, linear in between; NaN stays NaN.

    ``a == b`` is a step (1 from ``b`` on); ``a == -inf`` is 1 everywhere (open shoulder).
    """
    if a == -math.inf:
        return np.where(np.isnan(x), np.nan, 1.0)
    if a == b:
        return np.where(np.isnan(x), np.nan, (x >= b).astype(np.float64))
    return np.clip((x - a) / (b - a), 0.0, 1.0)


def _falling(x: np.ndarray, c: float, d: float) -> np.ndarray:
    """1 up to ``c``, 0 at and above ``d``, linear in between; NaN stays NaN.

    ``c == d`` is a step (1 up to ``c``); ``d == +inf`` is 1 everywhere (open shoulder).
    """
    if d == math.inf:
        return np.where(np.isnan(x), np.nan, 1.0)
    if c == d:
        return np.where(np.isnan(x), np.nan, (x <= c).astype(np.float64))
    return np.clip((d - x) / (d - c), 0.0, 1.0)


def _check(kind: str, values: Sequence[float | None]) -> None:
    # The catalog owns the rules, so the schema and the kernels can never disagree on them.
    problem = MEMBERSHIPS[kind].check(list(values))
    if problem is not None:
        raise MembershipError(problem)


def triangular(values: Any, a: float, b: float, c: float) -> np.ndarray:
    """Triangle with feet at ``a`` and ``c`` and its peak (degree 1) at ``b``.

    Needs a ≤ b ≤ c and a < c, in the units of ``values`` (indicator values, array-like).
    Returns degrees in [0, 1], NaN where a value is NaN.
    """
    _check("triangular", (a, b, c))
    x = _as_values(values)
    return np.minimum(_rising(x, a, b), _falling(x, b, c))


def trapezoidal(values: Any, a: float | None, b: float, c: float, d: float | None) -> np.ndarray:
    """Trapezoid: 0 at and below ``a``, rising to 1 at ``b``, 1 on [b, c], 0 from ``d`` on.

    Needs a ≤ b ≤ c ≤ d (a < d). Open shoulders: ``a=None`` gives degree 1 for every value
    up to ``c``; ``d=None`` gives degree 1 for every value from ``b`` up (not both).
    ``values``: indicator values; returns degrees in [0, 1], NaN where a value is NaN.
    """
    _check("trapezoidal", (a, b, c, d))
    x = _as_values(values)
    left = -math.inf if a is None else a
    right = math.inf if d is None else d
    return np.minimum(_rising(x, left, b), _falling(x, c, right))


def gaussian(values: Any, mean: float, sigma: float) -> np.ndarray:
    """Bell curve ``exp(-(x - mean)² / (2 sigma²))``: 1 at ``mean``; ``sigma > 0`` in value units.

    ``values``: indicator values; returns degrees in [0, 1], NaN where a value is NaN.
    """
    _check("gaussian", (mean, sigma))
    z = (_as_values(values) - mean) / sigma
    # z² overflowing to inf for absurd values is harmless: exp(-inf) is the right 0.
    with np.errstate(over="ignore"):
        return np.exp(-0.5 * z * z)


def sigmoid(values: Any, center: float, slope: float) -> np.ndarray:
    """Logistic ``1 / (1 + exp(-slope (x - center)))``: 0.5 at ``center``; rising if slope > 0.

    ``slope`` is per value unit and must not be 0. Returns degrees in [0, 1] (exactly 0 or 1
    only where float64 saturates), NaN where a value is NaN.
    """
    _check("sigmoid", (center, slope))
    return logistic(slope * (_as_values(values) - center))


def logistic(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z) without overflow for large |z|, in z's float dtype (what scipy's expit
    computes; scipy is left out of the backtest worker): e^-z is only ever taken of a
    non-positive number, so both tails keep full relative precision. The fuzzy sigmoid and the
    numpy networks' gates (``ktrdr_worker.models.forward``) both use it."""
    # e^-|z| underflowing to 0 for large |z| is the saturation we want; NaN in, NaN out.
    with np.errstate(under="ignore", invalid="ignore"):
        small = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + small), small / (1.0 + small))


KERNELS: dict[str, Kernel] = {
    "triangular": triangular,
    "trapezoidal": trapezoidal,
    "gaussian": gaussian,
    "sigmoid": sigmoid,
}


def membership(
    kind: str, values: Any, params: Sequence[float | None] | Mapping[str, float | None]
) -> np.ndarray:
    """Degrees of ``values`` in one membership function.

    ``kind``: a catalog name (``triangular``, ``trapezoidal``, ``gaussian``, ``sigmoid``).
    ``params``: the numbers in catalog order, as a strategy file writes them (``[a, b, c]``;
    ``None`` for an open trapezoid shoulder), or a mapping by parameter name
    (``{"mean": 50, "sigma": 10}``). ``values``: array-like of indicator values.
    Returns a float64 array of the same shape with degrees in [0, 1], NaN where the value is
    NaN. Raises :class:`MembershipError` with the catalog's message for bad parameters.
    """
    if kind not in KERNELS:
        raise MembershipError(
            f"unknown membership function {kind!r}; known: {', '.join(sorted(KERNELS))}"
        )
    names = MEMBERSHIPS[kind].param_names
    if isinstance(params, Mapping):
        missing = [n for n in names if n not in params]
        extra = [n for n in params if n not in names]
        if missing or extra:
            raise MembershipError(
                f"{kind} takes parameters {list(names)}; missing {missing}, unexpected {extra}"
            )
        args = [params[n] for n in names]
    elif isinstance(params, str | bytes):
        raise MembershipError(f"{kind} needs a list of numbers {list(names)}, got {params!r}")
    else:
        args = list(params)
    # numpy scalars (from a parameter sweep, say) count as the numbers they are.
    args = [float(v) if isinstance(v, np.floating | np.integer) else v for v in args]
    # Checked before the call so a wrong count gets the catalog's message, not a TypeError.
    _check(kind, args)
    return KERNELS[kind](values, *args)
