"""Parameter searches, the pure parts: the search-space file, a trial's score, and the
numbers that say how much a search's best result can be trusted.

A search-space file maps the dotted strategy paths that ``ktrdr runs diff`` prints to a
distribution, one per line::

    indicators.rsi_14.params.period: {int: [7, 28]}
    training.learning_rate: {float: [1e-4, 1e-2], log: true}
    model.hidden_layers: {choice: [[32], [64, 32]]}
    decisions.confidence_threshold: {float: [0.4, 0.7], step: 0.05}

``int`` and ``float`` take ``[low, high]`` (both included) with an optional ``step`` and
``log`` (not both); ``choice`` takes the list of values to pick from. :func:`parse_space`
reads the file and reports every problem at once, with the file's line; the backend then
checks each distribution against the strategy's schema (:func:`probe_values`).

The study itself (``ktrdr_worker.tuning``) runs Optuna on a backtest worker; its trials are
child walk-forwards the backend keeps (``ktrdr_api.tunes``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import OperationState, TrialView
from ktrdr_core.strategy.issues import StrategyProblem

__all__ = [
    "EULER_GAMMA",
    "DeflatedSharpe",
    "SpaceError",
    "deflated_sharpe",
    "grid_size",
    "objective_of",
    "overfitting_warning",
    "parse_space",
    "probe_values",
    "ranked_trials",
    "space_lines",
    "strategy_text",
    "trial_role",
]

EULER_GAMMA = 0.5772156649015329
"""The Euler–Mascheroni constant, in the expected maximum of many Sharpe ratios."""

_KINDS = ("int", "float", "choice")
_OPTIONS = {"int": {"step", "log"}, "float": {"step", "log"}, "choice": set()}


class SpaceError(KtrdrError):
    """A search-space file has problems; ``issues`` holds every one (path, line)."""

    def __init__(self, issues: Sequence[StrategyProblem]):
        self.issues = list(issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"invalid search space: {len(self.issues)} problem(s)\n{lines}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_distribution(spec: Any) -> str | dict[str, Any]:
    """The distribution ``spec`` describes, normalised, or what is wrong with it."""
    if not isinstance(spec, Mapping):
        return "expected a mapping such as {int: [7, 28]}, {float: [0.1, 0.9]} or {choice: [...]}"
    kinds = [k for k in _KINDS if k in spec]
    if len(kinds) != 1:
        found = ", ".join(map(str, spec)) or "nothing"
        return f"expected exactly one of int, float or choice; found {found}"
    kind = kinds[0]
    unknown = sorted(set(map(str, spec)) - {kind} - _OPTIONS[kind])
    if unknown:
        allowed = ", ".join(sorted(_OPTIONS[kind])) or "nothing else"
        return f"unknown option(s) {', '.join(unknown)} for {kind} (allowed: {allowed})"
    value = spec[kind]
    if kind == "choice":
        if not isinstance(value, list) or not value:
            return "choice expects a non-empty list of values"
        if len({repr(v) for v in value}) != len(value):
            return "choice lists a value twice"
        return {"choice": list(value)}
    if not isinstance(value, list) or len(value) != 2 or not all(map(_number, value)):
        return f"{kind} expects [low, high], two numbers"
    low, high = value
    if kind == "int" and not all(float(v).is_integer() for v in value):
        return f"int expects whole numbers, got [{low}, {high}]"
    if low >= high:
        return f"low {low} must be below high {high}"
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        return "log expects true or false"
    if log and step is not None:
        return "give step or log, not both"
    if log and low <= 0:
        return f"log needs a positive low, got {low}"
    if step is not None and (not _number(step) or step <= 0):
        return f"step expects a positive number, got {step!r}"
    if kind == "int" and step is not None and not float(step).is_integer():
        return f"an int step is a whole number, got {step}"
    out: dict[str, Any] = {kind: [int(low), int(high)] if kind == "int" else [low, high]}
    if log:
        out["log"] = True
    if step is not None:
        out["step"] = int(step) if kind == "int" else float(step)
    return out


def parse_space(text: str, filename: str | None = None) -> dict[str, dict[str, Any]]:
    """Read a search-space file: ``{dotted path: distribution}``, in file order.

    Raises :class:`SpaceError` with every problem (file, line, path): YAML that does not
    parse, a key that is no dotted path, a distribution that is malformed."""
    from ktrdr_core.strategy.yaml_source import parse_yaml

    parsed = parse_yaml(text)
    problems = [
        StrategyProblem(".".join(map(str, path)), message, filename, line)
        for path, message, line in parsed.problems
    ]
    if problems:
        raise SpaceError(problems)
    if not isinstance(parsed.data, Mapping) or not parsed.data:
        raise SpaceError(
            [StrategyProblem("", "expected a mapping of dotted strategy paths", filename, 1)]
        )
    space: dict[str, dict[str, Any]] = {}
    for key, spec in parsed.data.items():
        line = parsed.lines.get((key,))
        parts = str(key).split(".")
        if not isinstance(key, str) or any(not part for part in parts) or len(parts) < 2:
            problems.append(
                StrategyProblem(
                    str(key),
                    "expected a dotted strategy path such as indicators.rsi_14.params.period",
                    filename,
                    line,
                )
            )
            continue
        checked = _check_distribution(spec)
        if isinstance(checked, str):
            problems.append(StrategyProblem(key, checked, filename, line))
        else:
            space[key] = checked
    if problems:
        raise SpaceError(problems)
    return space


def space_lines(text: str) -> dict[str, int]:
    """Each top-level key's line in a search-space file (for problems found later)."""
    from ktrdr_core.strategy.yaml_source import parse_yaml

    return {str(path[0]): line for path, line in parse_yaml(text).lines.items() if len(path) == 1}


