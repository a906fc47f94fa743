"""Schemas of the documents a worker produces: training results and model-backtest reports.

A model trained on one symbol is backtested into a ``ktrdr-backtest-report/1``
(:class:`BacktestReport`); a model trained on several into a ``ktrdr-backtest-report/2``
(:class:`PortfolioReport`): a ``portfolio`` section and one ``ktrdr-backtest-report/1`` per
symbol under ``symbols``. :func:`load_backtest_report` reads both, and :func:`headline` gives
the part that describes a report as a whole (its metrics, buy-and-hold, equity).

Both are plain JSON, written by ``ktrdr_worker`` and read here with pydantic alone, so the
backend and the CLI validate, store and render them without numpy or torch. Conventions:

- fractions are plain ratios in [0, 1] (0.62 = 62 %), money is in the quote currency;
- times are ISO 8601 UTC; durations are seconds (``*_s``) or bars (``*_bars``);
- a value that is undefined (a Sharpe ratio without volatility) is ``null``, never NaN;
- classes are named ``BUY``, ``HOLD``, ``SELL`` (model output indices 0, 1, 2).

Unknown keys are rejected, so a renamed field is caught where the document is read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BACKTEST_REPORT_FORMAT",
    "BACKTEST_SERIES_FORMAT",
    "CLASS_NAMES",
    "PORTFOLIO_REPORT_FORMAT",
    "TRAINING_RESULT_FORMAT",
    "WALKFORWARD_SERIES_FORMAT",
    "AnyBacktestReport",
    "BacktestReport",
    "Baseline",
    "ClassMetrics",
    "ClassificationMetrics",
    "EpochRecord",
    "ExplanationRow",
    "PartRange",
    "PortfolioReport",
    "PortfolioSection",
    "SignalCounts",
    "TradeRecord",
    "TrainingSummary",
    "headline",
    "load_backtest_report",
    "load_training_result",
]

TRAINING_RESULT_FORMAT = "ktrdr-training-result/1"
BACKTEST_REPORT_FORMAT = "ktrdr-backtest-report/1"
PORTFOLIO_REPORT_FORMAT = "ktrdr-backtest-report/2"
BACKTEST_SERIES_FORMAT = "ktrdr-backtest-series/1"
"""The series a backtest's page draws (``ktrdr_worker.models.series``): per symbol its price
candles, trades, equity, buy-and-hold and drawdown as ``[unix seconds, value]`` points,
decimated by min/max buckets; the portfolio's equity, buy-and-hold and drawdown; the numbers
the page shows beside them."""
WALKFORWARD_SERIES_FORMAT = "ktrdr-walkforward-series/1"
"""The series a walk-forward's page draws: the stitched out-of-sample equity against
buy-and-hold, and each fold's first bar (``ktrdr_worker.walkforward``)."""
CLASS_NAMES = ("BUY", "HOLD", "SELL")
"""The classes a model predicts, by output index (``CLASS_NAMES[0] == "BUY"``): the one
definition; labels, training, decisions and every report use this order."""

ClassName = Literal["BUY", "HOLD", "SELL"]
Metric = float | int | None


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EpochRecord(_Doc):
    """One training epoch. Losses are class-weighted cross-entropy (nats per sample)."""

    epoch: int = Field(ge=1, description="1-based epoch number.")
    epochs: int = Field(ge=1, description="Epochs the run was allowed.")
    train_loss: float
    val_loss: float
    val_accuracy: float
    val_balanced_accuracy: float
    learning_rate: float
    elapsed_s: float = Field(description="Seconds of training since the run began.")
    samples_per_s: float = Field(description="Training samples processed per second.")
    best_epoch: int = Field(description="Epoch with the lowest validation loss so far.")
    improved: bool


class ClassMetrics(_Doc):
    precision: float
    recall: float
    f1: float
    support: int


class Baseline(_Doc):
    """Always predicting the most frequent true class: what a model must beat."""

    class_: ClassName = Field(alias="class")
    accuracy: float
    balanced_accuracy: float = Field(
        description="Mean per-class recall of the constant prediction: 1/3 with three classes."
    )


