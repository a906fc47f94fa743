"""Strategy checks for the API: apply overrides, validate with ktrdr-core, find the data.

``ktrdr_core.strategy`` is imported inside the functions: it is only needed when a strategy
arrives, and the app should start at FastAPI's own pace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from ktrdr_api import catalog
from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import (
    BacktestInputs,
    DataRef,
    StrategyAuditInputs,
    StrategyAuditRequest,
    StrategyIssue,
    TrainingInputs,
    normalise_symbol,
)
from ktrdr_core.version import installed_distributions

if TYPE_CHECKING:
    from ktrdr_core.strategy import Strategy


class StrategyInvalid(KtrdrError):
    """The strategy (with its overrides) has problems (HTTP 422); ``details`` lists them all."""

    def __init__(self, issues: list[StrategyIssue]):
        self.issues = issues
        lines = "\n".join(f"  {i.path or '(file)'}: {i.message}" for i in issues)
        super().__init__(f"invalid strategy: {len(issues)} problem(s)\n{lines}")
        self.details = {"issues": [i.model_dump() for i in issues]}


Gap = tuple[str, str, date | None, date | None]
"""(symbol, timeframe, first day missing, last day missing); no days: nothing imported."""


class MissingData(KtrdrError):
    """The strategy needs data that is not imported, or not over the whole period asked for
    (HTTP 422): every missing symbol, timeframe and period, named in ``details``."""

    def __init__(self, gaps: list[Gap]):
        names = ", ".join(
            f"{s} {tf}" + (f" from {first} to {last}" if first else "")
            for s, tf, first, last in gaps
        )
        first_symbol, first_tf = gaps[0][:2]
        narrower = (
            ", or ask for a period every symbol covers (data.start/data.end, --start/--end)"
            if any(first for _, _, first, _ in gaps)
            else ""
        )
        super().__init__(
            f"no data for {names}: import or fetch it first, e.g. "
            f"`ktrdr data import {first_symbol} {first_tf} FILE.csv`{narrower}"
        )
        self.details = {
            "missing": [
                {"symbol": s, "timeframe": tf}
                | ({"start": first.isoformat(), "end": last.isoformat()} if first and last else {})
                for s, tf, first, last in gaps
            ]
        }


def coverage_gaps(data: list[DataRef], first: date, last: date) -> list[Gap]:
    """The stretches of ``first`` … ``last`` (days, both included) each series leaves
    without bars, past ``CLOSURE_SLACK`` at either end (weekends and holidays)."""
    from ktrdr_core.market_data.gaps import CLOSURE_SLACK

    gaps: list[Gap] = []
    for ref in data:
        have_first = ref.first.astimezone(UTC).date()
        have_last = ref.last.astimezone(UTC).date()
        if have_first > last or have_last < first:
            gaps.append((ref.symbol, ref.timeframe.value, first, last))
            continue
        if have_first - first > CLOSURE_SLACK:
            gaps.append((ref.symbol, ref.timeframe.value, first, have_first - timedelta(days=1)))
        if last - have_last > CLOSURE_SLACK:
            gaps.append((ref.symbol, ref.timeframe.value, have_last + timedelta(days=1), last))
    return gaps


def _issue(path: str, message: str, line: int | None = None) -> StrategyIssue:
    where = f" (line {line})" if line is not None else ""
    return StrategyIssue(path=path, message=f"{message}{where}")


def apply_overrides(data: Any, overrides: Mapping[str, Any]) -> list[StrategyIssue]:
    """Set each ``dotted.path`` in ``data`` (in place); integer parts index lists.

    Returns a problem per override that cannot be applied, its path prefixed ``overrides.``.
    """
    problems = []
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if not dotted or any(not part for part in parts):
            problems.append(_issue(f"overrides.{dotted}", "expected a dotted key path"))
            continue
        node = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            else:
                at = ".".join(parts[:depth]) or "(top level)"
                problems.append(
                    _issue(f"overrides.{dotted}", f"cannot set {part!r}: {at} is not a mapping")
                )
                break
    return problems


def check_strategy(text: str, overrides: Mapping[str, Any]) -> tuple[Strategy, str]:
    """Validate ``text`` with ``overrides`` applied; return the strategy and its effective
    text (``text`` itself without overrides; the overridden document as JSON, which any
    YAML reader reads, with them).

    Raises StrategyInvalid with every problem found.
    """
    from ktrdr_core.strategy import StrategyError, load_strategy
    from ktrdr_core.strategy.yaml_source import parse_yaml

    if not overrides:
        try:
            # Bytes, never str: a str without a newline would be read as a server-side path.
            return load_strategy(text.encode("utf-8")), text
        except StrategyError as exc:
            raise StrategyInvalid([_convert(i) for i in exc.issues]) from None

    parsed = parse_yaml(text)
    if parsed.problems or not isinstance(parsed.data, dict):
        try:  # the reader's own words, with lines
            load_strategy(text.encode("utf-8"))
        except StrategyError as exc:
            raise StrategyInvalid([_convert(i) for i in exc.issues]) from None
    data = parsed.data
    problems = apply_overrides(data, overrides)
    if problems:
        raise StrategyInvalid(problems)
    try:
        strategy = load_strategy(data)
    except StrategyError as exc:
        raise StrategyInvalid([_convert(i) for i in exc.issues]) from None
    return strategy, json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _convert(issue: Any) -> StrategyIssue:
    return _issue(issue.path, issue.message, issue.line)


def required_data(session: Session, strategy: Strategy) -> list[DataRef]:
    """The newest version of each (symbol, base timeframe) the strategy trains on.

    Longer timeframes are resampled from the base one by the worker, so only the base is
    needed. Several symbols train on one chronological split, so each must cover the range
    asked for: ``data.start`` … ``data.end``, each end left open standing for as far as any
    of the symbols' data reaches (one symbol is never short of its own span; a range that
    selects none of it is :func:`check_data_overlap`'s). Raises one MissingData naming every
    pair not imported and every period a symbol lacks.
    """
    timeframe = strategy.data.timeframe.value
    refs: list[DataRef] = []
    missing: list[Gap] = []
    for raw in strategy.data.symbols:
        symbol = normalise_symbol(raw)
        row = catalog.latest_dataset(session, symbol, timeframe)
        if row is None:
            missing.append((symbol, timeframe, None, None))
        else:
            refs.append(catalog.data_ref(row))
    if refs:
        first = max(
            strategy.data.start or date.min, min(r.first.astimezone(UTC).date() for r in refs)
        )
        last = min(strategy.data.end or date.max, max(r.last.astimezone(UTC).date() for r in refs))
        if first <= last:
            missing += coverage_gaps(refs, first, last)
    if missing:
        raise MissingData(missing)
    return refs


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_data_overlap(strategy: Strategy, data: list[DataRef]) -> None:
    """Refuse, before any worker spends time on it, a strategy whose ``data.start`` …
    ``data.end`` selects none of a symbol's stored bars; the issue names each series and the
    span it covers."""
    start, end = strategy.data.start or date.min, strategy.data.end or date.max
    problems = [
        _issue(
            "data.start",
            f"{ref.symbol} {ref.timeframe} covers {ref.first.date()} … {ref.last.date()}; "
            f"data.start/data.end ({strategy.data.start} … {strategy.data.end}) select none "
            "of it",
        )
        for ref in data
        if max(ref.first.astimezone(UTC).date(), start) > min(ref.last.astimezone(UTC).date(), end)
    ]
    if problems:
        raise StrategyInvalid(problems)


def check_backtest_settings(settings: Mapping[str, Any]) -> None:
    """Backtest overrides must be fields of the strategy's ``backtest`` section."""
    from ktrdr_core.strategy import BacktestConfig

    try:
        BacktestConfig.model_validate(dict(settings))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise StrategyInvalid(
            [
                StrategyIssue(path=".".join(["settings", *map(str, e["loc"])]), message=e["msg"])
                for e in errors
            ]
        ) from None


