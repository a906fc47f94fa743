"""Model inputs from a strategy: indicators → fuzzy degrees (and raw values) → one frame.

``build_features(strategy, data)`` computes, for one symbol, every feature the strategy
lists, and returns a frame whose columns are exactly ``strategy.feature_names()`` in that
order, on the base timeframe's bars:

1. for each timeframe a feature needs, the OHLCV bars: the base frame itself, a frame given
   for that timeframe, or the base bars resampled (``frames.resample_ohlcv``);
2. each indicator the features read, computed once per timeframe
   (``indicators.compute``, parameters as resolved by the schema);
3. a fuzzy feature is the membership degree (``fuzzy.membership``) of the indicator output,
   a raw feature the output itself;
4. higher-timeframe values are aligned onto the base bars without lookahead
   (``frames.align_to_base``: a higher bar counts only once it has closed);
5. rows where any feature is NaN — indicator warm-up, a higher timeframe without a closed bar
   yet — are dropped and counted in the :class:`FeatureReport`, never filled.

``check_feature_names(expected, actual)`` compares a model's saved names with a frame and
raises :class:`FeatureMismatchError` listing what is missing, extra or out of order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ktrdr_core.errors import KtrdrError
from ktrdr_core.timeframes import Timeframe, parse_timeframe
from ktrdr_worker import frames
from ktrdr_worker.fuzzy import membership
from ktrdr_worker.indicators import compute

if TYPE_CHECKING:
    from ktrdr_core.strategy.features import FeatureSpec
    from ktrdr_core.strategy.schema import Strategy

__all__ = [
    "FeatureError",
    "FeatureFrame",
    "FeatureMismatchError",
    "FeatureReport",
    "build_features",
    "check_feature_names",
    "compute_features",
]


class FeatureError(KtrdrError, ValueError):
    """Features could not be built from this data; the message says what and where."""


class FeatureMismatchError(FeatureError):
    """A frame's feature names differ from the ones a model was trained on."""

    def __init__(
        self,
        message: str,
        *,
        missing: list[str],
        extra: list[str],
        reordered: list[tuple[int, str, str]],
    ):
        super().__init__(message)
        self.missing = missing
        self.extra = extra
        self.reordered = reordered


@dataclass(frozen=True)
class FeatureReport:
    """What building the features dropped, and why.

    ``total_rows``: base bars in. ``kept_rows``: rows in the frame. ``warmup_rows``: leading
    rows dropped because some feature was still NaN (indicator warm-up, or no closed
    higher-timeframe bar yet). ``gap_rows``: later rows dropped because some feature was NaN
    there (an indicator undefined on that bar, e.g. a zero range). ``warmup_by_feature`` and
    ``gaps_by_feature``: NaN rows of each feature (only features with any), in feature order.
    ``first_kept``: timestamp of the first row kept (None when none is).
    """

    total_rows: int
    kept_rows: int
    warmup_rows: int
    gap_rows: int
    first_kept: pd.Timestamp | None
    warmup_by_feature: dict[str, int] = field(default_factory=dict)
    gaps_by_feature: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_rows(self) -> int:
        return self.warmup_rows + self.gap_rows

    def summary(self) -> str:
        """One paragraph for logs and progress messages."""
        text = f"{self.kept_rows} of {self.total_rows} bars have every feature"
        if self.warmup_rows:
            worst = max(self.warmup_by_feature.items(), key=lambda item: item[1])
            text += (
                f"; dropped {self.warmup_rows} warm-up bars at the start (longest: "
                f"{worst[0]}, NaN for {worst[1]} bars)"
            )
        if self.gap_rows:
            names = ", ".join(f"{k} ({v})" for k, v in self.gaps_by_feature.items())
            text += f"; dropped {self.gap_rows} later bars where a feature was NaN: {names}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (for training results and model bundles)."""
        return {
            "total_rows": self.total_rows,
            "kept_rows": self.kept_rows,
            "warmup_rows": self.warmup_rows,
            "gap_rows": self.gap_rows,
            "first_kept": None if self.first_kept is None else self.first_kept.isoformat(),
            "warmup_by_feature": dict(self.warmup_by_feature),
            "gaps_by_feature": dict(self.gaps_by_feature),
        }


@dataclass(frozen=True)
class FeatureFrame:
    """Features of one symbol: ``frame`` (float64 columns exactly the strategy's feature names,
    in order, indexed by base-timeframe bar opens, no NaN) and its :class:`FeatureReport`."""

    frame: pd.DataFrame
    report: FeatureReport

    @property
    def names(self) -> list[str]:
        return [str(c) for c in self.frame.columns]


