"""Rolling mean and standard deviation that stay accurate over millions of bars.

TA-Lib's STDDEV keeps running sums of x and x**2 for the whole series; over 1,000,000 bars its
rounding error reaches ~1e-7 of the result. Here the series is cut into overlapping rows of
``block + period - 1`` bars, each row is measured from its own anchor value (so the numbers
summed are small local deviations), and window sums come from within-row cumulative sums.
All of it is whole-array numpy: no loop over bars or rows.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_EPS = np.finfo(np.float64).eps


def rolling_mean_std(x: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation (ddof=0) of the ``period`` bars ending at each bar.

    In: a finite float64 array and a window length in bars (>= 1). Out: two arrays of the same
    length, NaN for the first ``period - 1`` bars. A window whose variance is below the rounding
    resolution of its sums (a flat window) gets a standard deviation of exactly 0.
    """
    n = x.shape[0]
    mean = np.full(n, np.nan)
    std = np.full(n, np.nan)
    windows = n - period + 1
    if windows <= 0:
        return mean, std
    # Rows short enough that rounding stays near machine precision, long enough to amortise
    # the period - 1 bars each row repeats from the one before.
    block = max(2 * period, 64)
    rows = -(-windows // block)
    padded = np.empty(rows * block + period - 1)
    padded[:n] = x
    padded[n:] = x[-1]
    view = sliding_window_view(padded, block + period - 1)[::block]
    anchor = view[:, period - 1 : period]
    dev = view - anchor
    sum1 = np.zeros((rows, block + period))
    sum2 = np.zeros((rows, block + period))
    np.cumsum(dev, axis=1, out=sum1[:, 1:])
    np.cumsum(dev * dev, axis=1, out=sum2[:, 1:])
    s1 = sum1[:, period:] - sum1[:, :-period]
    s2 = sum2[:, period:] - sum2[:, :-period]
    local_mean = s1 / period
    var = s2 / period - local_mean * local_mean
    # Below this the variance is rounding noise of the cumulative sums: the window is flat.
    resolution = 8.0 * _EPS * sum2[:, period:] / period
    var[var <= resolution] = 0.0
    mean[period - 1 :] = (anchor + local_mean).reshape(-1)[:windows]
    std[period - 1 :] = np.sqrt(var).reshape(-1)[:windows]
    return mean, std