def training_inputs(
    strategy: Strategy, text: str, overrides: Mapping[str, Any], data: list[DataRef]
) -> tuple[TrainingInputs, str | None]:
    """A training of ``strategy`` (effective ``text``) on ``data``, and the device a worker
    must have to run it (None: any)."""
    device = strategy.training.device
    inputs = TrainingInputs(
        strategy_name=strategy.name,
        strategy_yaml=text,
        strategy_hash=strategy.strategy_hash(),
        overrides=dict(overrides),
        data=data,
        seed=strategy.training.seed,
        device=device,
        versions=installed_distributions(),
    )
    # A worker without these devices cannot honour a strategy that names them.
    return inputs, device if device in ("cuda", "mps") else None


def backtest_inputs(
    session: Session,
    model_id: str,
    start: datetime | None,
    end: datetime | None,
    settings: Mapping[str, Any],
) -> tuple[BacktestInputs, str]:
    """A backtest of ``model_id`` on the newest data of the symbols and timeframe it was
    trained on, and the model's strategy name. Raises one MissingData naming every symbol
    whose data is gone or misses part of the period (``start`` … ``end``, by default the
    model's test period), before any worker is asked."""
    model = catalog.model(session, model_id)
    refs: list[DataRef] = []
    missing: list[Gap] = []
    for used in model.data:
        row = catalog.latest_dataset(session, used["symbol"], used["timeframe"])
        if row is None:
            missing.append((used["symbol"], used["timeframe"], None, None))
        else:
            refs.append(catalog.data_ref(row))
    test = (model.bundle_metadata.get("splits") or {}).get("test") or {}
    first, last = start or _moment(test.get("start")), end or _moment(test.get("end"))
    if refs and first is not None and last is not None and first <= last:
        missing += coverage_gaps(refs, first.astimezone(UTC).date(), last.astimezone(UTC).date())
    if missing:
        raise MissingData(missing)
    inputs = BacktestInputs(
        model_id=model.id,
        bundle_sha256=model.bundle_sha256,
        strategy_hash=model.strategy_hash,
        data=refs,
        start=start,
        end=end,
        settings=dict(settings),
        versions=installed_distributions(),
    )
    return inputs, model.name