# --------------------------------------------------------------------------- inputs


def _check_ohlcv(ohlcv: Any, timeframe: Timeframe, where: str) -> pd.DataFrame:
    if not isinstance(ohlcv, pd.DataFrame):
        raise FeatureError(f"{where}: expected an ohlcv DataFrame, got {type(ohlcv).__name__}")
    try:
        frames.check_ohlcv(ohlcv, timeframe)
    except ValueError as exc:
        raise FeatureError(f"{where}: {exc}") from None
    if len(ohlcv) == 0:
        raise FeatureError(f"{where}: the ohlcv frame has no bars")
    return ohlcv


def _bars_by_timeframe(
    strategy: Strategy, data: pd.DataFrame | Mapping[Any, pd.DataFrame], needed: list[Timeframe]
) -> dict[Timeframe, pd.DataFrame]:
    """OHLCV for every needed timeframe: given frames, else resampled from the base."""
    base_tf = strategy.data.timeframe
    given: dict[Timeframe, pd.DataFrame] = {}
    if isinstance(data, pd.DataFrame):
        given[base_tf] = data
    elif isinstance(data, Mapping):
        for key, frame in data.items():
            try:
                given[parse_timeframe(key)] = frame
            except ValueError as exc:
                raise FeatureError(f"data: {exc}") from None
    else:
        raise FeatureError(
            "data: expected the base-timeframe ohlcv DataFrame or a mapping timeframe → "
            f"DataFrame, got {type(data).__name__}"
        )
    if base_tf not in given:
        raise FeatureError(
            f"data: the strategy's base timeframe is {base_tf.value} but data was given for "
            f"{', '.join(tf.value for tf in given) or 'no timeframe'}"
        )
    bars = {base_tf: _check_ohlcv(given[base_tf], base_tf, f"data[{base_tf.value}]")}
    for tf in needed:
        if tf in bars:
            continue
        if tf in given:
            bars[tf] = _check_ohlcv(given[tf], tf, f"data[{tf.value}]")
        else:
            bars[tf] = frames.resample_ohlcv(bars[base_tf], base_tf, tf)
    return bars


# --------------------------------------------------------------------------- build


def compute_features(
    strategy: Strategy, data: pd.DataFrame | Mapping[Any, pd.DataFrame]
) -> pd.DataFrame:
    """Every feature on every base bar, NaN kept (warm-up rows included).

    In: a validated strategy and one symbol's data — the base-timeframe ohlcv frame, or a
    mapping timeframe (``"1h"`` or ``Timeframe``) → ohlcv frame holding at least the base
    timeframe (missing higher timeframes are resampled from the base). Out: float64 frame on
    the base index with columns exactly ``strategy.feature_names()``. Use
    :func:`build_features` for the model-ready frame with NaN rows dropped and reported.
    """
    specs: list[FeatureSpec] = strategy.features()
    base_tf = strategy.data.timeframe
    needed = list(dict.fromkeys(spec.timeframe for spec in specs))
    shorter = [tf.value for tf in needed if tf < base_tf]
    if shorter:
        raise FeatureError(
            f"features on {', '.join(shorter)} are shorter than the base timeframe "
            f"{base_tf.value}; they cannot be aligned onto it"
        )
    bars = _bars_by_timeframe(strategy, data, needed)
    base_index = bars[base_tf].index

    indicator_cache: dict[tuple[Timeframe, str], pd.DataFrame] = {}

    def indicator(tf: Timeframe, indicator_id: str) -> pd.DataFrame:
        key = (tf, indicator_id)
        if key not in indicator_cache:
            config = strategy.indicators[indicator_id]
            try:
                indicator_cache[key] = compute(config.type, bars[tf], **config.params)
            except ValueError as exc:
                raise FeatureError(f"indicators.{indicator_id} on {tf.value}: {exc}") from exc
        return indicator_cache[key]

    # Features per timeframe first, so each higher timeframe is aligned in one call.
    by_tf: dict[Timeframe, dict[str, np.ndarray]] = {tf: {} for tf in needed}
    for spec in specs:
        values = indicator(spec.timeframe, spec.indicator)[spec.output].to_numpy(np.float64)
        if spec.kind == "fuzzy":
            assert spec.membership_spec is not None  # set for every fuzzy feature
            member = spec.membership_spec
            values = membership(member.type, values, member.params)
        by_tf[spec.timeframe][spec.name] = values

    names = [spec.name for spec in specs]
    position = {name: i for i, name in enumerate(names)}
    # One (features × bars) block filled in place: the frame wraps it without another copy.
    block = np.empty((len(names), len(base_index)), dtype=np.float64)
    for tf, named in by_tf.items():
        if tf == base_tf:
            for name, values in named.items():
                block[position[name]] = values
            continue
        higher = pd.DataFrame(
            np.column_stack(list(named.values())), index=bars[tf].index, columns=list(named)
        )
        aligned = frames.align_to_base(higher, tf, base_index, base_tf).to_numpy(np.float64)
        for j, name in enumerate(named):
            block[position[name]] = aligned[:, j]
    return pd.DataFrame(block.T, index=base_index, columns=names, copy=False)