def probe_values(spec: Mapping[str, Any]) -> list[Any]:
    """The values of a distribution the schema must accept for the whole range to be
    usable: both ends of a range, every choice."""
    if "choice" in spec:
        return list(spec["choice"])
    kind = "int" if "int" in spec else "float"
    low, high = spec[kind]
    if "step" in spec:  # the last point the step reaches, which Optuna samples
        steps = math.floor((high - low) / spec["step"] + 1e-9)
        high = low + steps * spec["step"]
        high = int(high) if kind == "int" else round(high, 12)
    return [low, high]


def grid_size(space: Mapping[str, Mapping[str, Any]]) -> int | None:
    """How many points a grid over ``space`` has; None when a float range has no step."""
    size = 1
    for spec in space.values():
        if "choice" in spec:
            size *= len(spec["choice"])
        elif "int" in spec:
            low, high = spec["int"]
            size *= (high - low) // spec.get("step", 1) + 1
        elif "step" in spec:
            low, high = spec["float"]
            size *= math.floor((high - low) / spec["step"] + 1e-9) + 1
        else:
            return None
    return size


def strategy_text(document: Mapping[str, Any], header: Sequence[str]) -> str:
    """A strategy document as YAML, after ``header``'s lines as comments (the best trial's
    strategy, its header naming the study and the holdout result)."""
    import yaml

    comments = "".join(f"# {line}\n" for line in header)
    return comments + yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True)


def trial_role(number: int, *, holdout: bool = False) -> str:
    """A study's child role: ``trial:3``, or ``holdout:3`` for trial 3's holdout run."""
    return f"{'holdout' if holdout else 'trial'}:{number}"


def ranked_trials(trials: Iterable[TrialView], direction: str) -> list[TrialView]:
    """The completed trials that have an objective value, best first for ``direction``
    (``maximize`` or ``minimize``); of two equal values the lower trial number ranks first.
    The one ranking of a study: its best trial, the holdout re-evaluations, the bundles
    kept."""
    sign = -1 if direction == "maximize" else 1
    done = [t for t in trials if t.state == OperationState.COMPLETED and t.value is not None]
    return sorted(done, key=lambda t: (sign * t.value, t.number))  # type: ignore[operator]


def objective_of(summary: Mapping[str, Any] | None, objective: str) -> float | None:
    """The objective's value in a walk-forward's or backtest's result summary (its
    ``metrics``): a finite number, or None when the run has none (no trades, no variance)."""
    metrics = (summary or {}).get("metrics") or {}
    value = metrics.get(objective)
    if isinstance(value, Mapping):
        value = value.get("value")
    return float(value) if _number(value) else None


@dataclass(frozen=True)
class DeflatedSharpe:
    """The probability that the best trial's Sharpe ratio beats what the best of ``trials``
    unskilled trials would show by luck (Bailey & López de Prado, 2014)."""

    probability: float
    expected_max: float
    trials: int


def deflated_sharpe(
    sharpe: float,
    trial_sharpes: Sequence[float],
    observations: int,
    *,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> DeflatedSharpe | None:
    """The deflated Sharpe ratio of a best trial.

    ``sharpe`` and ``trial_sharpes`` are per-period Sharpe ratios (not annualised: divide
    an annual one by √periods-per-year); ``observations`` the returns behind ``sharpe``.
    The benchmark is the expected maximum of ``len(trial_sharpes)`` Sharpe ratios with the
    trials' variance and zero mean; the result is the probability (0–1) that the true
    Sharpe exceeds it, given the returns' ``skew`` and ``kurtosis`` (3: normal). None with
    fewer than two trials or observations (no variance to deflate by).
    """
    n = len(trial_sharpes)
    if n < 2 or observations < 2:
        return None
    mean = sum(trial_sharpes) / n
    variance = sum((s - mean) ** 2 for s in trial_sharpes) / (n - 1)
    normal = NormalDist()
    expected_max = math.sqrt(variance) * (
        (1 - EULER_GAMMA) * normal.inv_cdf(1 - 1 / n)
        + EULER_GAMMA * normal.inv_cdf(1 - 1 / (n * math.e))
    )
    spread = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if spread <= 0:
        return None
    z = (sharpe - expected_max) * math.sqrt(observations - 1) / math.sqrt(spread)
    return DeflatedSharpe(probability=normal.cdf(z), expected_max=expected_max, trials=n)


def overfitting_warning(
    search: float | None, holdout: float | None, objective: str, direction: str
) -> str | None:
    """Plain words when the holdout falls far below the search (None: no warning): the
    holdout is worse by more than half the search's magnitude, or on the wrong side of 0."""
    if search is None or holdout is None:
        return None
    sign = 1 if direction == "maximize" else -1
    drop = sign * (search - holdout)
    if drop <= 0:
        return None
    if drop > 0.5 * abs(search) or (sign * search > 0 >= sign * holdout):
        return (
            f"the best trial's {objective} fell from {search:.4g} during the search to "
            f"{holdout:.4g} on the holdout it never saw: the search probably fitted noise; "
            "trust the holdout figure, not the search's"
        )
    return None
