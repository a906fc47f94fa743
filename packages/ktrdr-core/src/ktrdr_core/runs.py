"""Experiment records: what went into a training, backtest or walk-forward, and what changed
between two of them.

Every operation keeps its inputs (the effective strategy, data checksums, seed, backend
versions; the worker's versions in its attempts). :func:`run_record` flattens one into a
:class:`RunRecord`; :func:`diff_runs` lines two up: parameters, data, seed and code versions
that differ, beside how the metrics moved.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import OperationView, WalkforwardResult

__all__ = [
    "RUN_KINDS",
    "NotARun",
    "RunDiff",
    "RunRecord",
    "diff_runs",
    "flatten",
    "look_up_record",
    "result_period",
    "run_record",
]

RUN_KINDS = ("training", "backtest", "walkforward")
"""The operations that are experiments (the others fetch data or check it)."""


class NotARun(KtrdrError, ValueError):
    """The operation is not a training, backtest or walk-forward."""


# Inputs that are bookkeeping, not choices a researcher made.
_NOT_PARAMETERS = {"kind", "strategy_yaml", "strategy_hash", "data", "versions", "reuse"}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [2, 3]}`` -> ``{"a.b": 1, "c": [2, 3]}`` (lists stay whole)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        if not value and prefix:
            out[prefix[:-1]] = {}
        return out
    return {prefix[:-1]: value} if prefix else {"": value}


def _strategy_parameters(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    from ktrdr_core.strategy.yaml_source import parse_yaml

    parsed = parse_yaml(text)
    if not isinstance(parsed.data, Mapping):
        return {}
    document = dict(parsed.data)
    document.pop("description", None)  # prose, not a parameter
    return {f"strategy.{key}": value for key, value in flatten(document).items()}


def _numbers(values: Mapping[str, Any] | None) -> dict[str, float]:
    out = {}
    for key, value in (values or {}).items():
        if isinstance(value, Mapping) and "value" in value:  # {"value": …, "std": …}
            value = value["value"]
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
    return out


@dataclass
class RunRecord:
    """One operation as an experiment: its choices, its data and code, its numbers."""

    operation_id: str
    kind: str
    state: str
    strategy_name: str | None
    strategy_hash: str | None
    created_at: datetime
    seed: int | None
    data: dict[str, str]
    versions: dict[str, str]
    parameters: dict[str, Any]
    metrics: dict[str, float]
    retry_of: str | None = None
    notes: list[str] = field(default_factory=list)
    # The bars the numbers cover, first and last bar open (ISO, UTC); None when unknown.
    period: tuple[str | None, str | None] = (None, None)


def result_period(kind: str, summary: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """First and last bar (ISO, UTC) a backtest's or walk-forward's numbers cover: a backtest
    its traded bars, a walk-forward its test windows end to end."""
    if kind == "backtest":
        return summary.get("start"), summary.get("end")
    if kind == "walkforward":
        folds = summary.get("folds") or []
        if folds:
            return folds[0].get("test_start"), folds[-1].get("test_end")
    return None, None


def run_record(
    view: OperationView,
    strategy_yaml: str | None = None,
    worker_versions: Mapping[str, str] | None = None,
) -> RunRecord:
    """The record of ``view``. A backtest's inputs hold no strategy text: pass its model's
    (the training operation's ``strategy_yaml``) as ``strategy_yaml``. A walk-forward runs on
    the backend and its children on workers: pass a child's ``worker_versions``."""
    inputs = view.inputs.model_dump(mode="json")
    text = strategy_yaml or inputs.get("strategy_yaml")
    parameters = _strategy_parameters(text)
    for key, value in flatten(
        {k: v for k, v in inputs.items() if k not in _NOT_PARAMETERS}
    ).items():
        if key.startswith("overrides."):
            continue  # already applied to the effective strategy above
        parameters[f"{view.kind}.{key}"] = value
    versions = {f"backend {name}": v for name, v in view.reproducibility.versions.items()}
    attempts = view.reproducibility.attempts
    if attempts and worker_versions is None:
        worker_versions = attempts[-1].worker_versions
    versions |= {f"worker {name}": v for name, v in (worker_versions or {}).items()}
    summary = view.result.summary if view.result else {}
    period = result_period(str(view.kind), summary)
    # A period left to its default is shown as the one the numbers cover, not as a blank.
    for key, value in zip(("start", "end"), period, strict=True):
        if parameters.get(f"{view.kind}.{key}") is None and value is not None:
            parameters[f"{view.kind}.{key}"] = value
    if view.kind == "training":
        metrics = _numbers(summary.get("test_metrics"))
    else:
        metrics = _numbers(summary.get("metrics"))
        # A portfolio's numbers are the whole's; each symbol's sleeve follows (GOOG.sharpe).
        for symbol, section in (summary.get("per_symbol") or {}).items():
            sleeve = _numbers(section.get("metrics"))
            metrics |= {f"{symbol}.{key}": value for key, value in sleeve.items()}
    notes = []
    if view.kind == "backtest" and strategy_yaml is None:
        notes.append("strategy parameters unknown (the model's training is not on record)")
    return RunRecord(
        operation_id=view.operation_id,
        kind=str(view.kind),
        state=str(view.state),
        strategy_name=view.strategy_name or inputs.get("strategy_name"),
        strategy_hash=view.reproducibility.strategy_hash,
        created_at=view.created_at,
        seed=view.reproducibility.seed,
        data=dict(view.reproducibility.data_checksums),
        versions=versions,
        parameters=parameters,
        metrics=metrics,
        retry_of=view.retry_of,
        notes=notes,
        period=period,
    )


def look_up_record(
    operation_id: str,
    get_operation: Callable[[str], OperationView],
    strategy_of_model: Callable[[str], str | None],
) -> RunRecord:
    """The record of ``operation_id``, with what its own view lacks looked up: a backtest's
    strategy text (``strategy_of_model(model_id)``: the model's training's ``strategy_yaml``,
    None when that training is not on record) and a walk-forward's worker versions (its
    report child's last attempt). The CLI looks them up over HTTP, the backend in its store."""
    view = get_operation(operation_id)
    if str(view.kind) not in RUN_KINDS:
        raise NotARun(f"{operation_id} is a {view.kind} operation; runs are {', '.join(RUN_KINDS)}")
    strategy_yaml = None
    worker_versions = None
    if str(view.kind) == "walkforward":
        # The backend runs the walk-forward; its report child ran on a worker.
        result = view.result
        report_op = result.report_operation_id if isinstance(result, WalkforwardResult) else None
        if report_op:
            attempts = get_operation(report_op).reproducibility.attempts
            worker_versions = attempts[-1].worker_versions if attempts else None
    if str(view.kind) == "backtest":
        strategy_yaml = strategy_of_model(view.inputs.model_id)  # type: ignore[union-attr]
    return run_record(view, strategy_yaml, worker_versions)


@dataclass
class RunDiff:
    """What differs between runs ``a`` and ``b``; each list holds (key, a's, b's)."""

    a: RunRecord
    b: RunRecord
    parameters: list[tuple[str, Any, Any]]
    data: list[tuple[str, Any, Any]]
    seed: tuple[int | None, int | None] | None
    versions: list[tuple[str, Any, Any]]
    metrics: list[tuple[str, float | None, float | None, float | None]]

    @property
    def same_inputs(self) -> bool:
        return not (self.parameters or self.data or self.seed or self.versions)


def _changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    missing = object()
    out = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key, missing), b.get(key, missing)
        if left != right:
            out.append(
                (key, None if left is missing else left, None if right is missing else right)
            )
    return out


def _data_by_series(data: Mapping[str, str]) -> dict[str, str]:
    """'EURUSD/1h@3' -> sha256 becomes 'EURUSD/1h' -> 'v3 sha…' so versions line up."""
    out = {}
    for key, sha in data.items():
        series, _, version = key.partition("@")
        out[series] = f"v{version} {sha[:12]}"
    return out


def diff_runs(a: RunRecord, b: RunRecord) -> RunDiff:
    """Line ``a`` and ``b`` up. Metrics are listed for every key either has, with b − a."""
    metrics = []
    for key in sorted(set(a.metrics) | set(b.metrics)):
        left, right = a.metrics.get(key), b.metrics.get(key)
        delta = None
        if left is not None and right is not None and math.isfinite(left - right):
            delta = right - left
        metrics.append((key, left, right, delta))
    return RunDiff(
        a=a,
        b=b,
        parameters=_changes(a.parameters, b.parameters),
        data=_changes(_data_by_series(a.data), _data_by_series(b.data)),
        seed=(a.seed, b.seed) if a.seed != b.seed else None,
        versions=_changes(a.versions, b.versions),
        metrics=metrics,
    )