class ClassificationMetrics(_Doc):
    """Quality of predictions on held-out samples, beside the majority-class baseline."""

    samples: int
    accuracy: float
    balanced_accuracy: float
    per_class: dict[ClassName, ClassMetrics]
    confusion_matrix: list[list[int]] = Field(description="Rows: true class, columns: predicted.")
    baseline: Baseline


class ExplanationRow(_Doc):
    """How much one input feature matters and which way it pushes.

    ``importance``: rise of the test set's class-weighted cross-entropy (nats per sample) when
    this feature's values are shuffled across samples — permutation importance, mean over
    repeats, with its standard deviation; ≤ 0 means the model does not rely on the feature.
    ``balanced_accuracy_drop``: the fall in balanced accuracy under the same shuffles.
    ``gradients``: mean derivative of each class probability with respect to the feature over
    the test samples, times the feature's standard deviation there — the change in probability
    for a one-standard-deviation rise. ``pushes_towards``/``direction``: the signal class (BUY or
    SELL) whose probability a high value raises most (``high``); when a rise lowers both (the
    feature pushes towards HOLD), the class that a low value raises most (``low``). ``text``
    reads e.g. "`1h_rsi_zone_oversold` high → BUY".
    """

    rank: int = Field(ge=1)
    feature: str
    importance: float
    importance_std: float
    balanced_accuracy_drop: float
    gradients: dict[ClassName, float]
    pushes_towards: ClassName
    direction: Literal["high", "low"]
    text: str


class PartRange(_Doc):
    """One chronological part of the data (train, validation or test)."""

    start: datetime | None = Field(description="First sample's bar (open time, UTC).")
    end: datetime | None = Field(description="Last sample's bar (open time, UTC).")
    samples: int
    class_counts: dict[ClassName, int]


IN_SAMPLE_PARTS: tuple[str, ...] = ("train", "validation")


def in_sample_parts(
    splits: Mapping[str, PartRange | Mapping[str, Any]], first: datetime, last: datetime
) -> list[str]:
    """The parts a model learned from (``train``, ``validation``) whose bars fall within
    ``first`` … ``last`` (UTC, both included): a backtest over them is not out of sample."""

    def utc(when: datetime) -> datetime:  # naive times are UTC throughout ktrdr
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    overlapping = []
    for name in IN_SAMPLE_PARTS:
        part = splits.get(name)
        if part is None:
            continue
        part = part if isinstance(part, PartRange) else PartRange.model_validate(part)
        if part.start is None or part.end is None:
            continue
        if utc(part.start) <= utc(last) and utc(first) <= utc(part.end):
            overlapping.append(name)
    return overlapping


class TrainingSummary(_Doc):
    """What a training run produced: history, test metrics, explanations and provenance
    (the ``summary`` of the ``ktrdr_core.protocol.TrainingResult`` a worker completes with)."""

    format: Literal["ktrdr-training-result/1"] = TRAINING_RESULT_FORMAT
    strategy_name: str
    strategy_hash: str = Field(description="sha256 of the strategy's canonical form.")
    created_at: datetime
    symbols: list[str]
    timeframe: str
    feature_names: list[str]
    model: dict[str, Any] = Field(description="Network spec: type, hidden_layers, ….")
    training: dict[str, Any] = Field(description="Training settings actually used.")
    labels: dict[str, Any] = Field(description="Label settings and per-symbol label reports.")
    device: str = Field(description="Device trained on: cpu, cuda or mps.")
    device_name: str
    seed: int
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    resumed_from_epoch: int | None = None
    class_weights: dict[ClassName, float]
    splits: dict[Literal["train", "validation", "test"], PartRange]
    history: list[EpochRecord]
    validation_metrics: ClassificationMetrics
    test_metrics: ClassificationMetrics
    explanations: list[ExplanationRow]
    timings: dict[str, float] = Field(description="Seconds per phase and in total.")
    versions: dict[str, str] = Field(description="Package versions (ktrdr, torch, numpy, …).")
    bundle_sha256: str | None = Field(None, description="sha256 of the model bundle's bytes.")

    def explanation_table(self, limit: int | None = None) -> str:
        """The explanations as a fixed-width text table, most important first."""
        rows = self.explanations[:limit] if limit else self.explanations
        if not rows:
            return "(no explanations)"
        width = max(len(row.feature) for row in rows) + 2
        lines = [
            f"{'rank':>4}  {'feature':<{width}} {'importance':>10}  "
            f"{'dBUY':>7} {'dHOLD':>7} {'dSELL':>7}  reading"
        ]
        for row in rows:
            g = row.gradients
            lines.append(
                f"{row.rank:>4}  {row.feature:<{width}} {row.importance:>10.4f}  "
                f"{g['BUY']:>7.3f} {g['HOLD']:>7.3f} {g['SELL']:>7.3f}  {row.text}"
            )
        return "\n".join(lines)


