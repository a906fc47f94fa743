"""Class probabilities from a model bundle and a feature frame, after checking the columns.

A bundle records the ordered feature names it was trained on; a frame whose columns differ in
name or order is refused with ``ktrdr_worker.features.FeatureMismatchError`` naming the first
difference —
never reordered or padded silently, because a model fed the wrong column predicts nonsense
with full confidence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ktrdr_core.bundles import BundleManifest, BundleSource
from ktrdr_core.reports import CLASS_NAMES
from ktrdr_worker import features
from ktrdr_worker.models.bundles import load_network
from ktrdr_worker.models.datasets import build_samples
from ktrdr_worker.models.training import predict_probabilities

__all__ = ["BundleModel", "check_feature_names", "first_difference", "predict_bundle"]


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
    """A loaded bundle that predicts from feature frames (torch stays inside).

    ``manifest`` is the bundle's ``bundle.json``; ``window`` the bars each prediction sees.
    """

    def __init__(self, source: BundleSource):
        self.manifest: BundleManifest
        self.manifest, self._spec, self._network = load_network(source)

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
            out[samples.ends] = predict_probabilities(self._network, samples)
        return pd.DataFrame(out, index=features.index, columns=list(CLASS_NAMES))


def predict_bundle(source: BundleSource, features: pd.DataFrame) -> pd.DataFrame:
    """Load a bundle (path or bytes) and predict: see :meth:`BundleModel.predict`."""
    return BundleModel(source).predict(features)
