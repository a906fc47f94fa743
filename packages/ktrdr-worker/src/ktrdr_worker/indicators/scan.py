"""The supertrend recursion, run as a lane-parallel scan instead of a loop over bars.

The recursion is path-dependent (a trailing band that ratchets and flips), so neither a linear
filter nor a cumulative ufunc expresses it. Instead the series is cut into ``lanes`` contiguous
stretches of ``steps`` bars, laid out as a (steps, lanes) matrix, and every lane advances one
bar per vectorised step. Lanes after the first start from a guessed state; the state is only
(direction, band), and two runs of the recursion that reach the same state at the same bar agree
from then on, so each wrongly started lane is re-run from its predecessor's true end state only
until it meets its first run again (usually within a trend segment or two). Rounds repeat until
every lane starts where its predecessor ends, which makes the result the sequential recursion's,
bit for bit.

Each step is branch-free float arithmetic (no ``np.where`` or masked ufuncs, which cost 3-10x
more per element): with s = +1 (up) / -1 (down) and y = s * band, both trends ratchet y upwards,
the trend flips when s * close < y, and the candidate band in signed form is s * mid - offset,
which equals the lower band (up) or minus the upper band (down) exactly, since IEEE rounding is
symmetric in sign.
"""

from __future__ import annotations

import math

import numpy as np

# Per-step numpy overhead is ~1 us per call, per-element cost ~0.5 ns: lanes of ~256 bars
# amortise the first. Beyond ~1M bars the lane count grows as 4 * sqrt(n) instead.
_TARGET_STEPS = 256
_MAX_LANES_PER_SQRT = 4
# Bars of the previous lane each lane runs through to reach a good start state: runs from
# different states met within ~32 bars in 95% and ~51 in all of our samples (real + synthetic).
_WARM_UP = 48
# Re-runs drop the lanes that met their earlier run every this many steps.
_PRUNE_EVERY = 8
# Steps collected in a contiguous tile before they are written to the bar-ordered outputs.
_TILE = 32