class TradeRecord(_Doc):
    """One round trip of a backtest (prices are fills, slippage included)."""

    entry_time: datetime
    exit_time: datetime
    side: Literal["long", "short"]
    units: float
    entry_price: float
    exit_price: float
    gross_pnl: float
    commission: float
    net_pnl: float
    return_: float = Field(alias="return", description="net_pnl / entry value (fraction).")
    bars_held: int
    exit_reason: str


class SignalCounts(_Doc):
    """How the model's outputs turned into decisions over the backtest's bars.

    ``BUY``/``HOLD``/``SELL``: bars where that class had the highest probability;
    ``no_data``: bars without a prediction (features still warming up or NaN);
    ``below_threshold``: BUY/SELL bars whose probability missed the confidence threshold;
    ``suppressed_by_separation``: signals ignored because the last position change was too
    recent; ``ignored_short``: SELL signals while flat in long-only mode; ``position_changes``:
    target-position changes that the engine was asked to fill.
    """

    BUY: int
    HOLD: int
    SELL: int
    no_data: int
    below_threshold: int
    suppressed_by_separation: int
    ignored_short: int
    position_changes: int


Period = Annotated[str, Field(description="'test' (the bundle's test period) or 'custom'.")]
InSample = Annotated[
    list[Literal["train", "validation"]],
    Field(
        description="The model's training parts these bars overlap (empty: out of sample). "
        "Numbers over bars the model learned from look better than they will on new data."
    ),
]
Inference = Annotated[
    Literal["numpy", "torch"] | None,
    Field(
        description="The forward pass that computed the model's probabilities: 'numpy' "
        "(float32, no torch: the backtest worker's image) or 'torch'. They agree within 1e-5. "
        "Null in reports written before it was recorded."
    ),
]


class BacktestReport(_Doc):
    """A model backtest: metrics, trades, equity and drawdown, buy-and-hold, signal counts."""

    format: Literal["ktrdr-backtest-report/1"] = BACKTEST_REPORT_FORMAT
    created_at: datetime
    strategy_name: str
    strategy_hash: str
    bundle_sha256: str
    symbol: str
    timeframe: str
    start: datetime = Field(description="First traded bar (open time, UTC).")
    end: datetime = Field(description="Last traded bar (open time, UTC).")
    bars: int
    warmup_bars: int = Field(description="Bars before `start` used only to warm indicators up.")
    period: Period
    in_sample: InSample = []
    inference: Inference = None
    decisions: dict[str, Any]
    config: dict[str, Any] = Field(description="Backtest settings: capital, costs, sizing.")
    calendar: dict[str, Any]
    metrics: dict[str, Metric]
    buy_and_hold: dict[str, Metric] = Field(
        description="The same metrics for holding the asset over the same bars: bought at the "
        "first bar's close, valued at each close, no costs (backtesting.py's Buy & Hold). Its "
        "total_return is metrics.buy_and_hold_return."
    )
    signal_counts: SignalCounts
    zero_trade_reason: str | None = Field(
        description="Why no trade happened (null when there were trades)."
    )
    trades: list[TradeRecord]
    equity: list[tuple[datetime, float]] = Field(description="(bar time, equity at its close).")
    drawdown: list[tuple[datetime, float]] = Field(
        description="(bar time, fraction below the running equity peak, ≥ 0)."
    )
    charts: dict[str, str] = Field(
        default_factory=dict, description="Chart files beside the report: format → file name."
    )


