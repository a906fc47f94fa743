"""Trust checks on a researcher's own strategy and data (``ktrdr strategies audit``).

:func:`audit_strategy` runs the checks of ``ktrdr_core.strategy_audit`` on one symbol and
returns a :class:`~ktrdr_core.strategy_audit.StrategyAuditReport`. Each check is also a
function of its own, taking the pieces it tests (a feature builder, a label maker), so a test
can hand it a deliberately broken one. How each one decides:

- :func:`check_lookahead` — ``cuts`` bars spread evenly from the first bar with every feature
  to the second-to-last bar. At each cut the data is truncated after that bar (a given
  higher-timeframe frame keeps only the bars closed by then) and everything is computed
  again: every feature column must equal the full-data value on every bar up to the cut
  (NaN equals NaN; floats within 1e-9 relative), every label the truncated data settles must
  equal the full-data label, and the model's positions (decisions from the first bar with a
  prediction) must be the same. Evidence: the first offending column with its bar and both
  values, and how many cuts and columns offended.
- :func:`check_warmup` — the features are computed again on the data starting 10 %, 20 %,
  30 % and 40 % of the way in. An indicator "needs" ``w`` bars when, from ``w`` bars after the
  start on, its columns agree with the full-history values within a thousandth of the
  column's standard deviation; EMA-like indicators need far more than their NaN rows. It
  warns when an indicator needs more bars than the strategy drops (its leading NaN rows).
- :func:`check_leakage` — the label horizon is measured on the data: at each cut, the bars
  the truncated data leaves unlabelled although all the data labels them are at most that
  many bars before the cut. The embargo must cover the measured horizon; with a model, the
  bars between its actual train, validation and test parts must too.
- :func:`check_reproducibility` — two trainings with the same seed: the sha256 of the weights'
  tensor data (every array in name order, with its dtype and shape) must be equal, and the
  bundles (so their model ids, ``mdl_`` + the bundle's sha256) distinct.
- :func:`check_significance` — the model's positions over its test period earn close-to-close
  returns; their annualised Sharpe ratio (before costs; the net one is reported beside it)
  is compared with the same for ``permutations`` shuffles of the position series in blocks of
  ``block_bars`` (the label horizon by default), seeded. p = (1 + shuffles at least as good)
  / (1 + shuffles). Fewer than :data:`MIN_TRADES` trades are too few to judge, and it says so.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_core.strategy.schema import Strategy
from ktrdr_core.strategy_audit import (
    AUDIT_CHECKS,
    HARD_CHECKS,
    AuditCheck,
    CheckStatus,
    StrategyAuditReport,
)
from ktrdr_core.timeframes import parse_timeframe
from ktrdr_worker.features import compute_features
from ktrdr_worker.labels import LabelError, LabelResult, make_labels

__all__ = [
    "MIN_TRADES",
    "audit_strategy",
    "block_permutation_test",
    "check_leakage",
    "check_lookahead",
    "check_reproducibility",
    "check_significance",
    "check_warmup",
    "cut_points",
    "model_positions",
    "weights_sha256",
]

Data = pd.DataFrame | Mapping[str, pd.DataFrame]
FeatureBuilder = Callable[[Strategy, Data], pd.DataFrame]
LabelMaker = Callable[[Strategy, pd.DataFrame], LabelResult]
Positions = Callable[[Data], pd.Series]
"""Data → the model's positions (1, 0, -1) on its bars, decided from its first prediction."""

MIN_TRADES = 10  # fewer trades than this say nothing about a Sharpe ratio
_RTOL, _ATOL = 1e-9, 1e-12  # "equal" for recomputed floats
_CONVERGED = 1e-3  # warm-up: agreement within this share of the column's standard deviation
_WARMUP_STARTS = (0.1, 0.2, 0.3, 0.4)  # where the warm-up check restarts the data


def _labels(strategy: Strategy, base: pd.DataFrame) -> LabelResult:
    return make_labels(strategy.labels, base)