def supertrend_scan(
    close: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    atr: np.ndarray,
    multiplier: float,
    prefix: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The supertrend recursion over finite, equally long arrays (n >= 1).

    In: close, high, low and ATR in price units, and the band distance in ATRs. With
    mid = (high + low) / 2, lower = mid - multiplier * atr and upper = mid + multiplier * atr,
    bar 0 starts an uptrend on lower[0]; in an uptrend the band is the running maximum of lower
    since the trend began, and the trend turns down at the first bar whose close is below the
    previous bar's band (the band restarts at that bar's upper); a downtrend mirrors it with the
    running minimum of upper and a close above the band.
    Out: (band in price units, direction +1.0 / -1.0), each of length ``prefix + n`` with
    ``prefix`` leading NaNs (the caller's warm-up bars, so no second copy is needed).
    """
    n = close.shape[0]
    total = n - 1
    wanted = min(_MAX_LANES_PER_SQRT * math.isqrt(total), total // _TARGET_STEPS)
    steps = -(-total // max(1, wanted))
    # Recount so that every lane holds at least one real bar (only the last is padded).
    lanes = -(-total // steps) if total else 0
    full = total // steps if total else 0  # lanes without padding

    # Outputs with room for the padded last lane; the step loop writes straight into them
    # through (steps, lanes) views (measured faster than step-major buffers and a transposing
    # copy at the end).
    band = np.empty(prefix + 1 + lanes * steps)
    direction = np.empty(prefix + 1 + lanes * steps)
    band[:prefix] = np.nan
    direction[:prefix] = np.nan
    # Same operations as the layouts below, so lane 0 starts on exactly the same numbers.
    band[prefix] = (high[0] + low[0]) * 0.5 - atr[0] * multiplier
    direction[prefix] = 1.0
    if total == 0:
        return band[: prefix + n], direction[: prefix + n]
    band_out = band[prefix + 1 :].reshape(lanes, steps).T
    s_out = direction[prefix + 1 :].reshape(lanes, steps).T

    rest = total - full * steps  # real bars in the last, padded lane (if any)

    def lay_out(op: np.ufunc, *operands: np.ndarray | float) -> np.ndarray:
        """``op(*operands)`` for bars 1..n-1 as a (steps, lanes) step-major matrix, computed
        straight into the layout; padding repeats the last bar (it only moves the unused end
        state of the last lane)."""
        out = np.empty((steps, lanes))
        by_lane = out.T  # (lanes, steps) view: lane l holds bars 1 + l*steps ...

        def bars(selection: slice, shape: tuple[int, ...]) -> list[np.ndarray | float]:
            return [
                x[selection].reshape(shape) if isinstance(x, np.ndarray) else x for x in operands
            ]

        head = by_lane[:full]
        op(*bars(slice(1, 1 + full * steps), head.shape), out=head)
        if rest:
            tail = by_lane[full, :rest]
            op(*bars(slice(1 + full * steps, n), tail.shape), out=tail)
            by_lane[full, rest:] = tail[-1]
        return out

    c = lay_out(np.positive, close)  # an exact copy
    m = lay_out(np.add, high, low)
    m *= 0.5  # on the contiguous layout; exact, like dividing by 2
    o = lay_out(np.multiply, atr, multiplier)

    # Start states: lane 0's is known. Lane l > 0 guesses an uptrend begun just before the
    # last _WARM_UP bars of lane l - 1 and runs through them, so most guesses come out exact.
    start_s = np.ones(lanes)
    start_y = np.empty(lanes)
    start_y[0] = band[prefix]
    if lanes > 1:
        warm_up = min(_WARM_UP, steps - 1)
        before = steps - warm_up - 1
        start_y[1:] = m[before, :-1] - o[before, :-1]
        buffers = _Buffers(lanes - 1)
        for j in range(steps - warm_up, steps):
            _step(start_s[1:], start_y[1:], c[j, :-1], m[j, :-1], o[j, :-1], buffers)
    _run_all(start_s.copy(), start_y.copy(), c, m, o, band_out, s_out)

    while True:
        end_s = s_out[-1]
        end_y = end_s * band_out[-1]
        wrong = np.flatnonzero((start_s[1:] != end_s[:-1]) | (start_y[1:] != end_y[:-1])) + 1
        if wrong.size == 0:
            break
        start_s[wrong] = end_s[wrong - 1]
        start_y[wrong] = end_y[wrong - 1]
        _rerun(wrong, start_s[wrong], start_y[wrong], c, m, o, band_out, s_out)

    return band[: prefix + n], direction[: prefix + n]


class _Buffers:
    """Scratch arrays for one step over ``size`` lanes, reused across steps."""

    def __init__(self, size: int) -> None:
        self.flip = np.empty(size, dtype=bool)
        self.sign = np.empty(size)
        self.work = np.empty(size)
        self.candidate = np.empty(size)

    def shrink(self, size: int) -> None:
        self.flip, self.sign = self.flip[:size], self.sign[:size]
        self.work, self.candidate = self.work[:size], self.candidate[:size]


def _step(
    s: np.ndarray, y: np.ndarray, c: np.ndarray, m: np.ndarray, o: np.ndarray, b: _Buffers
) -> None:
    """Advance states (s, y) in place by one bar with close ``c``, mid ``m``, offset ``o``."""
    np.multiply(s, c, out=b.work)
    np.less(b.work, y, out=b.flip)  # where the close crossed the band
    np.multiply(b.flip, -2.0, out=b.sign)
    np.add(b.sign, 1.0, out=b.sign)  # -1.0 on a flip, +1.0 otherwise
    np.multiply(s, b.sign, out=s)
    np.multiply(s, m, out=b.candidate)
    np.subtract(b.candidate, o, out=b.candidate)
    # A flipped lane restarts at its candidate: -inf as the old y lets max() pick it.
    np.multiply(b.sign, np.inf, out=b.work)
    np.minimum(y, b.work, out=y)
    np.maximum(y, b.candidate, out=y)


def _run_all(
    s: np.ndarray,
    y: np.ndarray,
    c: np.ndarray,
    m: np.ndarray,
    o: np.ndarray,
    band_out: np.ndarray,
    s_out: np.ndarray,
) -> None:
    """Run every lane from start states (s, y) over all steps, writing band_out / s_out."""
    buffers = _Buffers(s.shape[0])
    steps = c.shape[0]
    # The outputs are bar-ordered arrays seen step-major: a row store touches one cache line
    # per lane. Rows collect in a small contiguous tile instead, flushed every _TILE steps, so
    # each flush fills whole cache lines while the tile is still in cache.
    tile_band = np.empty((_TILE, s.shape[0]))
    tile_s = np.empty((_TILE, s.shape[0]))
    for start in range(0, steps, _TILE):
        rows = min(_TILE, steps - start)
        for i in range(rows):
            j = start + i
            _step(s, y, c[j], m[j], o[j], buffers)
            np.multiply(s, y, out=tile_band[i])  # s is +-1: the band, exactly
            tile_s[i] = s
        band_out[start : start + rows] = tile_band[:rows]
        s_out[start : start + rows] = tile_s[:rows]


def _rerun(
    lanes: np.ndarray,
    s: np.ndarray,
    y: np.ndarray,
    c: np.ndarray,
    m: np.ndarray,
    o: np.ndarray,
    band_out: np.ndarray,
    s_out: np.ndarray,
) -> None:
    """Re-run ``lanes`` from new start states until each meets its earlier run.

    Once a lane's state equals what band_out / s_out hold for that step, both runs are
    identical from there on, so the lane is dropped.
    """
    buffers = _Buffers(lanes.shape[0])
    for j in range(c.shape[0]):
        _step(s, y, c[j, lanes], m[j, lanes], o[j, lanes], buffers)
        band = s * y
        met = (band == band_out[j, lanes]) & (s == s_out[j, lanes])
        band_out[j, lanes] = band
        s_out[j, lanes] = s
        if j % _PRUNE_EVERY == _PRUNE_EVERY - 1 or met.all():
            keep = ~met
            if not keep.any():
                return
            lanes, s, y = lanes[keep], s[keep], y[keep]
            buffers.shrink(lanes.shape[0])