class PortfolioSection(_Doc):
    """The sleeves together: one account holding every symbol's sleeve.

    The capital is split into one sleeve per symbol (``weights``: fractions summing to 1). A
    sleeve trades its symbol exactly as a single-symbol backtest with ``capital × weight``
    would, and the sleeves are never rebalanced: a sleeve that grows holds a larger share of
    the account from then on. ``equity`` is the sum of the sleeves' equity on the union of
    their bar times, each sleeve carried forward where its market has no bar (and holding its
    capital before its first bar). ``calendar`` annualises ``metrics`` over that union (see
    ``ktrdr_worker.models.portfolio``). ``contributions``: each sleeve's profit as a fraction of
    the whole capital; they add up to ``metrics.total_return``. ``buy_and_hold``: every sleeve's
    capital held in its asset over the same bars, summed the same way.
    """

    capital: float = Field(description="The whole capital, quote currency.")
    weights: dict[str, float]
    rebalancing: Literal["none"] = Field(
        "none", description="How sleeves are brought back to their weights: never, for now."
    )
    calendar: dict[str, Any]
    metrics: dict[str, Metric]
    buy_and_hold: dict[str, Metric]
    contributions: dict[str, float]
    equity: list[tuple[datetime, float]] = Field(description="(union bar time, summed equity).")
    drawdown: list[tuple[datetime, float]]


class PortfolioReport(_Doc):
    """A backtest of a model trained on several symbols over the window they share: the
    portfolio, then each symbol's own report (``symbols``, in the strategy's order)."""

    format: Literal["ktrdr-backtest-report/2"] = PORTFOLIO_REPORT_FORMAT
    created_at: datetime
    strategy_name: str
    strategy_hash: str
    bundle_sha256: str
    timeframe: str
    start: datetime = Field(description="The shared window's first bar (open time, UTC).")
    end: datetime = Field(description="The shared window's last bar (open time, UTC).")
    bars: int = Field(description="Bars on the union of the symbols' bar times.")
    period: Period
    in_sample: InSample = []
    inference: Inference = None
    portfolio: PortfolioSection
    symbols: dict[str, BacktestReport]
    charts: dict[str, str] = Field(default_factory=dict)


AnyBacktestReport = BacktestReport | PortfolioReport


def headline(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """The part of a backtest report (a parsed JSON document of either format) that describes
    it as a whole — ``metrics``, ``buy_and_hold``, ``equity``, ``calendar``: the portfolio
    section of a ``/2`` report, the report itself for a single symbol's ``/1``."""
    portfolio = report.get("portfolio")
    return portfolio if isinstance(portfolio, Mapping) else report


def _load(model: type[BaseModel], source: str | bytes | Path | dict[str, Any]) -> Any:
    if isinstance(source, dict):
        return model.model_validate(source)
    if isinstance(source, Path):
        source = source.read_bytes()
    return model.model_validate(json.loads(source))


def load_training_result(source: str | bytes | Path | dict[str, Any]) -> TrainingSummary:
    """Validate a training result from JSON text/bytes, a file path or a parsed dict."""
    return _load(TrainingSummary, source)


def load_backtest_report(source: str | bytes | Path | dict[str, Any]) -> AnyBacktestReport:
    """Validate a backtest report from JSON text/bytes, a file path or a parsed dict: a
    :class:`PortfolioReport` when its format is ``ktrdr-backtest-report/2``, else a
    :class:`BacktestReport` (every report written before portfolios existed)."""
    if not isinstance(source, dict):
        source = json.loads(source.read_bytes() if isinstance(source, Path) else source)
    if isinstance(source, dict) and source.get("format") == PORTFOLIO_REPORT_FORMAT:
        return PortfolioReport.model_validate(source)
    return BacktestReport.model_validate(source)
