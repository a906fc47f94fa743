"""The indicator catalog: every indicator type a strategy may name, with parameters and outputs.

Metadata only (standard library): the kernels live in ``ktrdr_worker.indicators`` and a workspace
test keeps both sides in step. Periods are in bars; outputs are column names of the frame the
kernel returns. ``resolve_params`` is the one place that checks a parameter set against the
catalog, used both when a strategy is validated and when a kernel runs.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping

from ktrdr_core.catalog.types import IndicatorSpec, ParamSpec

# Periods up to 10,000 bars: enough for a 200-day average on hourly data; TA-Lib allows 100,000.
_MAX_PERIOD = 10_000

_HLC = ("high", "low", "close")
_HL = ("high", "low")
_HLCV = ("high", "low", "close", "volume")


def _period(
    default: int, description: str = "window length in bars", minimum: int = 2
) -> ParamSpec:
    return ParamSpec("period", "int", default, minimum, _MAX_PERIOD, description)


def _int(name: str, default: int, description: str, minimum: int = 2) -> ParamSpec:
    return ParamSpec(name, "int", default, minimum, _MAX_PERIOD, description)


def _float(
    name: str, default: float, minimum: float, maximum: float, description: str
) -> ParamSpec:
    return ParamSpec(name, "float", default, minimum, maximum, description)


_FAST_SLOW = (
    _int("fast", 12, "fast moving-average period in bars"),
    _int("slow", 26, "slow moving-average period in bars"),
)

_SPECS: tuple[IndicatorSpec, ...] = (
    # ---- trend ---------------------------------------------------------------------------------
    IndicatorSpec("sma", "trend", "Simple moving average of close.", (_period(20),)),
    IndicatorSpec(
        "ema",
        "trend",
        "Exponential moving average of close (alpha = 2 / (period + 1), seeded with an SMA).",
        (_period(20),),
    ),
    IndicatorSpec("wma", "trend", "Linearly weighted moving average of close.", (_period(20),)),
    IndicatorSpec("dema", "trend", "Double exponential moving average of close.", (_period(20),)),
    IndicatorSpec("tema", "trend", "Triple exponential moving average of close.", (_period(20),)),
    IndicatorSpec("trima", "trend", "Triangular moving average of close.", (_period(20),)),
    IndicatorSpec(
        "kama",
        "trend",
        "Kaufman adaptive moving average of close (fast 2, slow 30).",
        (_period(10, "efficiency-ratio window in bars"),),
    ),
    IndicatorSpec(
        "t3",
        "trend",
        "Tillson T3 moving average of close.",
        (
            _period(5),
            _float("vfactor", 0.7, 0.0, 1.0, "volume factor: 0 is an EMA, 1 a DEMA-like response"),
        ),
    ),
    IndicatorSpec(
        "hma",
        "trend",
        "Hull moving average: WMA(2 * WMA(close, period // 2) - WMA(close, period), "
        "round(sqrt(period))).",
        (_period(20, minimum=4),),
    ),
    IndicatorSpec(
        "macd",
        "trend",
        "Moving average convergence/divergence: EMA(fast) - EMA(slow), its EMA(signal) and the "
        "difference (hist), in price units.",
        (*_FAST_SLOW, _int("signal", 9, "signal-line EMA period in bars", minimum=1)),
        outputs=("macd", "signal", "hist"),
        less_than=(("fast", "slow"),),
    ),
    IndicatorSpec(
        "adx",
        "trend",
        "Average directional index with the +DI and -DI lines (Wilder), 0..100.",
        (_period(14),),
        outputs=("adx", "plus_di", "minus_di"),
        inputs=_HLC,
    ),
    IndicatorSpec(
        "aroon",
        "trend",
        "Aroon up/down (bars since the window high/low, 0..100) and the oscillator up - down.",
        (_period(14),),
        outputs=("up", "down", "osc"),
        inputs=_HL,
    ),
    IndicatorSpec(
        "sar",
        "trend",
        "Parabolic stop-and-reverse level, in price units.",
        (
            _float("acceleration", 0.02, 0.001, 1.0, "acceleration-factor step per new extreme"),
            _float("maximum", 0.2, 0.01, 1.0, "largest acceleration factor"),
        ),
        less_than=(("acceleration", "maximum"),),
        inputs=_HL,
    ),
    IndicatorSpec(
        "linearreg",
        "trend",
        "End point of the least-squares line fitted to the last `period` closes.",
        (_period(14),),
    ),
    IndicatorSpec(
        "linearreg_slope",
        "trend",
        "Slope of the least-squares line fitted to the last `period` closes, price units per bar.",
        (_period(14),),
    ),
    IndicatorSpec(
        "supertrend",
        "trend",
        "Supertrend: an ATR trailing band below price in an uptrend (direction +1) and above it "
        "in a downtrend (direction -1); flips when close crosses the previous band.",
        (
            _period(10, "ATR period in bars", minimum=1),
            _float("multiplier", 3.0, 0.1, 20.0, "band distance from (high + low) / 2, in ATRs"),
        ),
        outputs=("value", "direction"),
        inputs=_HLC,
    ),
    IndicatorSpec(
        "vortex",
        "trend",
        "Vortex indicator: sum|high - low[-1]| and sum|low - high[-1]| over the window, each "
        "divided by the summed true range.",
        (_period(14),),
        outputs=("plus", "minus"),
        inputs=_HLC,
    ),
    # ---- momentum ------------------------------------------------------------------------------
    IndicatorSpec("rsi", "momentum", "Relative strength index (Wilder), 0..100.", (_period(14),)),
    IndicatorSpec(
        "stoch",
        "momentum",
        "Slow stochastic oscillator, 0..100: %K smoothed by an SMA, and its SMA %D.",
        (
            _int("k_period", 14, "look-back window for the high/low range, in bars", minimum=1),
            _int("k_smooth", 3, "SMA period smoothing %K, in bars", minimum=1),
            _int("d_period", 3, "SMA period of %D, in bars", minimum=1),
        ),
        outputs=("k", "d"),
        inputs=_HLC,
    ),
    IndicatorSpec(
        "stochrsi",
        "momentum",
        "Stochastic of the RSI, 0..100: raw %K (unsmoothed, as in TA-Lib) and its SMA %D.",
        (
            _period(14, "RSI period in bars"),
            _int("k_period", 14, "stochastic look-back over the RSI, in bars", minimum=1),
            _int("d_period", 3, "SMA period of %D, in bars", minimum=1),
        ),
        outputs=("k", "d"),
    ),
    IndicatorSpec(
        "cci",
        "momentum",
        "Commodity channel index of the typical price (mean deviation scaled by 0.015).",
        (_period(20),),
        inputs=_HLC,
    ),
    IndicatorSpec("willr", "momentum", "Williams %R, -100..0.", (_period(14),), inputs=_HLC),
    IndicatorSpec(
        "roc",
        "momentum",
        "Rate of change in percent: (close / close[-period] - 1) * 100.",
        (_period(10, minimum=1),),
    ),
    IndicatorSpec(
        "mom",
        "momentum",
        "Momentum: close - close[-period], in price units.",
        (_period(10, minimum=1),),
    ),
    IndicatorSpec(
        "ppo",
        "momentum",
        "Percentage price oscillator: (EMA(fast) - EMA(slow)) / EMA(slow) * 100.",
        _FAST_SLOW,
        less_than=(("fast", "slow"),),
    ),
    IndicatorSpec(
        "apo",
        "momentum",
        "Absolute price oscillator: EMA(fast) - EMA(slow), in price units.",
        _FAST_SLOW,
        less_than=(("fast", "slow"),),
    ),
    IndicatorSpec("cmo", "momentum", "Chande momentum oscillator, -100..100.", (_period(14),)),
    IndicatorSpec(
        "trix",
        "momentum",
        "TRIX: one-bar rate of change of a triple EMA, in percent.",
        (_period(15, minimum=1),),
    ),
    IndicatorSpec(
        "ultosc",
        "momentum",
        "Ultimate oscillator over three windows, 0..100.",
        (
            _int("period1", 7, "short window in bars", minimum=1),
            _int("period2", 14, "medium window in bars", minimum=1),
            _int("period3", 28, "long window in bars", minimum=1),
        ),
        less_than=(("period1", "period2"), ("period2", "period3")),
        inputs=_HLC,
    ),
    IndicatorSpec(
        "bop",
        "momentum",
        "Balance of power: (close - open) / (high - low), -1..1.",
        inputs=("open", "high", "low", "close"),
    ),
    IndicatorSpec(
        "zscore",
        "momentum",
        "Rolling z-score of close: (close - mean) / population std over the window.",
        (_period(20),),
    ),
    # ---- volatility ----------------------------------------------------------------------------
    IndicatorSpec(
        "bbands",
        "volatility",
        "Bollinger bands: SMA(period) and SMA +/- std population standard deviations.",
        (_period(20), _float("std", 2.0, 0.1, 10.0, "band width in standard deviations")),
        outputs=("upper", "middle", "lower"),
    ),
    IndicatorSpec(
        "atr",
        "volatility",
        "Average true range (Wilder smoothing), in price units.",
        (_period(14, minimum=1),),
        inputs=_HLC,
    ),
    IndicatorSpec(
        "natr",
        "volatility",
        "Normalised average true range: ATR / close * 100.",
        (_period(14, minimum=1),),
        inputs=_HLC,
    ),
    IndicatorSpec(
        "trange",
        "volatility",
        "True range: max(high, close[-1]) - min(low, close[-1]), in price units.",
        inputs=_HLC,
    ),
    IndicatorSpec(
        "stddev",
        "volatility",
        "Rolling population standard deviation of close, in price units.",
        (_period(20),),
    ),
    IndicatorSpec(
        "keltner",
        "volatility",
        "Keltner channel: EMA(close, period) +/- multiplier * ATR(atr_period).",
        (
            _period(20, "EMA period of the middle line, in bars"),
            _float("multiplier", 2.0, 0.1, 10.0, "band distance from the middle, in ATRs"),
            _int("atr_period", 10, "ATR period in bars", minimum=1),
        ),
        outputs=("upper", "middle", "lower"),
        inputs=_HLC,
    ),
    IndicatorSpec(
        "donchian",
        "volatility",
        "Donchian channel: highest high and lowest low over the window, and their midpoint.",
        (_period(20),),
        outputs=("upper", "middle", "lower"),
        inputs=_HL,
    ),
    IndicatorSpec(
        "squeeze",
        "volatility",
        "TTM-style squeeze: on = 1.0 while the Bollinger bands sit inside the Keltner channel "
        "(SMA middle, simple-average true range), else 0.0; momentum = linear-regression end point "
        "of close minus the mean of the Donchian midpoint and the SMA.",
        (
            _period(20),
            _float("bb_std", 2.0, 0.1, 10.0, "Bollinger width in population standard deviations"),
            _float("kc_multiplier", 1.5, 0.1, 10.0, "Keltner width in average true ranges"),
        ),
        outputs=("on", "momentum"),
        inputs=_HLC,
    ),
    IndicatorSpec(
        "chop",
        "volatility",
        "Choppiness index, 0..100: 100 * log10(sum of true range / window range) / log10(period).",
        (_period(14),),
        inputs=_HLC,
    ),
    # ---- volume --------------------------------------------------------------------------------
    IndicatorSpec(
        "obv",
        "volume",
        "On-balance volume: cumulative volume signed by the close-to-close change.",
        inputs=("close", "volume"),
    ),
    IndicatorSpec(
        "ad",
        "volume",
        "Chaikin accumulation/distribution line (cumulative money-flow volume).",
        inputs=_HLCV,
    ),
    IndicatorSpec(
        "adosc",
        "volume",
        "Chaikin A/D oscillator: EMA(fast) - EMA(slow) of the A/D line.",
        (
            _int("fast", 3, "fast EMA period in bars"),
            _int("slow", 10, "slow EMA period in bars"),
        ),
        less_than=(("fast", "slow"),),
        inputs=_HLCV,
    ),
    IndicatorSpec(
        "mfi",
        "volume",
        "Money flow index (volume-weighted RSI of the typical price), 0..100.",
        (_period(14),),
        inputs=_HLCV,
    ),
    IndicatorSpec(
        "vwap",
        "volume",
        "Rolling volume-weighted average of the typical price (high + low + close) / 3.",
        (_period(20),),
        inputs=_HLCV,
    ),
    IndicatorSpec(
        "cmf",
        "volume",
        "Chaikin money flow: summed money-flow volume / summed volume over the window, -1..1.",
        (_period(20),),
        inputs=_HLCV,
    ),
)

INDICATORS: dict[str, IndicatorSpec] = {spec.name: spec for spec in _SPECS}


def get_indicator(name: str) -> IndicatorSpec:
    """Return the catalog entry for indicator type ``name`` (lower-case, e.g. ``"rsi"``).

    Raises ValueError naming the closest known types when ``name`` is not in the catalog.
    """
    spec = INDICATORS.get(name)
    if spec is not None:
        return spec
    close = difflib.get_close_matches(str(name).lower(), INDICATORS, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "no close match"
    raise ValueError(
        f"unknown indicator {name!r} ({hint}); known indicators: {', '.join(sorted(INDICATORS))}"
    )


def _check_value(indicator: str, spec: ParamSpec, value: object) -> int | float:
    where = f"indicator {indicator!r} parameter {spec.name!r}"
    # bool is an int subclass; `period: true` is a typo, not a period of one.
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected {spec.type}, got bool {value!r}")
    if spec.type == "int":
        # numbers.Integral covers numpy integers too; floats such as 14.0 are refused, not cast.
        if not isinstance(value, numbers.Integral):
            raise ValueError(f"{where}: expected int, got {type(value).__name__} {value!r}")
        checked: int | float = int(value)
    else:
        if not isinstance(value, numbers.Real):
            raise ValueError(f"{where}: expected float, got {type(value).__name__} {value!r}")
        checked = float(value)
        if not math.isfinite(checked):
            raise ValueError(f"{where}: expected a finite number, got {checked!r}")
    if not spec.minimum <= checked <= spec.maximum:
        raise ValueError(f"{where}: {checked!r} is out of bounds [{spec.minimum}, {spec.maximum}]")
    return checked


def resolve_params(name: str, params: Mapping[str, object]) -> dict[str, int | float]:
    """Check ``params`` for indicator type ``name`` and fill in defaults.

    In: an indicator type and a mapping of parameter name to value (ints for int parameters;
    ints or floats for float parameters). Out: every declared parameter, in catalog order, as a
    Python int or float. Raises ValueError naming the indicator and parameter for an unknown
    indicator or parameter, a wrong type, a value out of its inclusive bounds, or a violated
    ordering such as ``fast < slow``.
    """
    spec = get_indicator(name)
    unknown = [key for key in params if spec.param(key) is None]
    if unknown:
        declared = ", ".join(p.name for p in spec.params) or "none"
        raise ValueError(
            f"indicator {name!r}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"declared parameters: {declared}"
        )
    resolved = {
        p.name: _check_value(name, p, params[p.name]) if p.name in params else p.default
        for p in spec.params
    }
    for low, high in spec.less_than:
        if not resolved[low] < resolved[high]:
            raise ValueError(
                f"indicator {name!r}: parameter {low!r} ({resolved[low]}) must be less than "
                f"{high!r} ({resolved[high]})"
            )
    return resolved
