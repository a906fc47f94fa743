"""Feature names and their order, derived from the strategy file alone.

Training saves this list in the model bundle and inference compares it before predicting, so
the rule below is part of the file format — change it only with a new bundle format.

Order:

1. inputs in the order they are listed under ``inputs``;
2. within an input, its timeframes in the order listed (``timeframes`` left out = the base
   timeframe ``data.timeframe`` only);
3. within a timeframe, for a fuzzy input one feature per membership of the set, in the order
   the memberships are written in the set; for a raw input exactly one feature.

Names:

- fuzzy input: ``{timeframe}_{set}_{membership}``, e.g. ``1h_rsi_zone_oversold``;
- raw input: ``{timeframe}_{indicator}_raw`` when the indicator has a single output (even if
  written ``rsi_14.value``), else ``{timeframe}_{indicator}.{output}_raw``, e.g.
  ``4h_macd_fast.hist_raw``.

Feature values: a fuzzy feature is the membership degree (0..1) of the set's indicator output
computed on that timeframe; a raw feature is the indicator output itself. Higher-timeframe
values are aligned onto the base timeframe without lookahead (a bar counts once closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ktrdr_core.catalog.indicators import INDICATORS
from ktrdr_core.strategy.consistency import Problem, resolve_reference
from ktrdr_core.strategy.issues import Path
from ktrdr_core.strategy.sections import Membership, StrategySections
from ktrdr_core.timeframes import Timeframe

__all__ = ["FeatureSpec", "check_feature_names", "derive_features"]


@dataclass(frozen=True)
class FeatureSpec:
    """One model input column.

    ``indicator`` is the indicator id (a key of ``Strategy.indicators``) and ``output`` the
    catalog output column it reads (``"value"`` for single-output indicators). For fuzzy
    features ``fuzzy_set``/``membership`` name the set and membership and ``membership_spec``
    holds its function; both are None for raw features. ``input_index`` is the position in
    ``Strategy.inputs`` that produced it.
    """

    name: str
    kind: Literal["fuzzy", "raw"]
    timeframe: Timeframe
    indicator: str
    output: str
    fuzzy_set: str | None
    membership: str | None
    membership_spec: Membership | None
    input_index: int


def derive_features(strategy: StrategySections) -> list[FeatureSpec]:
    """All features of a validated strategy, in the documented order (see module docstring)."""
    types: dict[str, str | None] = {key: cfg.type for key, cfg in strategy.indicators.items()}
    features: list[FeatureSpec] = []
    for index, spec in enumerate(strategy.inputs):
        timeframes = spec.timeframes or [strategy.data.timeframe]
        for timeframe in timeframes:
            if spec.fuzzy_set is not None:
                fuzzy_set = strategy.fuzzy_sets[spec.fuzzy_set]
                indicator, output = resolve_reference(fuzzy_set.indicator, types)
                for member_name, member in fuzzy_set.memberships.items():
                    features.append(
                        FeatureSpec(
                            name=f"{timeframe.value}_{spec.fuzzy_set}_{member_name}",
                            kind="fuzzy",
                            timeframe=timeframe,
                            indicator=indicator,
                            output=output,
                            fuzzy_set=spec.fuzzy_set,
                            membership=member_name,
                            membership_spec=member,
                            input_index=index,
                        )
                    )
            else:
                assert spec.raw is not None  # InputSpec guarantees one of the two
                indicator, output = resolve_reference(spec.raw, types)
                single = len(INDICATORS[types[indicator] or ""].outputs) == 1
                column = indicator if single else f"{indicator}.{output}"
                features.append(
                    FeatureSpec(
                        name=f"{timeframe.value}_{column}_raw",
                        kind="raw",
                        timeframe=timeframe,
                        indicator=indicator,
                        output=output,
                        fuzzy_set=None,
                        membership=None,
                        membership_spec=None,
                        input_index=index,
                    )
                )
    return features


def check_feature_names(strategy: StrategySections) -> list[Problem]:
    """Feature names produced twice (e.g. set ``a_b`` + membership ``c`` and set ``a`` +
    membership ``b_c`` both give ``1h_a_b_c``), reported once at each input that repeats one."""
    seen: dict[str, int] = {}
    problems: dict[Path, str] = {}
    for feature in derive_features(strategy):
        first = seen.setdefault(feature.name, feature.input_index)
        path: Path = ("inputs", feature.input_index)
        if first != feature.input_index and path not in problems:
            problems[path] = (
                f"feature {feature.name!r} is already produced by inputs[{first}]; feature "
                "names must be unique (rename a fuzzy set or membership, or drop the repeated "
                "input)"
            )
    return list(problems.items())
