"""Neuro-fuzzy models: networks, training, model bundles, inference, decisions, explanations.

Import the submodules you need (``ktrdr_worker.models.pipeline`` for training a strategy end
to end, ``ktrdr_worker.models.backtest`` for a model backtest); this package itself imports
nothing heavy, so :func:`validate_ml_dependencies` can run before torch is touched.
"""

from ktrdr_worker.models.dependencies import validate_ml_dependencies

__all__ = ["validate_ml_dependencies"]
