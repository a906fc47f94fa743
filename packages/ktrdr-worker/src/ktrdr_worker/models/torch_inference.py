"""Torch inference of a bundle's network, for workers where torch is installed.

Kept apart so that ``ktrdr_worker.models.inference`` reaches torch through this one module,
and only when torch is importable (see the worker's torch-free import contract).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ktrdr_worker.models.datasets import Samples
from ktrdr_worker.models.networks import network_from_state
from ktrdr_worker.models.spec import NetworkSpec
from ktrdr_worker.models.training import predict_probabilities

__all__ = ["torch_predictor"]


def torch_predictor(
    spec: NetworkSpec, n_features: int, state: Mapping[str, np.ndarray], device: str = "cpu"
) -> Callable[[Samples], np.ndarray]:
    """A function from samples to class probabilities ``(n, 3)``, computed by torch on
    ``device`` (backtests use the CPU; bench/gpu_check.py compares CUDA with numpy)."""
    network = network_from_state(spec, n_features, state).to(device)
    return lambda samples: predict_probabilities(network, samples, device)
