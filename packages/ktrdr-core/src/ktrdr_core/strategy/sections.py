"""The sections of a strategy file as plain data: one pydantic model per section.

Every model forbids unknown keys; numbers are strict (``true`` is not 1, ``14.0`` is not an
integer) and finite. Units are in the field descriptions: *bars* are bars of the base timeframe
(``data.timeframe``) unless said otherwise, *fractions* are plain ratios (0.001 = 0.1 %).

Checks that need more than one section — indicator parameters against the catalog, references
from fuzzy sets and inputs, the embargo against the label horizon — live in
``ktrdr_core.strategy.consistency`` and run in the loader (``ktrdr_core.strategy.loading``).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ktrdr_core.catalog.indicators import INDICATORS
from ktrdr_core.catalog.membership import MEMBERSHIPS
from ktrdr_core.timeframes import Timeframe

__all__ = [
    "IDENTIFIER_PATTERN",
    "NAME_PATTERN",
    "REFERENCE_PATTERN",
    "SYMBOL_PATTERN",
    "BacktestConfig",
    "DataConfig",
    "DecisionsConfig",
    "EarlyStopping",
    "ForwardReturnLabels",
    "FuzzySet",
    "IndicatorConfig",
    "InputSpec",
    "LabelsConfig",
    "Membership",
    "ModelConfig",
    "Split",
    "StrategySections",
    "TrainingConfig",
    "TripleBarrierLabels",
    "ZigZagLabels",
]

IDENTIFIER_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
"""Indicator ids, fuzzy-set and membership names: lower case, digits, underscores; they end up
in feature names, so no dots or spaces."""

REFERENCE_PATTERN = r"^[a-z][a-z0-9_]{0,63}(\.[a-z][a-z0-9_]{0,63})?$"
"""A reference to an indicator output: ``id`` (single-output indicators) or ``id.output``."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SYMBOL_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9._=-]{0,31}$"

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
Reference = Annotated[str, StringConstraints(pattern=REFERENCE_PATTERN)]


def _finite_number(value: Any) -> Any:
    # One clear error instead of pydantic's two (one per member of int | float).
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return value


ParamValue = Annotated[
    int | float,
    BeforeValidator(_finite_number),
    WithJsonSchema({"type": "number"}),
]


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, floats must be finite."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --------------------------------------------------------------------------------------------
# data


class Split(_Section):
    """Chronological split of the bars into train, validation and test, as fractions."""

    train: StrictFloat = Field(0.7, gt=0, lt=1, description="Fraction of bars for training.")
    validation: StrictFloat = Field(
        0.15, gt=0, lt=1, description="Fraction for validation (early stopping, model choice)."
    )
    test: StrictFloat = Field(
        0.15, gt=0, lt=1, description="Fraction held out for the backtest; never trained on."
    )

    @model_validator(mode="after")
    def _sums_to_one(self) -> Split:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(
                "train + validation + test must add up to 1, got "
                f"{self.train:g} + {self.validation:g} + {self.test:g} = {total:g}"
            )
        return self