def build_features(
    strategy: Strategy, data: pd.DataFrame | Mapping[Any, pd.DataFrame]
) -> FeatureFrame:
    """Model-ready features of one symbol, and what was dropped.

    In: as :func:`compute_features`. Out: a :class:`FeatureFrame` whose frame has columns
    exactly ``strategy.feature_names()`` (in order), the base bars where every feature is
    defined, float64 and NaN-free; its report counts the warm-up rows dropped at the start and
    any later rows dropped for a NaN, per feature. Raises :class:`FeatureError` when no row
    has every feature (too little data for the longest warm-up).
    """
    full = compute_features(strategy, data)
    valid = full.notna().to_numpy()
    complete = valid.all(axis=1)
    n = len(full)
    first = int(np.argmax(complete)) if complete.any() else n
    names = list(full.columns)
    warmup_by_feature = {
        name: int((~valid[:first, i]).sum())
        for i, name in enumerate(names)
        if (~valid[:first, i]).any()
    }
    tail = valid[first:]
    gaps_by_feature = {
        name: int((~tail[:, i]).sum()) for i, name in enumerate(names) if (~tail[:, i]).any()
    }
    kept = full.iloc[first:][complete[first:]]
    report = FeatureReport(
        total_rows=n,
        kept_rows=len(kept),
        warmup_rows=first,
        gap_rows=int((~complete[first:]).sum()),
        first_kept=kept.index[0] if len(kept) else None,
        warmup_by_feature=warmup_by_feature,
        gaps_by_feature=gaps_by_feature,
    )
    if not len(kept):
        longest = sorted(
            ((int((~valid[:, i]).sum()), name) for i, name in enumerate(names)), reverse=True
        )[:3]
        detail = ", ".join(f"{name} NaN on {count}" for count, name in longest)
        raise FeatureError(
            f"no bar of the {n} has every feature: the data is shorter than the warm-up "
            f"({detail}); give more history"
        )
    return FeatureFrame(kept, report)


# --------------------------------------------------------------------------- checking


def check_feature_names(expected: Sequence[str], actual: Sequence[str] | pd.DataFrame) -> None:
    """Raise :class:`FeatureMismatchError` unless ``actual`` has exactly ``expected``, in order.

    ``expected``: the names a model was trained on (saved in its bundle). ``actual``: a
    feature frame or its column names. The error lists names missing from the frame, names
    the model does not know, and the first positions where the order differs.
    """
    got = [str(c) for c in (actual.columns if isinstance(actual, pd.DataFrame) else actual)]
    want = [str(c) for c in expected]
    if got == want:
        return
    got_set, want_set = set(got), set(want)
    missing = [n for n in want if n not in got_set]
    extra = [n for n in got if n not in want_set]
    duplicated = sorted({n for n in got if got.count(n) > 1})
    common_want = [n for n in want if n in got_set]
    common_got = [n for n in got if n in want_set]
    reordered = [
        (i, w, g) for i, (w, g) in enumerate(zip(common_want, common_got, strict=False)) if w != g
    ]
    parts = [f"the model expects {len(want)} features, the frame has {len(got)}"]
    if missing:
        parts.append(f"missing from the frame: {missing}")
    if extra:
        parts.append(f"not known to the model: {extra}")
    if duplicated:
        parts.append(f"repeated in the frame: {duplicated}")
    if reordered:
        shown = "; ".join(
            f"position {i}: model has {w!r}, frame has {g!r}" for i, w, g in reordered[:5]
        )
        more = f" (and {len(reordered) - 5} more)" if len(reordered) > 5 else ""
        parts.append(f"order differs — {shown}{more}")
    raise FeatureMismatchError(
        "feature names do not match the model: " + "; ".join(parts),
        missing=missing,
        extra=extra,
        reordered=reordered,
    )