def _base(data: Data, strategy: Strategy) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    return data[strategy.data.timeframe.value]


def _known_at(data: Data, strategy: Strategy, bar: pd.Timestamp) -> Data:
    """The data as it stood at the close of base bar ``bar``."""
    if isinstance(data, pd.DataFrame):
        return data.loc[data.index <= bar]
    base_tf = strategy.data.timeframe
    closed = bar + base_tf.duration
    out = {}
    for key, frame in data.items():
        duration = parse_timeframe(key).duration
        out[key] = frame.loc[frame.index + duration <= closed]
    return out


def _from(data: Data, strategy: Strategy, bar: pd.Timestamp) -> Data:
    """The data from base bar ``bar`` on (higher-timeframe frames from the bar holding it)."""
    if isinstance(data, pd.DataFrame):
        return data.loc[data.index >= bar]
    out = {}
    for key, frame in data.items():
        duration = parse_timeframe(key).duration
        out[key] = frame.loc[frame.index + duration > bar]
    return out


def cut_points(n_bars: int, first: int, cuts: int) -> list[int]:
    """Up to ``cuts`` bar positions spread evenly over ``first … n_bars - 2`` (the last bar is
    the full data itself, so cutting there tests nothing)."""
    if cuts < 1:
        raise ValueError(f"cuts must be at least 1, got {cuts}")
    last = n_bars - 2
    if last < first:
        return []
    return sorted({round(float(x)) for x in np.linspace(first, last, cuts)})


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both_nan = np.isnan(a) & np.isnan(b)
    with np.errstate(invalid="ignore"):
        close = np.isclose(a, b, rtol=_RTOL, atol=_ATOL)
    return both_nan | close