class DataConfig(_Section):
    """Which market data the strategy trains and is tested on."""

    symbols: list[Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN)]] = Field(
        min_length=1,
        description="Symbols, e.g. [AAPL] or [EURUSD, GBPUSD]; one model is trained on all.",
    )
    timeframe: Timeframe = Field(
        description="Base timeframe: bars, labels, decisions and the backtest run on it."
    )
    extra_timeframes: list[Timeframe] = Field(
        default_factory=list,
        description="Longer timeframes resampled from the base one (e.g. [4h, 1d] on 1h).",
    )
    start: date | None = Field(
        None, description="First day of data used (inclusive, UTC); null = first available."
    )
    end: date | None = Field(
        None, description="Last day of data used (inclusive, UTC); null = last available."
    )
    split: Split = Field(default_factory=Split)  # type: ignore[arg-type]
    embargo_bars: StrictInt | None = Field(
        None,
        ge=0,
        le=100_000,
        description=(
            "Bars dropped between train/validation and validation/test so labels never see "
            "the next part; at least the label horizon. null = the label horizon."
        ),
    )

    # Field validators rather than one model validator: each runs even when another field of
    # the section is wrong, so all of a section's problems are reported together.
    @field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, symbols: list[str]) -> list[str]:
        dupes = sorted({s for s in symbols if symbols.count(s) > 1})
        if dupes:
            raise ValueError(f"symbols must be unique, got {', '.join(dupes)} more than once")
        return symbols

    @field_validator("extra_timeframes")
    @classmethod
    def _longer_than_base(cls, extra: list[Timeframe], info: ValidationInfo) -> list[Timeframe]:
        if len(set(extra)) != len(extra):
            raise ValueError(
                "extra_timeframes must not repeat a timeframe, got "
                f"{', '.join(tf.value for tf in extra)}"
            )
        base = info.data.get("timeframe")
        shorter = [tf.value for tf in extra if base is not None and tf <= base]
        if shorter:
            raise ValueError(
                f"extra_timeframes must be longer than the base timeframe {base.value} (they "
                f"are resampled from it), got {', '.join(shorter)}"
            )
        return extra

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start")
        if start is not None and end is not None and start > end:
            raise ValueError(f"end must not be before start, got start {start}, end {end}")
        return end

    @property
    def timeframes(self) -> list[Timeframe]:
        """Base timeframe first, then the extra ones in file order."""
        return [self.timeframe, *self.extra_timeframes]


# --------------------------------------------------------------------------------------------
# indicators and fuzzy sets


class IndicatorConfig(_Section):
    """One indicator instance: a catalog type and its parameters (defaults from the catalog)."""

    type: str = Field(description="Indicator type from the catalog, e.g. rsi, macd, bbands.")
    params: dict[str, ParamValue] = Field(
        default_factory=dict,
        description="Parameters by name; omitted ones take the catalog default.",
    )

    @property
    def outputs(self) -> tuple[str, ...]:
        """Named outputs (column names) of this indicator type, from the catalog."""
        return INDICATORS[self.type].outputs


class Membership(_Section):
    """One named membership function of a fuzzy set: a catalog type and positional params."""

    # Infinities reach the catalog check, whose message says to write null for a shoulder.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=True)

    type: Literal["triangular", "trapezoidal", "gaussian", "sigmoid"] = Field(
        description="Membership function type (see ktrdr_core.catalog.membership)."
    )
    params: list[StrictFloat | None] = Field(
        description=(
            "Positional parameters in the units of the indicator output: triangular [a, b, c], "
            "trapezoidal [a, b, c, d] (a or d null = open shoulder), gaussian [mean, sigma], "
            "sigmoid [center, slope]."
        )
    )

    @model_validator(mode="after")
    def _check_params(self) -> Membership:
        problem = MEMBERSHIPS[self.type].check(self.params)
        if problem is not None:
            raise ValueError(problem)
        return self


class FuzzySet(BaseModel):
    """A fuzzy set: the indicator output it reads plus its named memberships.

    In YAML the memberships sit beside ``indicator``::

        rsi_zone:
          indicator: rsi_14          # or macd_fast.hist for one output of a multi-output one
          oversold: {type: triangular, params: [0, 20, 35]}
          overbought: {type: trapezoidal, params: [65, 80, 100, null]}

    Every key other than ``indicator`` is a membership name and must hold a membership, so a
    misspelt key is still an error (it is not a valid membership). Order is kept: it is the
    order of the features.
    """

    # Extra keys are the memberships themselves, each validated as a Membership.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    __pydantic_extra__: dict[str, Membership] = Field(init=False)

    indicator: Reference = Field(
        description="Indicator output read: `id` for single-output indicators, else `id.output`."
    )

    @model_validator(mode="after")
    def _has_memberships(self) -> FuzzySet:
        if not self.__pydantic_extra__:
            raise ValueError(
                "a fuzzy set needs at least one membership beside `indicator`, "
                "e.g. low: {type: triangular, params: [0, 20, 40]}"
            )
        return self

    @property
    def memberships(self) -> dict[str, Membership]:
        """Membership name → membership, in file order."""
        return dict(self.__pydantic_extra__ or {})


