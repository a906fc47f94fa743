"""Train a strategy end to end: data → features and labels → split → network → bundle.

:func:`train_strategy` is what a training worker calls. It takes a strategy and one OHLCV
frame per symbol and returns a :class:`TrainingOutcome` of plain values: the model bundle's
bytes and the training result as a JSON-ready dict (schema
``ktrdr_core.reports.TrainingSummary``, the ``summary`` of the worker's ``TrainingResult``). Steps:

1. per symbol, separately: cut the data to ``data.end``; features (``ktrdr_worker.features``)
   and labels (``ktrdr_worker.labels.make_labels``) on the base timeframe; samples are the
   bars from ``data.start`` on with every feature of their window and a label — warm-up bars
   before ``data.start`` feed the indicators only;
2. one chronological split for all symbols (common cut times, ``data.split``), with
   ``data.embargo_bars`` samples dropped at the end of each symbol's train and validation
   parts; windows never cross a symbol boundary;
3. training (``ktrdr_worker.models.training``), then test-set evaluation beside the
   majority-class baseline and the explanation table;
4. the bundle: weights plus ``bundle.json`` (``ktrdr_core.bundles``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as day_time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_core.errors import KtrdrError
from ktrdr_core.reports import CLASS_NAMES, TrainingSummary
from ktrdr_core.strategy.loading import load_strategy
from ktrdr_core.strategy.schema import Strategy
from ktrdr_core.version import computing_versions
from ktrdr_worker.evaluation import classification_report
from ktrdr_worker.features import build_features
from ktrdr_worker.labels import make_labels
from ktrdr_worker.models.bundles import bundle_bytes, save_bundle
from ktrdr_worker.models.datasets import Samples, build_samples, split_by_time
from ktrdr_worker.models.explanations import explain
from ktrdr_worker.models.networks import state_arrays, trainable_parameters
from ktrdr_worker.models.spec import NetworkSpec
from ktrdr_worker.models.training import (
    EpochReport,
    TrainingConfig,
    predict_probabilities,
    torch_threads,
    train_network,
)
from ktrdr_worker.runtime import torch_runtime

__all__ = [
    "StrategyTrainingError",
    "TrainingOutcome",
    "network_spec",
    "train_strategy",
    "training_config",
]

PARTS = ("train", "validation", "test")
# Training settings the strategy file does not expose: fixed here and recorded in every result.
LR_SCHEDULE = "cosine"
GRAD_CLIP = 1.0

SymbolData = pd.DataFrame | Mapping[str, pd.DataFrame]


class StrategyTrainingError(KtrdrError, ValueError):
    """The strategy cannot be trained on the data given; the message says what to change."""


@dataclass(frozen=True)
class TrainingOutcome:
    """What :func:`train_strategy` returns: plain values only.

    ``bundle``: the model bundle's zip bytes; ``result``: the training result (JSON-ready
    dict, ``ktrdr_core.reports.TrainingSummary``); ``bundle_path``: where the bundle was written
    when a path was asked for.
    """

    bundle: bytes
    result: dict[str, Any]
    bundle_path: Path | None = None


def network_spec(strategy: Strategy) -> NetworkSpec:
    """The network of a strategy's ``model`` section."""
    return NetworkSpec.from_dict(strategy.model.model_dump())


def training_config(
    strategy: Strategy,
    *,
    seed: int | None = None,
    device: str | None = None,
    epochs: int | None = None,
    threads: int | None = None,
) -> TrainingConfig:
    """The training settings of a strategy's ``training`` section, with optional overrides."""
    section = strategy.training
    stopping = section.early_stopping
    return TrainingConfig(
        epochs=section.epochs if epochs is None else epochs,
        batch_size=section.batch_size,
        learning_rate=section.learning_rate,
        weight_decay=section.weight_decay,
        early_stopping_patience=stopping.patience if stopping is not None else 0,
        min_delta=stopping.min_delta if stopping is not None else 0.0,
        lr_schedule=LR_SCHEDULE,
        grad_clip=GRAD_CLIP,
        seed=section.seed if seed is None else seed,
        device=section.device if device is None else device,
        checkpoint_interval=section.checkpoint_interval,
        threads=threads,
    )


