"""Rolling mean and standard deviation that stay accurate over millions of bars.

TA-Lib's STDDEV (and pandas' rolling std) keep running sums for the whole series; over
1,000,000 bars their rounding error reaches ~1e-7 of the result. Here the series is cut into
overlapping rows of ``block + period - 1`` bars, each row is measured from its own anchor value
(so the numbers summed are small local deviations), and window sums come from within-row
cumulative sums: the error stays near machine precision at any length. All of it is
whole-array numpy on a few reused buffers: no loop over bars or rows.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_EPS = np.finfo(np.float64).eps


def rolling_mean_std(x: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation (ddof=0) of the ``period`` bars ending at each bar.

    In: a finite float64 array and a window length in bars (>= 1). Out: two float64 arrays of
    the same length, NaN for the first ``period - 1`` bars. A window whose variance is below the
    rounding resolution of its sums (a flat window) gets a standard deviation of exactly 0.
    """
    n = x.shape[0]
    windows = n - period + 1
    if windows <= 0:
        return np.full(n, np.nan), np.full(n, np.nan)
    # Rows short enough that rounding stays near machine precision, long enough to amortise
    # the period - 1 bars each row repeats from the one before.
    block = max(4 * period, 32)
    rows = -(-windows // block)
    width = block + period - 1
    if rows * block == windows:
        source = x
    else:
        source = np.empty(rows * block + period - 1)
        source[:n] = x
        source[n:] = x[-1]  # padding feeds only windows past the end, which are dropped
    view = sliding_window_view(source, width)[::block]  # (rows, width), no copy
    anchor = view[:, period - 1 : period]

    # Cumulative sums with a leading zero column: sums[:, k] = sum of the first k deviations.
    sum1 = np.empty((rows, width + 1))
    sum2 = np.empty((rows, width + 1))
    sum1[:, 0] = 0.0
    sum2[:, 0] = 0.0
    np.subtract(view, anchor, out=sum1[:, 1:])
    np.multiply(sum1[:, 1:], sum1[:, 1:], out=sum2[:, 1:])
    np.cumsum(sum1[:, 1:], axis=1, out=sum1[:, 1:])
    np.cumsum(sum2[:, 1:], axis=1, out=sum2[:, 1:])

    # Outputs are (period - 1) NaNs followed by rows * block window values, cut to n.
    mean = np.empty(period - 1 + rows * block)
    std = np.empty(period - 1 + rows * block)
    mean[: period - 1] = np.nan
    std[: period - 1] = np.nan
    local_mean = mean[period - 1 :].reshape(rows, block)
    var = std[period - 1 :].reshape(rows, block)
    np.subtract(sum1[:, period:], sum1[:, :-period], out=local_mean)
    local_mean /= period
    np.subtract(sum2[:, period:], sum2[:, :-period], out=var)
    var /= period
    scratch = sum1[:, :block]  # sum1 is spent: reuse it
    np.multiply(local_mean, local_mean, out=scratch)
    var -= scratch
    # Below this the variance is rounding noise of the cumulative sums: the window is flat.
    np.multiply(sum2[:, period:], 8.0 * _EPS / period, out=scratch)
    np.copyto(var, 0.0, where=var <= scratch)
    np.sqrt(var, out=var)
    local_mean += anchor
    return mean[:n], std[:n]
