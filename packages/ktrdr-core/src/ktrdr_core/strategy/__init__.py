"""Strategy files: schema, safe loading with every error at once, feature names, hash.

Public API::

    load_strategy(path_or_text, *, filename=None) -> Strategy        # raises StrategyError
    validate_strategy(path_or_text_or_mapping, *, filename=None) -> list[StrategyProblem]
    Strategy.feature_names() -> list[str]    # ordered; rule in ktrdr_core.strategy.features
    Strategy.features() -> list[FeatureSpec] # the same, with timeframe/indicator/output/...
    Strategy.strategy_hash() -> str          # sha256 of the canonical JSON form
    strategy_json_schema() -> dict           # JSON Schema for editors

Example files ship in ``ktrdr_core.examples`` (``list_examples``, ``read_example``).
"""

from ktrdr_core.strategy.canonical import canonical_json
from ktrdr_core.strategy.features import FeatureSpec
from ktrdr_core.strategy.issues import StrategyError, StrategyProblem
from ktrdr_core.strategy.json_schema import strategy_json_schema
from ktrdr_core.strategy.loading import StrategySource, load_strategy, validate_strategy
from ktrdr_core.strategy.schema import Strategy
from ktrdr_core.strategy.sections import (
    BacktestConfig,
    DataConfig,
    DecisionsConfig,
    EarlyStopping,
    ForwardReturnLabels,
    FuzzySet,
    IndicatorConfig,
    InputSpec,
    LabelsConfig,
    Membership,
    ModelConfig,
    Split,
    TrainingConfig,
    TripleBarrierLabels,
    ZigZagLabels,
)
from ktrdr_core.strategy.yaml_source import MAX_FILE_BYTES

__all__ = [
    "MAX_FILE_BYTES",
    "BacktestConfig",
    "DataConfig",
    "DecisionsConfig",
    "EarlyStopping",
    "FeatureSpec",
    "ForwardReturnLabels",
    "FuzzySet",
    "IndicatorConfig",
    "InputSpec",
    "LabelsConfig",
    "Membership",
    "ModelConfig",
    "Split",
    "Strategy",
    "StrategyError",
    "StrategyProblem",
    "StrategySource",
    "TrainingConfig",
    "TripleBarrierLabels",
    "ZigZagLabels",
    "canonical_json",
    "load_strategy",
    "strategy_json_schema",
    "validate_strategy",
]
