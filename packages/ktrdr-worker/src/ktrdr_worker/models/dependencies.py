"""Fail fast when the machine-learning stack is missing: the first thing a worker runs."""

from __future__ import annotations

import importlib

from ktrdr_worker.runtime import TorchRuntime, TorchUnavailableError, torch_runtime

WORKER_IMAGES = ("ktrdr-worker-cpu", "ktrdr-worker-gpu")


def validate_ml_dependencies() -> TorchRuntime:
    """Check that torch and scikit-learn import and work; return what torch offers.

    Raises :class:`~ktrdr_worker.runtime.TorchUnavailableError` saying that the wrong image was
    probably deployed and naming the worker images to use, when torch (or scikit-learn) is
    missing, fails to import, or cannot run a tensor operation.
    """
    advice = (
        "the wrong image was probably deployed: run a worker from the "
        f"{' or '.join(WORKER_IMAGES)} image (or install ktrdr-worker with its dependencies)"
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