def _as_strategy(strategy: Strategy | str | Path | Mapping[str, Any]) -> tuple[Strategy, str]:
    if isinstance(strategy, Strategy):
        return strategy, strategy.model_dump_json(indent=2)
    loaded = load_strategy(strategy)  # type: ignore[arg-type]
    if isinstance(strategy, Path) or (isinstance(strategy, str) and "\n" not in strategy):
        return loaded, Path(strategy).read_text(encoding="utf-8")
    if isinstance(strategy, str):
        return loaded, strategy
    return loaded, loaded.model_dump_json(indent=2)


def _base_frame(data: SymbolData, strategy: Strategy, symbol: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        base = strategy.data.timeframe
        for key, frame in data.items():
            if str(key) == base.value:
                return frame
        raise StrategyTrainingError(
            f"data for {symbol}: no frame for the base timeframe {base.value} "
            f"(got {', '.join(map(str, data))})"
        )
    raise StrategyTrainingError(
        f"data for {symbol}: expected an ohlcv DataFrame or a mapping timeframe → DataFrame, "
        f"got {type(data).__name__}"
    )


def _cut(data: SymbolData, end: pd.Timestamp | None) -> SymbolData:
    if end is None:
        return data
    if isinstance(data, pd.DataFrame):
        return data.loc[data.index < end]
    return {key: frame.loc[frame.index < end] for key, frame in data.items()}


def data_checksum(ohlcv: pd.DataFrame) -> str:
    """sha256 of bar times (ns since the epoch) and OHLCV values (float64), in column order."""
    digest = hashlib.sha256()
    digest.update(ohlcv.index.as_unit("ns").asi8.tobytes())
    digest.update(
        np.ascontiguousarray(
            ohlcv[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
        ).tobytes()
    )
    return digest.hexdigest()


def _part_range(times: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    counts = np.bincount(labels, minlength=3) if labels.size else np.zeros(3, dtype=np.int64)
    return {
        "start": pd.Timestamp(int(times.min()), tz="UTC").isoformat() if times.size else None,
        "end": pd.Timestamp(int(times.max()), tz="UTC").isoformat() if times.size else None,
        "samples": int(labels.size),
        "class_counts": {name: int(counts[i]) for i, name in enumerate(CLASS_NAMES)},
    }


def train_strategy(
    strategy: Strategy | str | Path | Mapping[str, Any],
    data_by_symbol: Mapping[str, SymbolData],
    *,
    seed: int | None = None,
    device: str | None = None,
    epochs: int | None = None,
    threads: int | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    after_epoch: Callable[[int], None] | None = None,
    bundle_path: str | Path | None = None,
    explain_repeats: int = 3,
) -> TrainingOutcome:
    """Train ``strategy`` on the given data and build its bundle and training result.

    In: a strategy (validated ``Strategy``, YAML path or text, or a mapping); ``data_by_symbol``
    maps every symbol of ``data.symbols`` to its canonical OHLCV frame on the base timeframe
    (or to a mapping timeframe → frame; higher timeframes missing from it are resampled).
    Give bars before ``data.start`` for the indicators to warm up on. Overrides: ``seed``,
    ``device`` (``auto|cpu|cuda|mps``), ``epochs``, torch ``threads``. ``on_epoch`` receives
    one dict per epoch (``ktrdr_core.reports.EpochRecord`` fields); ``should_cancel`` is polled
    before every batch (a cancel raises ``TrainingCancelled`` after saving a checkpoint into
    ``checkpoint_dir``); ``resume_from`` continues from such a checkpoint; ``after_epoch`` runs
    at each epoch boundary once its checkpoint is saved (see :func:`train_network`);
    ``bundle_path`` also writes the bundle there.

    Out: :class:`TrainingOutcome` (bundle bytes and the result dict). Raises
    :class:`StrategyTrainingError`, ``FeatureError``, ``LabelError`` or ``TrainingError`` with
    what to change.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    strategy, text = _as_strategy(strategy)
    symbols = list(strategy.data.symbols)
    missing = [s for s in symbols if s not in data_by_symbol]
    extra = [s for s in data_by_symbol if s not in symbols]
    if missing or extra:
        raise StrategyTrainingError(
            f"data.symbols is {symbols} but data was given for {list(data_by_symbol)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; not in the strategy {extra}" if extra else "")
        )
    spec = network_spec(strategy)
    config = training_config(strategy, seed=seed, device=device, epochs=epochs, threads=threads)
    start = pd.Timestamp(strategy.data.start, tz="UTC") if strategy.data.start else None
    end = (
        pd.Timestamp(datetime.combine(strategy.data.end, day_time(0), UTC)) + pd.Timedelta(days=1)
        if strategy.data.end
        else None
    )
    feature_names = strategy.feature_names()

    # 1. Features and labels, one symbol at a time.
    blocks: list[tuple[np.ndarray, np.ndarray]] = []
    block_index: list[pd.DatetimeIndex] = []
    data_records: list[dict[str, Any]] = []
    label_reports: dict[str, Any] = {}
    feature_reports: dict[str, Any] = {}
    warmup = 0
    timings["features_s"] = timings["labels_s"] = 0.0
    for symbol in symbols:
        data = _cut(data_by_symbol[symbol], end)
        base = _base_frame(data, strategy, symbol)
        if len(base) == 0:
            raise StrategyTrainingError(f"data for {symbol}: no bars up to data.end {end}")
        t0 = time.perf_counter()
        built = build_features(strategy, data)
        timings["features_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        labelled = make_labels(strategy.labels, base)
        timings["labels_s"] += time.perf_counter() - t0
        # Dropped feature rows come back as NaN so no window spans a gap.
        features = built.frame.reindex(base.index).to_numpy(dtype=np.float64)
        labels = labelled.labels.to_numpy(dtype=np.float64).copy()
        if start is not None:
            labels[base.index < start] = np.nan
        blocks.append((features, labels))
        block_index.append(base.index)
        warmup = max(warmup, built.report.warmup_rows + spec.window - 1)
        label_reports[symbol] = labelled.report.to_dict()
        feature_reports[symbol] = built.report.to_dict()
        data_records.append(
            {
                "symbol": symbol,
                "timeframe": strategy.data.timeframe.value,
                "checksum": data_checksum(base),
                "rows": len(base),
                "first": base.index[0].isoformat(),
                "last": base.index[-1].isoformat(),
            }
        )

    samples, per_block = build_samples(blocks, spec.window)
    if len(samples) == 0:
        raise StrategyTrainingError(
            "no bar has both a complete feature window and a label; give more data (from "
            f"{strategy.data.start or 'the first bar'} to {strategy.data.end or 'the last bar'})"
        )
    stacked_times = np.concatenate([ix.as_unit("ns").asi8 for ix in block_index])
    block_times = [stacked_times[samples.ends[p]] for p in per_block]

    # 2. One chronological split for all symbols.
    split = strategy.data.split
    parts = split_by_time(
        block_times, (split.train, split.validation, split.test), strategy.embargo_bars
    )
    chosen = {
        name: np.concatenate([per_block[b][part[b]] for b in range(len(per_block))])
        for name, part in zip(PARTS, parts, strict=True)
    }
    subsets: dict[str, Samples] = {name: samples.subset(idx) for name, idx in chosen.items()}
    times = {name: stacked_times[subsets[name].ends] for name in PARTS}
    for b, record in enumerate(data_records):
        record["samples"] = {name: int(parts[k][b].size) for k, name in enumerate(PARTS)}

    # 3. Train, evaluate, explain.
    def forward(report: EpochReport) -> None:
        if on_epoch is not None:
            on_epoch(report.to_dict())

    t0 = time.perf_counter()
    trained = train_network(
        subsets["train"],
        subsets["validation"],
        spec,
        config,
        on_epoch=forward,
        should_cancel=should_cancel,
        checkpoint_dir=checkpoint_dir,
        resume_from=resume_from,
        after_epoch=after_epoch,
    )
    timings["training_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    metrics = {}
    with torch_threads(threads):
        for name in ("validation", "test"):
            probabilities = predict_probabilities(trained.network, subsets[name])
            metrics[name] = classification_report(
                subsets[name].labels, probabilities.argmax(axis=1), CLASS_NAMES
            )
        timings["evaluation_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        explanations = explain(
            trained.network,
            subsets["test"],
            feature_names,
            trained.class_weights,
            repeats=explain_repeats,
            seed=config.seed,
        )
        timings["explanation_s"] = time.perf_counter() - t0

    # 4. Bundle and result.
    runtime = torch_runtime()
    created = datetime.now(UTC).isoformat()
    splits = {name: _part_range(times[name], subsets[name].labels) for name in PARTS}
    training_settings = {**config.to_dict(), "class_weights": trained.class_weights}
    labels_section = {
        "method": strategy.labels.method,
        "settings": strategy.labels.config.model_dump(mode="json"),
        "reports": label_reports,
    }
    manifest = {
        "created_at": created,
        "strategy": {
            "name": strategy.name,
            "hash": strategy.strategy_hash(),
            "text": text,
            "config": strategy.model_dump(mode="json"),
        },
        "feature_names": feature_names,
        "model": spec.to_dict(),
        "training": training_settings,
        "labels": labels_section,
        "decisions": strategy.decisions.model_dump(mode="json"),
        "backtest": strategy.backtest.model_dump(mode="json"),
        "timeframe": strategy.data.timeframe.value,
        "extra_timeframes": [tf.value for tf in strategy.data.extra_timeframes],
        "warmup_bars": int(warmup),
        "data": data_records,
        "splits": splits,
        "seed": config.seed,
        "device": trained.device,
        "versions": computing_versions(),
        "history": trained.history,
        "best_epoch": trained.best_epoch,
        "test_metrics": metrics["test"],
        "explanations": explanations,
    }
    t0 = time.perf_counter()
    network = trained.network
    bundle = bundle_bytes(manifest, state_arrays(network), trainable_parameters(network))
    written = save_bundle(bundle, bundle_path) if bundle_path is not None else None
    timings["bundle_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    result = TrainingSummary.model_validate(
        {
            "strategy_name": strategy.name,
            "strategy_hash": manifest["strategy"]["hash"],
            "created_at": created,
            "symbols": symbols,
            "timeframe": strategy.data.timeframe.value,
            "feature_names": feature_names,
            "model": spec.to_dict(),
            "training": training_settings,
            "labels": {**labels_section, "features": feature_reports},
            "device": trained.device,
            "device_name": runtime.device_name if trained.device != "cpu" else "CPU",
            "seed": config.seed,
            "epochs_run": len(trained.history),
            "best_epoch": trained.best_epoch,
            "stopped_early": trained.stopped_early,
            "resumed_from_epoch": trained.resumed_from_epoch,
            "class_weights": dict(zip(CLASS_NAMES, trained.class_weights, strict=True)),
            "splits": splits,
            "history": trained.history,
            "validation_metrics": metrics["validation"],
            "test_metrics": metrics["test"],
            "explanations": explanations,
            "timings": timings,
            "versions": manifest["versions"],
            "bundle_sha256": hashlib.sha256(bundle).hexdigest(),
        }
    )
    return TrainingOutcome(
        bundle=bundle, result=result.model_dump(mode="json", by_alias=True), bundle_path=written
    )