class InputSpec(_Section):
    """One model input: a fuzzy set (one feature per membership) or a raw indicator output."""

    fuzzy_set: Identifier | None = Field(
        None, description="Name of a fuzzy set; each of its memberships becomes a feature."
    )
    raw: Reference | None = Field(
        None, description="Indicator output fed as is: `id` or `id.output`."
    )
    timeframes: list[Timeframe] | None = Field(
        None,
        min_length=1,
        description="Timeframes to compute it on, in feature order; null = the base timeframe.",
    )

    @field_validator("timeframes")
    @classmethod
    def _no_repeat(cls, timeframes: list[Timeframe] | None) -> list[Timeframe] | None:
        if timeframes is not None and len(set(timeframes)) != len(timeframes):
            raise ValueError(
                "timeframes must not repeat a timeframe, got "
                f"{', '.join(tf.value for tf in timeframes)}"
            )
        return timeframes

    @model_validator(mode="after")
    def _one_source(self) -> InputSpec:
        problem = input_source_problem(self.fuzzy_set is not None, self.raw is not None)
        if problem:
            raise ValueError(problem)
        return self


def input_source_problem(has_fuzzy_set: bool, has_raw: bool) -> str | None:
    """Message when an input names neither or both of ``fuzzy_set`` and ``raw``, else None."""
    if has_fuzzy_set != has_raw:
        return None
    got = "both" if has_fuzzy_set else "neither"
    return (
        "an input needs exactly one of `fuzzy_set: <set name>` or "
        f"`raw: <indicator>[.<output>]`, got {got}"
    )


# --------------------------------------------------------------------------------------------
# model and training