def audit_inputs(
    session: Session,
    strategy: Strategy,
    text: str,
    request: StrategyAuditRequest,
    data: list[DataRef],
) -> tuple[StrategyAuditInputs, str | None]:
    """A strategy audit of ``strategy`` (effective ``text``) on ``data``, and the device a
    worker must have (None: any; only a training audit can need one). A model given by id
    must exist and be of the strategy's base timeframe."""
    bundle_sha256 = None
    if request.model_id is not None:
        model = catalog.model(session, request.model_id)
        timeframes = sorted({str(used["timeframe"]) for used in model.data})
        if strategy.data.timeframe.value not in timeframes:
            raise StrategyInvalid(
                [
                    _issue(
                        "model_id",
                        f"model {model.id} was trained on {', '.join(timeframes)} bars; the "
                        f"strategy's base timeframe is {strategy.data.timeframe.value}: "
                        "audit it with the timeframe the model was trained on",
                    )
                ]
            )
        bundle_sha256 = model.bundle_sha256
    device = strategy.training.device if request.train else None
    inputs = StrategyAuditInputs(
        strategy_name=strategy.name,
        strategy_yaml=text,
        strategy_hash=strategy.strategy_hash(),
        overrides=dict(request.overrides),
        data=data,
        seed=strategy.training.seed,
        device=device,
        versions=installed_distributions(),
        symbol=request.symbol,
        checks=list(request.checks),
        model_id=request.model_id,
        bundle_sha256=bundle_sha256,
        train=request.train,
        cuts=request.cuts,
        permutations=request.permutations,
    )
    return inputs, device if device in ("cuda", "mps") else None
