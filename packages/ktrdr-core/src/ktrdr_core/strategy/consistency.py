"""Checks that span sections of a strategy, each problem with its exact key path.

They read the plain mapping (parsed YAML, a JSON body, or a model's dump) rather than
validated models, and skip whatever is structurally wrong there (the schema reports that), so
a file with a typo in ``training`` still has its broken references reported in the same pass.

Checked here:
- indicators against the catalog: known type, known parameters, int/float type, inclusive
  bounds, ordering pairs such as macd ``fast < slow``;
- membership names (they become part of feature names);
- references: a fuzzy set's or raw input's ``indicator[.output]`` must name a defined
  indicator and one of its outputs; an input's ``fuzzy_set`` must be defined; an input's
  timeframes must be the base timeframe or one of ``data.extra_timeframes``;
- ``data.embargo_bars`` must cover the label horizon;
- ``backtest.weights``, when given, name exactly the symbols of ``data.symbols``;
- feature names must be unique: ``ktrdr_core.strategy.features.check_feature_names``, on a
  built strategy.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ktrdr_core.catalog.indicators import INDICATORS, get_indicator, resolve_params
from ktrdr_core.catalog.types import IndicatorSpec
from ktrdr_core.strategy.issues import Path
from ktrdr_core.strategy.sections import (
    IDENTIFIER_PATTERN,
    LABEL_METHODS,
    StrategySections,
    input_source_problem,
    labels_choice_problem,
)
from ktrdr_core.timeframes import Timeframe

__all__ = [
    "Path",
    "Problem",
    "UnresolvedReference",
    "check_data",
    "resolve_defaults",
    "resolve_reference",
]

Problem = tuple[Path, str]

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_LABEL_HORIZON_KEYS: dict[str, str] = {
    "zigzag": "lookahead",
    "forward_return": "horizon",
    "triple_barrier": "max_holding_bars",
}


class UnresolvedReference(ValueError):
    """An ``indicator[.output]`` reference that does not resolve."""


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _known_list(known: Sequence[str]) -> str:
    return ", ".join(known) if known else "none"


def resolve_reference(ref: str, indicator_types: Mapping[str, str | None]) -> tuple[str, str]:
    """Resolve ``id`` or ``id.output`` against the strategy's indicators.

    In: the reference text and a mapping indicator id → catalog type (None when the type is
    unknown; then only the id is checked). Out: ``(indicator_id, output)``, the output being
    the only output of a single-output indicator when none is written. Raises
    UnresolvedReference saying what is missing and what exists.
    """
    indicator_id, _, output = ref.partition(".")
    if indicator_id not in indicator_types:
        defined = list(indicator_types)
        raise UnresolvedReference(
            f"refers to indicator {indicator_id!r}, which is not defined in indicators"
            f"{_suggest(indicator_id, defined)}; defined: {_known_list(defined)}"
        )
    type_name = indicator_types[indicator_id]
    if type_name is None or type_name not in INDICATORS:
        return indicator_id, output  # unknown type is reported at indicators.<id>.type
    outputs = INDICATORS[type_name].outputs
    if not output:
        if len(outputs) == 1:
            return indicator_id, outputs[0]
        raise UnresolvedReference(
            f"indicator {indicator_id} ({type_name}) has outputs {', '.join(outputs)}: name "
            f"one, e.g. {indicator_id}.{outputs[-1]}"
        )
    if output not in outputs:
        raise UnresolvedReference(
            f"indicator {indicator_id} ({type_name}) has no output {output!r}"
            f"{_suggest(output, outputs)}; its outputs: {', '.join(outputs)}"
        )
    return indicator_id, output


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_indicator(indicator_id: str, config: Any) -> list[Problem]:
    base: Path = ("indicators", indicator_id)
    if not isinstance(config, Mapping) or not isinstance(config.get("type"), str):
        return []  # structure is the schema's to report
    type_name = config["type"]
    try:
        spec = get_indicator(type_name)
    except ValueError as exc:
        return [((*base, "type"), str(exc))]
    params = config.get("params", {})
    if not isinstance(params, Mapping):
        return []
    problems: list[Problem] = []
    accepted: dict[str, int | float] = {}
    names = [p.name for p in spec.params]
    for key, value in params.items():
        path: Path = (*base, "params", key)
        param = spec.param(key) if isinstance(key, str) else None
        if param is None:
            takes = (
                f"{type_name} takes: {', '.join(names)}"
                if names
                else (f"{type_name} takes no parameters")
            )
            problems.append(
                (
                    path,
                    f"unknown parameter {key!r} for {type_name}{_suggest(str(key), names)}; "
                    f"{takes}",
                )
            )
            continue
        if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
            continue  # not a finite number: the schema reports it
        if param.type == "int" and not isinstance(value, int):
            problems.append((path, f"{key} of {type_name} must be an integer, got {value!r}"))
            continue
        if not param.minimum <= value <= param.maximum:
            problems.append(
                (
                    path,
                    f"{key} of {type_name} must be between {param.minimum} and "
                    f"{param.maximum}, got {value!r}",
                )
            )
            continue
        accepted[key] = value
    problems.extend(_check_ordering(spec, params, accepted, base))
    return problems


def _check_ordering(
    spec: IndicatorSpec, written: Mapping[str, Any], accepted: dict[str, int | float], base: Path
) -> list[Problem]:
    problems: list[Problem] = []
    for low, high in spec.less_than:
        if (low in written and low not in accepted) or (high in written and high not in accepted):
            continue  # one side already has its own error
        low_value = accepted.get(low, _default(spec, low))
        high_value = accepted.get(high, _default(spec, high))
        if not low_value < high_value:
            where = low if low in written else high
            problems.append(
                (
                    (*base, "params", where),
                    f"{low} must be less than {high} for {spec.name}, got {low}={low_value!r}, "
                    f"{high}={high_value!r}",
                )
            )
    return problems


def _default(spec: IndicatorSpec, name: str) -> int | float:
    param = spec.param(name)
    assert param is not None
    return param.default


def _indicator_types(indicators: Any) -> dict[str, str | None]:
    if not isinstance(indicators, Mapping):
        return {}
    return {
        str(key): (
            cfg.get("type")
            if isinstance(cfg, Mapping) and isinstance(cfg.get("type"), str)
            else None
        )
        for key, cfg in indicators.items()
    }


def _data_timeframes(data: Any) -> list[str] | None:
    """Valid timeframe names from data.timeframe + extra_timeframes; None if the base is bad."""
    if not isinstance(data, Mapping):
        return None
    valid = {tf.value for tf in Timeframe}
    base = data.get("timeframe")
    if base not in valid:
        return None
    extra = data.get("extra_timeframes", [])
    extras = [str(tf) for tf in extra if tf in valid] if isinstance(extra, list) else []
    return [str(base), *extras]


def check_data(data: Mapping[str, Any]) -> list[Problem]:
    """All cross-section problems of a strategy mapping, as ``(key path, message)`` pairs.

    In: the whole strategy as plain data (parsed YAML, JSON, or ``Strategy.model_dump()``).
    Parts that are not the right shape are skipped: the schema reports them.
    """
    problems: list[Problem] = []
    indicators = data.get("indicators")
    if isinstance(indicators, Mapping):
        for indicator_id, config in indicators.items():
            problems.extend(_check_indicator(str(indicator_id), config))
    types = _indicator_types(indicators)

    fuzzy_sets = data.get("fuzzy_sets")
    set_names: list[str] = []
    if isinstance(fuzzy_sets, Mapping):
        set_names = [str(name) for name in fuzzy_sets]
        for set_name, fuzzy_set in fuzzy_sets.items():
            problems.extend(_check_fuzzy_set(str(set_name), fuzzy_set, types))

    timeframes = _data_timeframes(data.get("data"))
    inputs = data.get("inputs")
    if isinstance(inputs, list):
        for index, item in enumerate(inputs):
            problems.extend(_check_input(index, item, set_names, types, timeframes, data))

    labels = data.get("labels")
    if isinstance(labels, Mapping):
        # Also checked by LabelsConfig, which pydantic skips when a method's own fields fail.
        problem = labels_choice_problem([m for m in LABEL_METHODS if labels.get(m) is not None])
        if problem:
            problems.append((("labels",), problem))
    problems.extend(_check_embargo(data))
    problems.extend(_check_weights(data))
    return problems


def _check_weights(data: Mapping[str, Any]) -> list[Problem]:
    section, backtest = data.get("data"), data.get("backtest")
    if not isinstance(section, Mapping) or not isinstance(backtest, Mapping):
        return []
    symbols, weights = section.get("symbols"), backtest.get("weights")
    if not isinstance(symbols, list) or not isinstance(weights, Mapping):
        return []
    unknown = [str(s) for s in weights if s not in symbols]
    missing = [str(s) for s in symbols if s not in weights]
    problems: list[Problem] = []
    if unknown:
        problems.append(
            (
                ("backtest", "weights"),
                f"{', '.join(unknown)} not in data.symbols ({', '.join(map(str, symbols))})",
            )
        )
    if missing:
        problems.append(
            (("backtest", "weights"), f"no weight for {', '.join(missing)}: name every symbol")
        )
    return problems


def _check_fuzzy_set(set_name: str, fuzzy_set: Any, types: dict[str, str | None]) -> list[Problem]:
    if not isinstance(fuzzy_set, Mapping):
        return []
    problems: list[Problem] = []
    base: Path = ("fuzzy_sets", set_name)
    ref = fuzzy_set.get("indicator")
    if isinstance(ref, str) and _is_reference(ref):
        try:
            resolve_reference(ref, types)
        except UnresolvedReference as exc:
            problems.append(((*base, "indicator"), str(exc)))
    for key in fuzzy_set:
        if key != "indicator" and not (isinstance(key, str) and _IDENTIFIER.match(key)):
            problems.append(
                (
                    (*base, key),
                    f"membership name {key!r} must be lower-case letters, digits and underscores, "
                    "starting with a letter (it becomes part of feature names)",
                )
            )
    return problems


def _is_reference(ref: str) -> bool:
    head, _, tail = ref.partition(".")
    return bool(_IDENTIFIER.match(head)) and (not tail or bool(_IDENTIFIER.match(tail)))


def _check_input(
    index: int,
    item: Any,
    set_names: list[str],
    types: dict[str, str | None],
    timeframes: list[str] | None,
    data: Mapping[str, Any],
) -> list[Problem]:
    if not isinstance(item, Mapping):
        return []
    problems: list[Problem] = []
    base: Path = ("inputs", index)
    # Also checked by InputSpec, which pydantic skips when another field of the input fails.
    source = input_source_problem(item.get("fuzzy_set") is not None, item.get("raw") is not None)
    if source:
        problems.append((base, source))
    set_name = item.get("fuzzy_set")
    # A broken fuzzy_sets section is the schema's to report; names are only checked against
    # a readable one.
    sets_readable = isinstance(data.get("fuzzy_sets", {}), Mapping)
    if isinstance(set_name, str) and sets_readable and set_name not in set_names:
        problems.append(
            (
                (*base, "fuzzy_set"),
                f"refers to fuzzy set {set_name!r}, which is not defined in fuzzy_sets"
                f"{_suggest(set_name, set_names)}; defined: {_known_list(set_names)}",
            )
        )
    raw = item.get("raw")
    if isinstance(raw, str) and _is_reference(raw):
        try:
            resolve_reference(raw, types)
        except UnresolvedReference as exc:
            problems.append(((*base, "raw"), str(exc)))
    chosen = item.get("timeframes")
    if timeframes is not None and isinstance(chosen, list):
        for tf_index, tf in enumerate(chosen):
            if isinstance(tf, str) and tf in {t.value for t in Timeframe} and tf not in timeframes:
                extra = ", ".join(timeframes[1:]) or "none"
                problems.append(
                    (
                        (*base, "timeframes", tf_index),
                        f"timeframe {tf} is not one of the strategy's timeframes (data.timeframe "
                        f"{timeframes[0]}, data.extra_timeframes: {extra}); add it to "
                        "data.extra_timeframes",
                    )
                )
    return problems


def _check_embargo(data: Mapping[str, Any]) -> list[Problem]:
    section = data.get("data")
    labels = data.get("labels")
    if not isinstance(section, Mapping) or not isinstance(labels, Mapping):
        return []
    embargo = section.get("embargo_bars")
    if not isinstance(embargo, int) or isinstance(embargo, bool):
        return []
    chosen = [m for m in _LABEL_HORIZON_KEYS if isinstance(labels.get(m), Mapping)]
    if len(chosen) != 1:
        return []
    method = chosen[0]
    key = _LABEL_HORIZON_KEYS[method]
    horizon = labels[method].get(key)
    if not isinstance(horizon, int) or isinstance(horizon, bool) or embargo >= horizon:
        return []
    return [
        (
            ("data", "embargo_bars"),
            f"embargo must cover the label horizon (labels.{method}.{key} = {horizon} bars) so "
            f"training labels never see validation or test bars; expected ≥ {horizon}, "
            f"got {embargo} (or leave it out to use the horizon)",
        )
    ]


def resolve_defaults(strategy: StrategySections) -> None:
    """Fill what the file may leave out, in place: catalog defaults for indicator parameters
    (ints as int, floats as float) and ``data.embargo_bars`` from the label horizon.

    Parts that do not resolve are left as written: they carry their own reported problem.
    """
    for config in strategy.indicators.values():
        if config.type in INDICATORS:
            try:
                config.params = resolve_params(config.type, config.params)
            except ValueError:
                continue
    if strategy.data.embargo_bars is None:
        strategy.data.embargo_bars = strategy.labels.horizon