class ModelConfig(_Section):
    """Network architecture. The output layer is fixed: 3 classes, BUY / HOLD / SELL."""

    type: Literal["mlp", "gru", "lstm"] = Field(
        "mlp", description="mlp sees one bar's features; gru/lstm see `window` bars."
    )
    hidden_layers: list[Annotated[StrictInt, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [64, 32],
        min_length=1,
        max_length=8,
        description="Units per hidden layer (stacked recurrent layers for gru/lstm).",
    )
    activation: Literal["relu", "gelu", "tanh", "elu", "leaky_relu"] = Field(
        "relu", description="Activation between dense layers."
    )
    dropout: StrictFloat = Field(0.2, ge=0, lt=1, description="Dropout probability.")
    window: StrictInt = Field(
        1,
        validate_default=True,  # so `type: gru` without a window is reported
        ge=1,
        le=2048,
        description="Bars of history per sample: 1 for mlp; at least 2 for gru/lstm.",
    )

    @field_validator("window")
    @classmethod
    def _window_fits_type(cls, window: int, info: ValidationInfo) -> int:
        kind = info.data.get("type")
        if kind == "mlp" and window != 1:
            raise ValueError(
                "mlp takes one bar per sample: window must be 1 (use gru or lstm for a "
                f"history window), got {window}"
            )
        if kind in ("gru", "lstm") and window < 2:
            raise ValueError(f"{kind} needs window ≥ 2 bars of history per sample, got {window}")
        return window


class EarlyStopping(_Section):
    """Stop when validation loss has not improved by `min_delta` for `patience` epochs."""

    patience: StrictInt = Field(10, ge=1, le=10_000, description="Epochs without improvement.")
    min_delta: StrictFloat = Field(
        0.0, ge=0, description="Smallest decrease of validation loss that counts as improvement."
    )


class TrainingConfig(_Section):
    """Optimisation settings."""

    epochs: StrictInt = Field(100, ge=1, le=100_000, description="Maximum training epochs.")
    batch_size: StrictInt = Field(64, ge=1, le=1_048_576, description="Samples per batch.")
    learning_rate: StrictFloat = Field(1e-3, gt=0, le=1, description="Optimiser step size.")
    weight_decay: StrictFloat = Field(0.0, ge=0, le=1, description="L2 penalty (decoupled).")
    early_stopping: EarlyStopping | None = Field(
        default_factory=EarlyStopping,  # type: ignore[arg-type]
        description="Early stopping on validation loss; null trains for all epochs.",
    )
    seed: StrictInt = Field(
        42, ge=0, le=2**32 - 1, description="Seed for weights, shuffling and dropout."
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto = cuda if available, else mps, else cpu."
    )
    checkpoint_interval: StrictInt = Field(
        10, ge=1, le=100_000, description="Save a resumable checkpoint every this many epochs."
    )


# --------------------------------------------------------------------------------------------
# labels


class ZigZagLabels(_Section):
    """BUY / SELL at the start of a price swing of at least `threshold`, HOLD otherwise."""

    threshold: StrictFloat = Field(
        gt=0, lt=1, description="Smallest swing, as a fraction of price (0.03 = 3 %)."
    )
    lookahead: StrictInt = Field(
        ge=1, le=100_000, description="Bars ahead the labeller may look for the swing."
    )

    @property
    def horizon(self) -> int:
        return self.lookahead


class ForwardReturnLabels(_Section):
    """r = close[t + horizon] / close[t] - 1; BUY if r > buy_threshold, SELL if r <
    sell_threshold, else HOLD."""

    horizon: StrictInt = Field(ge=1, le=100_000, description="Bars ahead.")
    buy_threshold: StrictFloat = Field(
        gt=0, lt=10, description="Return above which the label is BUY (fraction, > 0)."
    )
    sell_threshold: StrictFloat = Field(
        gt=-1, lt=0, description="Signed return below which the label is SELL (fraction, < 0)."
    )


class TripleBarrierLabels(_Section):
    """Barriers at close[t]·(1 + profit_take·σ) and close[t]·(1 − stop_loss·σ), where σ is the
    standard deviation of close-to-close simple returns over the `volatility_window` bars
    ending at t. BUY if the upper barrier is touched first, SELL if the lower one is, HOLD if
    neither within `max_holding_bars`."""

    profit_take: StrictFloat = Field(gt=0, le=100, description="Upper barrier, in units of σ.")
    stop_loss: StrictFloat = Field(gt=0, le=100, description="Lower barrier, in units of σ.")
    max_holding_bars: StrictInt = Field(
        ge=1, le=100_000, description="Vertical barrier: bars after t."
    )
    volatility_window: StrictInt = Field(
        20, ge=2, le=100_000, description="Bars in the rolling volatility σ (ending at t)."
    )

    @property
    def horizon(self) -> int:
        return self.max_holding_bars


LABEL_METHODS = ("zigzag", "forward_return", "triple_barrier")


def labels_choice_problem(chosen: list[str]) -> str | None:
    """Message when not exactly one labelling method is given, else None."""
    if len(chosen) == 1:
        return None
    got = " and ".join(chosen) if chosen else "none"
    return (
        f"choose exactly one labelling method (zigzag, forward_return or triple_barrier), got {got}"
    )


class LabelsConfig(_Section):
    """Exactly one labelling method."""

    zigzag: ZigZagLabels | None = None
    forward_return: ForwardReturnLabels | None = None
    triple_barrier: TripleBarrierLabels | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> LabelsConfig:
        problem = labels_choice_problem([m for m in LABEL_METHODS if getattr(self, m) is not None])
        if problem:
            raise ValueError(problem)
        return self

    @property
    def method(self) -> Literal["zigzag", "forward_return", "triple_barrier"]:
        """Name of the chosen method."""
        if self.zigzag is not None:
            return "zigzag"
        if self.forward_return is not None:
            return "forward_return"
        return "triple_barrier"

    @property
    def config(self) -> ZigZagLabels | ForwardReturnLabels | TripleBarrierLabels:
        """Settings of the chosen method."""
        chosen = self.zigzag or self.forward_return or self.triple_barrier
        assert chosen is not None  # guaranteed by _exactly_one
        return chosen

    @property
    def horizon(self) -> int:
        """Furthest bar (after t) a label at t depends on: lookahead, horizon or max holding."""
        return self.config.horizon


# --------------------------------------------------------------------------------------------
# decisions and backtest


class DecisionsConfig(_Section):
    """How model probabilities become trades."""

    confidence_threshold: StrictFloat = Field(
        0.5, ge=0, le=1, description="Act only when the winning class probability ≥ this."
    )
    min_separation_bars: StrictInt = Field(
        0, ge=0, le=100_000, description="Minimum bars between two position changes."
    )
    mode: Literal["long_only", "long_short"] = Field(
        "long_only", description="long_only: SELL closes a long; long_short: SELL goes short."
    )


class BacktestConfig(_Section):
    """Simulation costs and sizing."""

    capital: StrictFloat = Field(
        100_000.0, gt=0, le=1e15, description="Starting capital, in the quote currency."
    )
    commission: StrictFloat = Field(
        0.001, ge=0, lt=0.1, description="Commission per fill, fraction of traded value."
    )
    slippage: StrictFloat = Field(
        0.0005, ge=0, lt=0.1, description="Adverse price move per fill, fraction of price."
    )
    position_size: StrictFloat = Field(
        1.0, gt=0, le=1, description="Fraction of equity committed per position."
    )
    fractional: StrictBool = Field(
        True, description="Allow fractional units (crypto, FX); false rounds down to whole units."
    )
    weights: dict[str, StrictFloat] | None = Field(
        None,
        description="Several symbols: the share of the capital each symbol's sleeve gets "
        "(symbol → fraction, every symbol named, summing to 1); left out: equal shares. "
        "Sleeves are never rebalanced.",
    )

    @field_validator("weights")
    @classmethod
    def _weights_are_shares(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        if weights is None:
            return None
        bad = sorted(symbol for symbol, share in weights.items() if not 0 < share <= 1)
        if bad:
            raise ValueError(f"each weight must be in (0, 1], not those of {', '.join(bad)}")
        total = sum(weights.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to 1, they sum to {total:g}")
        return weights


# --------------------------------------------------------------------------------------------
# the whole file


class StrategySections(_Section):
    """Every section of a strategy file, as validated data: no cross-section checks and no
    derived values (``load_strategy`` runs the checks; ``Strategy`` derives the values)."""

    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)] = Field(
        description="Strategy name: letters, digits, `_`, `.`, `-` (used in bundle names)."
    )
    description: str = Field("", max_length=10_000, description="Free text.")
    data: DataConfig = Field(
        description="Symbols, base and extra timeframes, date range, split and embargo."
    )
    indicators: dict[Identifier, IndicatorConfig] = Field(
        min_length=1, description="Indicator id → type and parameters."
    )
    fuzzy_sets: dict[Identifier, FuzzySet] = Field(
        default_factory=dict, description="Fuzzy set name → indicator output and memberships."
    )
    inputs: list[InputSpec] = Field(min_length=1, description="Model inputs, in feature order.")
    model: ModelConfig = Field(
        default_factory=ModelConfig,  # type: ignore[arg-type]
        description="Network architecture.",
    )
    training: TrainingConfig = Field(
        default_factory=TrainingConfig,  # type: ignore[arg-type]
        description="Optimisation settings.",
    )
    labels: LabelsConfig = Field(
        description="One labelling method: zigzag, forward_return or triple_barrier."
    )
    decisions: DecisionsConfig = Field(
        default_factory=DecisionsConfig,  # type: ignore[arg-type]
        description="How model probabilities become trades.",
    )
    backtest: BacktestConfig = Field(
        default_factory=BacktestConfig,  # type: ignore[arg-type]
        description="Simulation costs and sizing.",
    )
