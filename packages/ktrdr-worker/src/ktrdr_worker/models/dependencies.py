"""Fail fast when a worker's computing stack is missing: the first thing a worker runs.

What is needed depends on the role:

- a **training** worker needs torch and scikit-learn (the ``ktrdr-worker-gpu`` or
  ``ktrdr-worker-cpu-training`` image); with ``require_gpu`` (the GPU image sets
  ``KTRDR_WORKER_REQUIRE_GPU=1``) it also needs a visible CUDA device;
- a **backtest** worker needs numpy, pandas, TA-Lib and safetensors, and no torch: it runs
  the numpy forward pass where torch is absent (the ``ktrdr-worker-cpu`` image) and torch's
  where torch is installed.
"""

from __future__ import annotations

import importlib
import importlib.util

from ktrdr_core.protocol import OperationKind
from ktrdr_worker.runtime import NO_TORCH, TorchRuntime, TorchUnavailableError, torch_runtime

TRAINING_IMAGES = ("ktrdr-worker-gpu", "ktrdr-worker-cpu-training")
BACKTEST_IMAGE = "ktrdr-worker-cpu"
# Imported by every backtest (indicators, frames, weights); torch is optional there.
BACKTEST_MODULES = ("numpy", "pandas", "talib", "safetensors.numpy")


def validate_ml_dependencies(
    kind: OperationKind | str = OperationKind.TRAINING, *, require_gpu: bool = False
) -> TorchRuntime:
    """Check that what a worker of ``kind`` needs imports and works; return what it runs on.

    Raises :class:`~ktrdr_worker.runtime.TorchUnavailableError` naming the image to use when a
    package is missing, fails to import, or cannot compute; and, with ``require_gpu``, when a
    training worker sees no CUDA device (naming the NVIDIA Container Toolkit and the override).
    """
    if OperationKind(kind) == OperationKind.TRAINING:
        runtime = _training_runtime()
        if require_gpu and not runtime.cuda_available:
            raise TorchUnavailableError(
                f"no CUDA device is visible to this worker (torch {runtime.version}, CUDA build "
                f"{runtime.cuda_build or 'none'}), and KTRDR_WORKER_REQUIRE_GPU is set (the "
                "ktrdr-worker-gpu image sets it): refusing to train slowly on the CPU without "
                "telling anyone. Give the container the GPU: install the NVIDIA Container "
                "Toolkit on the host and run with `--gpus all` (compose: a device reservation "
                "with driver nvidia). To train on the CPU on purpose, set "
                "KTRDR_WORKER_REQUIRE_GPU=0, or run the ktrdr-worker-cpu-training image."
            )
        return runtime
    return _backtest_runtime()


def _training_runtime() -> TorchRuntime:
    advice = (
        "a training worker needs torch and scikit-learn: run it from the "
        f"{' or '.join(TRAINING_IMAGES)} image (the {BACKTEST_IMAGE} image has no torch and "
        "runs backtest workers only), or install ktrdr-worker with its dependencies"
    )
    try:
        runtime = torch_runtime()
    except TorchUnavailableError as exc:
        raise TorchUnavailableError(f"{exc} — {advice}") from exc
    try:
        import torch

        if float(torch.ones(2).sum()) != 2.0:  # a build that imports but computes nonsense
            raise RuntimeError("torch.ones(2).sum() != 2")
    except Exception as exc:  # any failure here means this torch cannot train
        raise TorchUnavailableError(
            f"torch {runtime.version} imports but cannot compute ({type(exc).__name__}: {exc}) "
            f"— {advice}"
        ) from exc
    try:
        importlib.import_module("sklearn.metrics")
    except Exception as exc:  # missing or ABI-broken scikit-learn
        raise TorchUnavailableError(
            f"scikit-learn cannot be imported ({type(exc).__name__}: {exc}) — {advice}"
        ) from exc
    return runtime


def _backtest_runtime() -> TorchRuntime:
    for module in BACKTEST_MODULES:
        try:
            importlib.import_module(module)
        except Exception as exc:  # missing or ABI-broken: no backtest can run
            raise TorchUnavailableError(
                f"{module} cannot be imported ({type(exc).__name__}: {exc}) — a backtest worker "
                f"needs it: run the {BACKTEST_IMAGE} image, or install ktrdr-worker"
            ) from exc
    if importlib.util.find_spec("torch") is None:
        return NO_TORCH
    # Installed: backtests use torch's forward pass, so it must work (a broken torch is an
    # error, never a quiet switch to numpy).
    runtime = torch_runtime()
    return TorchRuntime(
        version=runtime.version,
        cuda_build=runtime.cuda_build,
        cuda_available=False,  # backtests compute on the CPU
        mps_available=False,
        device_name="CPU",
    )
