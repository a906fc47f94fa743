"""Class probabilities from a model bundle and a feature frame, after checking the columns.

A bundle records the ordered feature names it was trained on; a frame whose columns differ in
name or order is refused with ``ktrdr_worker.features.FeatureMismatchError`` naming the first
difference —
never reordered or padded silently, because a model fed the wrong column predicts nonsense
with full confidence.

Two forward passes compute the same probabilities: torch's, where torch is installed, and a
numpy one in float32 (``ktrdr_worker.models.forward``) that needs no torch, for the backtest
worker's image. They agree within 1e-5 (tests/worker/models/test_inference_engines.py).
:func:`resolve_engine` chooses; :attr:`BundleModel.engine` says which ran.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from ktrdr_core.bundles import BundleError, BundleManifest, BundleSource
from ktrdr_core.errors import KtrdrError
from ktrdr_core.reports import CLASS_NAMES
from ktrdr_worker import features
from ktrdr_worker.models.bundles import open_bundle
from ktrdr_worker.models.datasets import build_samples
from ktrdr_worker.models.forward import NumpyNetwork, predict_probabilities_numpy
from ktrdr_worker.models.spec import ModelSpecError

__all__ = [
    "INFERENCE_CHOICES",
    "BundleModel",
    "InferenceEngine",
    "InferenceError",
    "check_feature_names",
    "first_difference",
    "predict_bundle",
    "resolve_engine",
]

InferenceEngine = Literal["numpy", "torch"]
INFERENCE_CHOICES = ("auto", "numpy", "torch")


class InferenceError(KtrdrError, ValueError):
    """An inference engine that cannot run here; the message says what to use instead."""


def resolve_engine(choice: str = "auto") -> InferenceEngine:
    """``auto``: torch where it is installed, else numpy; ``numpy`` / ``torch``: as asked.

    Asking for torch where it is not installed is an error, never a quiet switch to numpy.
    """
    if choice not in INFERENCE_CHOICES:
        raise InferenceError(
            f"inference engine {choice!r}: expected one of {', '.join(INFERENCE_CHOICES)}"
        )
    has_torch = importlib.util.find_spec("torch") is not None
    if choice == "auto":
        return "torch" if has_torch else "numpy"
    if choice == "torch" and not has_torch:
        raise InferenceError(
            "inference engine 'torch' asked for, but torch is not installed here (the "
            "torch-free backtest worker): use 'auto' or 'numpy'"
        )
    return "torch" if choice == "torch" else "numpy"


def first_difference(expected: Sequence[str], got: Sequence[str]) -> str | None:
    """Where ``got`` first departs from ``expected`` (a different name, a missing feature or an
    extra one), in words; None when they are equal."""
    expected, got = list(expected), [str(name) for name in got]
    if expected == got:
        return None
    for position, (want, have) in enumerate(zip(expected, got, strict=False)):
        if want != have:
            moved = f" (the model's feature {expected.index(have)})" if have in expected else ""
            return f"feature {position}: the model expects {want!r}, the frame has {have!r}{moved}"
    if len(got) < len(expected):
        return (
            f"feature {len(got)}: the model expects {expected[len(got)]!r}, the frame ends "
            f"after {len(got)} features"
        )
    return f"feature {len(expected)}: the frame has an extra column {got[len(expected)]!r}"


def check_feature_names(expected: Sequence[str], got: Sequence[str]) -> None:
    """Raise :class:`~ktrdr_worker.features.FeatureMismatchError` unless ``got`` equals
    ``expected``; the message starts with the first difference, then lists what is missing,
    extra or out of order."""
    first = first_difference(expected, got)
    if first is None:
        return
    try:
        features.check_feature_names(expected, list(got))
    except features.FeatureMismatchError as exc:
        raise features.FeatureMismatchError(
            f"{first} — {exc}", missing=exc.missing, extra=exc.extra, reordered=exc.reordered
        ) from None
    raise AssertionError("feature names differ but features.check_feature_names accepted them")


class BundleModel:
    """A loaded bundle that predicts from feature frames.

    ``manifest`` is the bundle's ``bundle.json``; ``window`` the bars each prediction sees;
    ``engine`` the forward pass that computes (``numpy`` or ``torch``, see
    :func:`resolve_engine`); ``device`` where torch computes (numpy always uses the CPU).
    """

    def __init__(self, source: BundleSource, engine: str = "auto", *, device: str = "cpu"):
        self.engine: InferenceEngine = resolve_engine(engine)
        self.manifest: BundleManifest
        self.manifest, self._spec, state = open_bundle(source)
        where = "bundle bytes" if isinstance(source, bytes) else str(source)
        n_features = len(self.manifest.feature_names)
        try:
            if self.engine == "torch":
                from ktrdr_worker.models.torch_inference import torch_predictor

                self._predict = torch_predictor(self._spec, n_features, state, device)
            else:
                network = NumpyNetwork(self._spec, state, n_features)
                self._predict = lambda samples: predict_probabilities_numpy(network, samples)
        except ModelSpecError as exc:
            raise BundleError(
                f"{where}: weights do not fit the model in bundle.json ({exc})"
            ) from None

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest.feature_names)

    @property
    def window(self) -> int:
        return self._spec.window

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Probabilities of BUY / HOLD / SELL for every row of ``features``.

        ``features``: one row per base-timeframe bar (time order), columns exactly the bundle's
        feature names. Out: a frame on the same index with float64 columns ``BUY, HOLD,
        SELL`` summing to 1; NaN where no prediction is possible (a NaN feature within the
        row's window, or fewer than ``window`` rows before it).
        """
        if not isinstance(features, pd.DataFrame):
            raise TypeError(f"features must be a pandas DataFrame, got {type(features).__name__}")
        check_feature_names(self.manifest.feature_names, list(features.columns))
        values = features.to_numpy(dtype=np.float64)
        # Every bar gets a "label" so that only feature gaps decide which rows are predictable.
        samples, _ = build_samples([(values, np.zeros(len(values)))], self.window)
        out = np.full((len(values), len(CLASS_NAMES)), np.nan)
        if len(samples):
            out[samples.ends] = self._predict(samples)
        return pd.DataFrame(out, index=features.index, columns=list(CLASS_NAMES))


def predict_bundle(
    source: BundleSource, features: pd.DataFrame, engine: str = "auto"
) -> pd.DataFrame:
    """Load a bundle (path or bytes) and predict: see :meth:`BundleModel.predict`."""
    return BundleModel(source, engine).predict(features)