def _value(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _check(
    name: str, status: CheckStatus, summary: str, evidence: dict[str, Any], started: float
) -> AuditCheck:
    return AuditCheck(
        name=name,
        status=status,
        hard=name in HARD_CHECKS,
        summary=summary,
        evidence=evidence,
        seconds=round(time.perf_counter() - started, 3),
    )


def skipped(name: str, why: str) -> AuditCheck:
    """A check that did not run, and why."""
    return AuditCheck(name=name, status=CheckStatus.SKIPPED, hard=name in HARD_CHECKS, summary=why)


# --------------------------------------------------------------------------- lookahead


def check_lookahead(
    strategy: Strategy,
    data: Data,
    *,
    cuts: int = 50,
    features: FeatureBuilder = compute_features,
    labels: LabelMaker = _labels,
    positions: Positions | None = None,
    start: pd.Timestamp | None = None,
) -> AuditCheck:
    """Recompute features, settled labels and (with ``positions``) decisions on data cut at
    ``cuts`` bars from ``start`` on (default: the first bar with every feature); each must
    equal the full-data value up to the cut (see the module doc)."""
    started = time.perf_counter()
    base = _base(data, strategy)
    full = features(strategy, data)
    columns = [str(c) for c in full.columns]
    complete = np.flatnonzero(full.notna().all(axis=1).to_numpy())
    if complete.size == 0:
        return _check(
            "lookahead",
            CheckStatus.FAIL,
            f"no bar of the {len(base)} has every feature: nothing to check",
            {"bars": len(base)},
            started,
        )
    first_cut = int(complete[0])
    if start is not None:
        first_cut = max(first_cut, int(base.index.searchsorted(start)))
    points = cut_points(len(base), first_cut, cuts)
    full_values = full.to_numpy(dtype=np.float64)
    try:
        full_labels: np.ndarray | None = labels(strategy, base).labels.to_numpy(np.float64)
        labels_unchecked = None
    except LabelError as exc:  # the labelling itself does not fit the data: say so
        full_labels, labels_unchecked = None, str(exc)
    full_positions = positions(data) if positions is not None else None

    first: dict[str, Any] | None = None
    offending_cuts = 0
    offending_columns: set[str] = set()
    label_mismatches = decision_mismatches = label_cuts_unchecked = 0
    for cut in points:
        bar = base.index[cut]
        known = _known_at(data, strategy, bar)
        problems: list[dict[str, Any]] = []

        truncated = features(strategy, known).to_numpy(dtype=np.float64)
        if truncated.shape != (cut + 1, len(columns)):
            problems.append(
                {
                    "what": "features",
                    "column": None,
                    "detail": f"{truncated.shape[0]} rows for {cut + 1} bars",
                    "bar": bar.isoformat(),
                }
            )
        else:
            same = _same(truncated, full_values[: cut + 1])
            if not same.all():
                rows, cols = np.nonzero(~same)
                order = np.lexsort((cols, rows))  # earliest bar first, then column order
                row, col = int(rows[order[0]]), int(cols[order[0]])
                offending_columns.update(columns[c] for c in np.unique(cols))
                problems.append(
                    {
                        "what": "feature",
                        "column": columns[col],
                        "bar": base.index[row].isoformat(),
                        "truncated_value": _value(truncated[row, col]),
                        "full_value": _value(full_values[row, col]),
                    }
                )

        try:
            cut_labels = (
                labels(strategy, _base(known, strategy)).labels.to_numpy(np.float64)
                if full_labels is not None
                else None
            )
        except LabelError:
            label_cuts_unchecked += 1  # too few bars for a labelling at all: nothing settled
            cut_labels = None
        if cut_labels is not None and full_labels is not None:
            settled = ~np.isnan(cut_labels)
            wrong = np.flatnonzero(settled & ~_same(cut_labels, full_labels[: cut + 1]))
            label_mismatches += int(wrong.size)
            if wrong.size:
                row = int(wrong[0])
                problems.append(
                    {
                        "what": "label",
                        "column": "label",
                        "bar": base.index[row].isoformat(),
                        "truncated_value": _value(cut_labels[row]),
                        "full_value": _value(full_labels[row]),
                    }
                )

        if positions is not None and full_positions is not None:
            mine = positions(known)
            theirs = full_positions.loc[full_positions.index <= bar]
            aligned = mine.reindex(theirs.index)
            wrong_at = theirs.index[aligned.to_numpy() != theirs.to_numpy()]
            decision_mismatches += len(wrong_at)
            if len(wrong_at):
                at = wrong_at[0]
                problems.append(
                    {
                        "what": "decision",
                        "column": "position",
                        "bar": at.isoformat(),
                        "truncated_value": _value(float(aligned.loc[at])),
                        "full_value": _value(float(theirs.loc[at])),
                    }
                )

        if problems:
            offending_cuts += 1
            if first is None:
                first = {**min(problems, key=lambda p: p["bar"]), "cut": bar.isoformat()}

    evidence: dict[str, Any] = {
        "cuts": len(points),
        "columns": len(columns),
        "decisions_checked": positions is not None,
        "offending_cuts": offending_cuts,
        "offending_columns": sorted(offending_columns),
        "label_mismatches": label_mismatches,
        "decision_mismatches": decision_mismatches,
        "label_cuts_unchecked": label_cuts_unchecked,
        "labels_unchecked": labels_unchecked,
        "first_offence": first,
    }
    what = f"{len(columns)} feature columns"
    what += "" if labels_unchecked else ", the settled labels"
    what += " and the model's decisions" if positions is not None else ""
    if first is None:
        unchecked = f" (labels not checked: {labels_unchecked})" if labels_unchecked else ""
        return _check(
            "lookahead",
            CheckStatus.PASS,
            f"{what} at {len(points)} cut points equal the full-data values{unchecked}",
            evidence,
            started,
        )
    shown = "" if first["truncated_value"] is None else f"{first['truncated_value']:.6g}"
    full_shown = "" if first["full_value"] is None else f"{first['full_value']:.6g}"
    summary = (
        f"{first['what']} {first['column']} at bar {first['bar']} is "
        f"{shown or 'NaN'} on data cut at {first['cut']} but {full_shown or 'NaN'} on all "
        f"the data: it reads bars after its own ({offending_cuts} of {len(points)} cuts offend)"
    )
    return _check("lookahead", CheckStatus.FAIL, summary, evidence, started)


# --------------------------------------------------------------------------- warm-up


def check_warmup(
    strategy: Strategy,
    data: Data,
    *,
    features: FeatureBuilder = compute_features,
    starts: Sequence[float] = _WARMUP_STARTS,
) -> AuditCheck:
    """Warm-up each indicator really needs (bars from the data's start until its values stop
    depending on that start), against the bars the strategy drops (see the module doc)."""
    started = time.perf_counter()
    base = _base(data, strategy)
    full = features(strategy, data)
    columns = [str(c) for c in full.columns]
    indicator_of = {
        spec.name: f"{spec.timeframe.value} {spec.indicator}" for spec in strategy.features()
    }
    full_values = full.to_numpy(dtype=np.float64)
    scale = np.nanstd(full_values, axis=0)
    tolerance = _CONVERGED * np.where(scale > 0, scale, 1.0)
    needed: dict[str, int | None] = {}
    dropped = 0
    compared = 0
    for share in starts:
        offset = int(len(base) * share)
        if offset <= 0 or offset >= len(base) - 1:
            continue
        late = features(strategy, _from(data, strategy, base.index[offset]))
        values = late.to_numpy(dtype=np.float64)
        reference = full_values[offset : offset + len(values)]
        complete = np.flatnonzero(~np.isnan(values).any(axis=1))
        dropped = max(dropped, int(complete[0]) if complete.size else len(values))
        compared = len(values)
        both_nan = np.isnan(values) & np.isnan(reference)
        with np.errstate(invalid="ignore"):
            agree = both_nan | (np.abs(values - reference) <= tolerance)
        for j, name in enumerate(columns):
            off = np.flatnonzero(~agree[:, j])
            if off.size and off[-1] == len(values) - 1:
                needed[name] = None  # still differs at the last bar: never converged
            elif name not in needed or needed[name] is not None:
                need = int(off[-1]) + 1 if off.size else 0
                needed[name] = max(need, needed.get(name) or 0)
    by_indicator: dict[str, dict[str, Any]] = {}
    for name in columns:
        key = indicator_of.get(name, name)
        entry = by_indicator.setdefault(key, {"needs_bars": 0, "columns": []})
        entry["columns"].append(name)
        need = needed.get(name, 0)
        if need is None or entry["needs_bars"] is None:
            entry["needs_bars"] = None
        else:
            entry["needs_bars"] = max(entry["needs_bars"], need)
    short = {
        key: entry
        for key, entry in by_indicator.items()
        if entry["needs_bars"] is None or entry["needs_bars"] > dropped
    }
    evidence = {
        "dropped_bars": dropped,
        "starts": list(starts),
        "tolerance": f"{_CONVERGED:g} × the column's standard deviation",
        "compared_bars": compared,
        "indicators": by_indicator,
        "short": sorted(short),
    }
    if not short:
        return _check(
            "warmup",
            CheckStatus.PASS,
            f"every indicator settles within the {dropped} warm-up bars the strategy drops",
            evidence,
            started,
        )
    parts = [
        f"{key} needs "
        + (f"more than {compared}" if e["needs_bars"] is None else str(e["needs_bars"]))
        for key, e in sorted(short.items())
    ]
    summary = (
        f"{'; '.join(parts)} warm-up bars ({strategy.data.timeframe.value}), the strategy "
        f"drops {dropped}: the first samples of a series depend on where the data starts; give "
        "more history before data.start"
    )
    return _check("warmup", CheckStatus.WARN, summary, evidence, started)


# --------------------------------------------------------------------------- leakage


def measured_horizon(
    strategy: Strategy, base: pd.DataFrame, points: Sequence[int], labels: LabelMaker = _labels
) -> int:
    """The label horizon seen on the data: the furthest a bar left unlabelled by data cut at
    one of ``points`` lies before the cut, among bars all the data does label (bars)."""
    full = labels(strategy, base).labels.to_numpy(dtype=np.float64)
    horizon = 0
    for cut in points:
        try:
            part = labels(strategy, base.iloc[: cut + 1]).labels.to_numpy(dtype=np.float64)
        except LabelError:
            continue
        pending = np.flatnonzero(np.isnan(part) & ~np.isnan(full[: cut + 1]))
        if pending.size:
            horizon = max(horizon, cut - int(pending[0]) + 1)
    return horizon


def check_leakage(
    strategy: Strategy,
    data: Data,
    *,
    cuts: int = 50,
    splits: Mapping[str, Any] | None = None,
    labels: LabelMaker = _labels,
) -> AuditCheck:
    """The embargo against the label horizon measured on the data; with ``splits`` (a
    bundle's train/validation/test ranges), the actual bars between the parts too."""
    started = time.perf_counter()
    base = _base(data, strategy)
    points = cut_points(len(base), 0, cuts)
    embargo = strategy.embargo_bars
    try:
        horizon = measured_horizon(strategy, base, points, labels)
    except LabelError as exc:  # no labels on this data at all: nothing to leak, nothing to train
        return _check(
            "leakage",
            CheckStatus.INCONCLUSIVE,
            f"the labels do not fit this data, so no model could be trained on it: {exc}",
            {"embargo_bars": embargo, "declared_horizon_bars": strategy.labels.horizon},
            started,
        )
    evidence: dict[str, Any] = {
        "embargo_bars": embargo,
        "declared_horizon_bars": strategy.labels.horizon,
        "measured_horizon_bars": horizon,
        "cuts": len(points),
    }
    problems = []
    if embargo < horizon:
        problems.append(
            f"data.embargo_bars is {embargo} but labels settle up to {horizon} bars ahead on "
            "this data"
        )
    if splits is not None:
        gaps = {}
        for earlier, later in (("train", "validation"), ("validation", "test")):
            end, start = splits.get(earlier, {}).get("end"), splits.get(later, {}).get("start")
            if end is None or start is None:
                continue
            end_pos = int(base.index.searchsorted(pd.Timestamp(end), side="right"))
            start_pos = int(base.index.searchsorted(pd.Timestamp(start), side="left"))
            between = start_pos - end_pos
            gaps[f"{earlier}→{later}"] = between
            if between < horizon:
                problems.append(
                    f"only {between} bars lie between the model's {earlier} part (ends {end}) "
                    f"and its {later} part (starts {start}); its labels reach {horizon} ahead"
                )
        evidence["bars_between_parts"] = gaps
    if problems:
        return _check("leakage", CheckStatus.FAIL, "; ".join(problems), evidence, started)
    summary = (
        f"the embargo of {embargo} bars covers the label horizon measured on the data "
        f"({horizon} bars)"
    )
    if splits is not None and evidence["bars_between_parts"]:
        least = min(evidence["bars_between_parts"].values())
        summary += f"; the model's parts are at least {least} bars apart"
    return _check("leakage", CheckStatus.PASS, summary, evidence, started)


# --------------------------------------------------------------------------- reproducibility


def weights_sha256(bundle: bytes) -> str:
    """sha256 of a bundle's tensor data: every array in name order, with name, dtype and
    shape, so equal weights give equal digests whatever else the bundle holds."""
    from ktrdr_worker.models.bundles import open_bundle

    _, _, state = open_bundle(bundle)
    digest = hashlib.sha256()
    for name in sorted(state):
        array = np.ascontiguousarray(state[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def check_reproducibility(first: bytes, second: bytes, *, seed: int, device: str) -> AuditCheck:
    """Two bundles trained with the same ``seed`` on the same ``device``: equal weights,
    distinct bundles."""
    started = time.perf_counter()
    weights = [weights_sha256(first), weights_sha256(second)]
    bundles = [hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()]
    evidence = {
        "seed": seed,
        "device": device,
        "weights_sha256": weights,
        "bundle_sha256": bundles,
        "model_ids": [f"mdl_{sha[:12]}" for sha in bundles],
    }
    if weights[0] != weights[1]:
        return _check(
            "reproducibility",
            CheckStatus.FAIL,
            f"two trainings with seed {seed} on {device} gave different weights "
            f"({weights[0][:12]}… vs {weights[1][:12]}…)",
            evidence,
            started,
        )
    if bundles[0] == bundles[1]:
        return _check(
            "reproducibility",
            CheckStatus.FAIL,
            "the two trainings gave byte-identical bundles: they would share one model id",
            evidence,
            started,
        )
    return _check(
        "reproducibility",
        CheckStatus.PASS,
        f"two trainings with seed {seed} on {device}: identical weights "
        f"({weights[0][:12]}…) in two distinct bundles",
        evidence,
        started,
    )


# --------------------------------------------------------------------------- significance


def _returns(close: np.ndarray, positions: np.ndarray, cost: float = 0.0) -> np.ndarray:
    """Per-bar returns of holding ``positions[t]`` from close t to close t+1, less ``cost``
    (a fraction) of the traded amount at every position change."""
    moves = close[1:] / close[:-1] - 1.0
    held = positions[..., :-1]
    if not cost:
        return held * moves
    changes = np.abs(np.diff(positions, axis=-1, prepend=0))[..., :-1]
    return held * moves - cost * changes


def _sharpe(returns: np.ndarray, periods_per_year: float) -> np.ndarray:
    mean = returns.mean(axis=-1)
    std = returns.std(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(std > 0, mean / std, 0.0)
    return ratio * np.sqrt(periods_per_year)


def block_permutation_test(
    close: np.ndarray,
    positions: np.ndarray,
    *,
    periods_per_year: float,
    block_bars: int,
    permutations: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Sharpe ratio of ``positions`` on ``close`` (close-to-close, before costs) against
    ``permutations`` shuffles of the positions in blocks of ``block_bars`` bars (seeded).

    Before costs, because the question is whether the timing beats the same exposure in a
    random order: cutting the series into blocks adds position changes, whose costs would
    make the shuffles look worse than they are. Returns the observed Sharpe, the shuffles'
    median and 95th percentile, and ``p_value = (1 + k) / (1 + permutations)`` where ``k``
    shuffles did at least as well."""
    if block_bars < 1 or permutations < 1:
        raise ValueError("block_bars and permutations must be at least 1")
    close = np.asarray(close, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    observed = float(_sharpe(_returns(close, positions), periods_per_year))
    n = len(positions)
    blocks = [np.arange(i, min(i + block_bars, n)) for i in range(0, n, block_bars)]
    rng = np.random.default_rng(seed)
    shuffled = np.empty((permutations, n))
    for k in range(permutations):
        order = rng.permutation(len(blocks))
        shuffled[k] = positions[np.concatenate([blocks[i] for i in order])]
    null = _sharpe(_returns(close, shuffled), periods_per_year)
    at_least = int((null >= observed - 1e-12).sum())
    return {
        "sharpe": observed,
        "permuted_median": float(np.median(null)),
        "permuted_p95": float(np.percentile(null, 95)),
        "p_value": (1 + at_least) / (1 + permutations),
    }


def check_significance(
    close: pd.Series,
    positions: pd.Series,
    *,
    trades: int,
    cost: float,
    periods_per_year: float,
    block_bars: int,
    permutations: int = 1000,
    seed: int = 0,
) -> AuditCheck:
    """The block-permutation test of the model's test-period positions (see the module doc);
    ``trades``: round trips the backtest made over the same bars."""
    started = time.perf_counter()
    held = positions.reindex(close.index).fillna(0).to_numpy(dtype=np.float64)
    prices = close.to_numpy(dtype=np.float64)
    result = block_permutation_test(
        prices,
        held,
        periods_per_year=periods_per_year,
        block_bars=block_bars,
        permutations=permutations,
        seed=seed,
    )
    net = float(_sharpe(_returns(prices, held, cost), periods_per_year))
    evidence = {
        **{k: round(v, 4) for k, v in result.items()},
        "net_sharpe": round(net, 4),
        "cost": cost,
        "trades": trades,
        "bars": len(close),
        "block_bars": block_bars,
        "permutations": permutations,
        "seed": seed,
        "first": close.index[0].isoformat(),
        "last": close.index[-1].isoformat(),
    }
    if trades < MIN_TRADES:
        return _check(
            "significance",
            CheckStatus.INCONCLUSIVE,
            f"{trades} trade{'s' if trades != 1 else ''} in the test period: too few to judge "
            f"a Sharpe ratio (at least {MIN_TRADES} needed)",
            evidence,
            started,
        )
    p = result["p_value"]
    text = (
        f"Sharpe {result['sharpe']:.2f} before costs ({net:.2f} after) over {trades} trades "
        f"against {permutations} block-shuffled position series (median "
        f"{result['permuted_median']:.2f}): p = {p:.3f}"
    )
    if p < 0.05:
        return _check("significance", CheckStatus.PASS, text, evidence, started)
    return _check(
        "significance",
        CheckStatus.WARN,
        text + "; no better than the same positions in a random order",
        evidence,
        started,
    )


# --------------------------------------------------------------------------- the audit


@dataclass(frozen=True)
class _Model:
    """A bundle ready for the checks: its manifest and a positions function."""

    bundle: bytes
    manifest: Any
    predict: Callable[[pd.DataFrame], pd.DataFrame]
    settings: Any

    def positions(self, data: Data, strategy: Strategy, start: pd.Timestamp | None = None):  # type: ignore[no-untyped-def]
        """Positions on ``data``'s bars, decided from ``start`` (default: the first bar with a
        prediction), as a backtest starting there decides them."""
        from ktrdr_worker.models.decisions import decide_positions

        probabilities = self.predict(compute_features(strategy, data))
        if start is None:
            window = probabilities.loc[probabilities.notna().all(axis=1).cummax()]
        else:
            window = probabilities.loc[probabilities.index >= start]
        return decide_positions(window, self.settings).positions


def model_positions(
    bundle: bytes,
    strategy: Strategy,
    data: Data,
    *,
    start: pd.Timestamp | None = None,
    inference: str = "auto",
) -> pd.Series:
    """A model's positions (1, 0, -1) on ``data``'s bars, decided from ``start`` (default: its
    first prediction) with the decision settings in its bundle."""
    return _model(bundle, inference).positions(data, strategy, start)


def _model(bundle: bytes, inference: str) -> _Model:
    from ktrdr_worker.models.decisions import DecisionSettings
    from ktrdr_worker.models.inference import BundleModel

    model = BundleModel(bundle, inference)
    settings = DecisionSettings.from_dict(dict(model.manifest.decisions))
    return _Model(bundle, model.manifest, model.predict, settings)


def _significance(
    model: _Model,
    strategy: Strategy,
    data: Data,
    *,
    permutations: int,
    seed: int,
    exchange: str | None,
    inference: str,
) -> AuditCheck:
    """Backtest the model on its test period, then test its positions there."""
    from ktrdr_worker.models.backtest import ModelBacktestError, backtest_model

    try:
        report = backtest_model(model.bundle, data, exchange=exchange, inference=inference).report
    except ModelBacktestError as exc:  # e.g. the data does not reach the model's test period
        return skipped("significance", f"the model's test period cannot be backtested: {exc}")
    first, last = pd.Timestamp(report["start"]), pd.Timestamp(report["end"])
    base = _base(data, strategy)
    close = base["close"].loc[(base.index >= first) & (base.index <= last)]
    positions = model.positions(_known_at(data, strategy, last), strategy, start=first)
    config = report["config"]
    return check_significance(
        close,
        positions,
        trades=len(report["trades"]),
        cost=float(config["commission"]) + float(config["slippage"]),
        periods_per_year=float(report["calendar"]["bars_per_year"]),
        block_bars=max(1, strategy.labels.horizon),
        permutations=permutations,
        seed=seed,
    )


def audit_strategy(
    strategy: Strategy,
    data: Data,
    *,
    symbol: str,
    checks: Sequence[str] = AUDIT_CHECKS,
    bundle: bytes | None = None,
    train: Callable[[], tuple[bytes, bytes]] | None = None,
    model_id: str | None = None,
    cuts: int = 50,
    permutations: int = 1000,
    seed: int = 0,
    exchange: str | None = None,
    inference: str = "auto",
    on_check: Callable[[str], None] | None = None,
) -> StrategyAuditReport:
    """Run ``checks`` on ``symbol``'s ``data`` (its base-timeframe frame, or a mapping
    timeframe → frame) for ``strategy``; ``bundle``: the model to check decisions and
    significance with; ``train``: makes two bundles with the strategy's seed (used for
    reproducibility, the first one for the model checks when no ``bundle`` is given).
    Bars after ``data.end`` are left out; the lookahead check cuts from ``data.start`` on
    (earlier bars are warm-up, as in training). ``on_check(name)`` is called as each check
    starts."""
    unknown = [name for name in checks if name not in AUDIT_CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {', '.join(AUDIT_CHECKS)}")
    # The strategy's range, as training reads it: bars up to data.end, earlier ones as warm-up.
    if strategy.data.end is not None:
        end = pd.Timestamp(strategy.data.end, tz="UTC") + pd.Timedelta(days=1)
        data = _known_at(data, strategy, end - strategy.data.timeframe.duration)
    start = pd.Timestamp(strategy.data.start, tz="UTC") if strategy.data.start else None
    base = _base(data, strategy)
    if len(base) == 0:
        raise ValueError(f"no {symbol} bars up to data.end {strategy.data.end}")
    trained = None
    if train is not None and ("reproducibility" in checks or bundle is None):
        if on_check:
            on_check("training")
        trained = train()
        bundle = bundle or trained[0]
    model = _model(bundle, inference) if bundle is not None else None
    no_model = "needs a model: give --model ID or --train"
    results: list[AuditCheck] = []
    for name in AUDIT_CHECKS:
        if name not in checks:
            results.append(skipped(name, "not asked for"))
            continue
        if on_check:
            on_check(name)
        if name == "lookahead":
            results.append(
                check_lookahead(
                    strategy,
                    data,
                    cuts=cuts,
                    positions=(lambda d: model.positions(d, strategy)) if model else None,
                    start=start,
                )
            )
        elif name == "warmup":
            results.append(check_warmup(strategy, data))
        elif name == "leakage":
            splits = model.manifest.model_dump(mode="json")["splits"] if model else None
            results.append(check_leakage(strategy, data, cuts=cuts, splits=splits))
        elif name == "reproducibility":
            if trained is None:
                results.append(skipped(name, "runs only with --train (it costs two trainings)"))
            else:
                device = model.manifest.device if model else "cpu"
                results.append(
                    check_reproducibility(*trained, seed=strategy.training.seed, device=str(device))
                )
        elif model is None:
            results.append(skipped(name, no_model))
        else:
            results.append(
                _significance(
                    model,
                    strategy,
                    data,
                    permutations=permutations,
                    seed=seed,
                    exchange=exchange,
                    inference=inference,
                )
            )
    return StrategyAuditReport(
        strategy_name=strategy.name,
        strategy_hash=strategy.strategy_hash(),
        symbol=symbol,
        timeframe=strategy.data.timeframe.value,
        bars=len(base),
        first=base.index[0].isoformat(),
        last=base.index[-1].isoformat(),
        model_id=model_id,
        bundle_sha256=hashlib.sha256(bundle).hexdigest() if bundle is not None else None,
        trained=trained is not None and model_id is None,
        checks=results,
        passed=not any(check.failed_hard for check in results),
    )
