"""From class probabilities to target positions (a strategy's ``decisions`` section).

At every bar, in time order, with ``position`` the target so far (1 long, 0 flat, -1 short):

- no prediction (NaN probabilities: features warming up or missing) → no new position: the
  current one is kept;
- the winning class is HOLD → keep the position;
- the winner is BUY or SELL with a probability below ``confidence_threshold`` → keep;
- BUY → go long; SELL → go short (``long_short``) or close a long (``long_only``; a SELL
  while flat does nothing);
- a change that comes fewer than ``min_separation_bars`` bars after the previous change is
  suppressed (the position is kept), so the model cannot churn.

The target at bar t is decided at t's close; the backtest engine fills it at t+1's open.
Every bar is counted, so a run without trades always says why (:func:`no_trade_reason`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ktrdr_core.errors import KtrdrError
from ktrdr_core.reports import CLASS_NAMES

__all__ = ["DecisionError", "DecisionSettings", "Decisions", "decide_positions", "no_trade_reason"]

BUY, HOLD, SELL = 0, 1, 2


class DecisionError(KtrdrError, ValueError):
    """Decision settings or probabilities that cannot be used; the message names which."""


@dataclass(frozen=True)
class DecisionSettings:
    """``confidence_threshold``: smallest winning probability acted on (0..1);
    ``min_separation_bars``: fewest bars between two position changes; ``mode``:
    ``long_only`` or ``long_short``."""

    confidence_threshold: float = 0.5
    min_separation_bars: int = 0
    mode: Literal["long_only", "long_short"] = "long_only"

    def __post_init__(self) -> None:
        t = self.confidence_threshold
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0.0 <= t <= 1.0:
            raise DecisionError(f"decisions.confidence_threshold: expected 0..1, got {t!r}")
        s = self.min_separation_bars
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise DecisionError(
                f"decisions.min_separation_bars: expected an integer ≥ 0, got {s!r}"
            )
        if self.mode not in ("long_only", "long_short"):
            raise DecisionError(
                f"decisions.mode: expected long_only or long_short, got {self.mode!r}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecisionSettings:
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decisions:
    """Target positions (int8 Series on the probabilities' index: 1, 0, -1) and the counts
    (keys of ``ktrdr_core.reports.SignalCounts``), plus the highest BUY/SELL probability seen
    (NaN when there was no prediction)."""

    positions: pd.Series
    counts: dict[str, int]
    max_signal_confidence: float


def decide_positions(probabilities: pd.DataFrame, settings: DecisionSettings) -> Decisions:
    """Turn per-bar class probabilities into target positions (see the module docstring).

    ``probabilities``: columns ``BUY, HOLD, SELL`` (fractions), one row per bar in time order,
    NaN rows allowed.
    """
    missing = [name for name in CLASS_NAMES if name not in probabilities.columns]
    if missing:
        raise DecisionError(
            f"probabilities need columns {', '.join(CLASS_NAMES)}; missing {', '.join(missing)}"
        )
    p = probabilities[list(CLASS_NAMES)].to_numpy(dtype=np.float64)
    valid = np.isfinite(p).all(axis=1)
    winner = np.where(valid, np.argmax(np.where(valid[:, None], p, 0.0), axis=1), -1)
    confidence = np.where(valid, p[np.arange(len(p)), np.maximum(winner, 0)], np.nan)
    long_short = settings.mode == "long_short"
    counts = dict.fromkeys(
        (
            *CLASS_NAMES,
            "no_data",
            "below_threshold",
            "suppressed_by_separation",
            "ignored_short",
            "position_changes",
        ),
        0,
    )
    for cls, name in enumerate(CLASS_NAMES):
        counts[name] = int((winner == cls).sum())
    counts["no_data"] = int((~valid).sum())
    signal = valid & (winner != HOLD)
    strong = signal & (confidence >= settings.confidence_threshold)
    counts["below_threshold"] = int((signal & ~strong).sum())

    change_bars: list[int] = []
    change_values: list[int] = []
    position = 0
    last_change = -(10**12)
    # Only strong signals can change the position; between them it is carried forward.
    for t in np.flatnonzero(strong):
        wanted = 1 if winner[t] == BUY else (-1 if long_short else 0)
        if winner[t] == SELL and not long_short and position == 0:
            counts["ignored_short"] += 1
            continue
        if wanted == position:
            continue
        if t - last_change < settings.min_separation_bars:
            counts["suppressed_by_separation"] += 1
            continue
        position, last_change = wanted, int(t)
        change_bars.append(int(t))
        change_values.append(wanted)
    counts["position_changes"] = len(change_bars)
    series = np.zeros(len(p), dtype=np.int8)
    bounds = [*change_bars, len(p)]
    for start, stop, value in zip(bounds[:-1], bounds[1:], change_values, strict=True):
        series[start:stop] = value
    signal_conf = np.where(signal, confidence, np.nan)
    max_conf = float(np.nanmax(signal_conf)) if np.isfinite(signal_conf).any() else float("nan")
    return Decisions(
        positions=pd.Series(series, index=probabilities.index, name="position"),
        counts=counts,
        max_signal_confidence=max_conf,
    )


def no_trade_reason(
    decisions: Decisions, settings: DecisionSettings, trades: int, bars: int
) -> str | None:
    """Why a backtest made no trade, from its signal counts (None when it traded)."""
    if trades > 0:
        return None
    c = decisions.counts
    if bars < 2:
        return f"only {bars} bar(s): a position decided at a close needs a next bar to fill"
    if c["no_data"] == bars:
        return (
            f"no prediction on any of the {bars} bars: the features were NaN (warm-up too "
            "short, or missing data)"
        )
    if c["BUY"] == 0 and c["SELL"] == 0:
        return f"the model predicted HOLD on all {bars - c['no_data']} bars with a prediction"
    if c["position_changes"] == 0 and c["below_threshold"] == c["BUY"] + c["SELL"]:
        return (
            f"no BUY/SELL prediction reached the confidence threshold "
            f"{settings.confidence_threshold:g} "
            f"(highest was {decisions.max_signal_confidence:.3f}); "
            f"{c['below_threshold']} signals were below it"
        )
    if c["position_changes"] == 0 and c["ignored_short"] > 0:
        return (
            f"long-only mode and the model's confident signals were all SELL while flat "
            f"({c['ignored_short']} ignored); set decisions.mode: long_short to trade them"
        )
    if c["position_changes"] == 0 and c["suppressed_by_separation"] > 0:
        return (
            f"every signal came within decisions.min_separation_bars = "
            f"{settings.min_separation_bars} bars of the previous change"
        )
    if c["position_changes"] == 1:
        return "the only position change came on the last bar, which has no next bar to fill at"
    return "no position change reached the engine (see signal counts)"
