"""Indicator kernels: ``compute(name, ohlcv, **params)`` for every entry of the indicator catalog.

TA-Lib computes every indicator it has (``talib_kernels``); the rest are whole-array
numpy/scipy code (``native_kernels``). ``KERNELS`` maps each catalog name to its kernel.
"""

from ktrdr_worker.indicators import native_kernels, talib_kernels  # noqa: F401  (registers)
from ktrdr_worker.indicators.registry import KERNELS, Kernel, compute

__all__ = ["KERNELS", "Kernel", "compute"]
