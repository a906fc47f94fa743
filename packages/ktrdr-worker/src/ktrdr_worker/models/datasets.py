"""Samples for the networks: windows of feature rows that never cross a symbol or a split.

The features of every symbol are stacked into one float32 matrix (rows = bars, in time order
within each symbol). A sample is identified by the row it ends on; its input is the ``window``
rows ending there, so a window of 1 is a single row (MLP) and a longer window feeds a GRU/LSTM.
A sample exists only where its label is known, all its window's features are finite, and the
whole window lies inside one symbol's block — several symbols are featurised separately and
never mixed across a boundary.

Chronological splits cut each symbol's labelled rows into train / validation / test parts in
time order, dropping ``embargo`` samples after the train part and after the validation part:
a label looks ahead, so without the gap the last training labels would be computed from the
prices the validation samples are judged on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ktrdr_core.errors import KtrdrError


class DatasetError(KtrdrError, ValueError):
    """Samples that cannot be built or split; the message says which and why."""


@dataclass(frozen=True)
class Samples:
    """Windowed samples over a stacked feature matrix.

    Attributes:
        features: float32 array ``(rows, n_features)``; the same object may back several
            ``Samples`` (train / validation / test share it).
        ends: int64 array ``(n,)`` of the rows each sample ends on (its bar, the decision bar).
        labels: int64 array ``(n,)`` of classes (BUY 0, HOLD 1, SELL 2); -1 where unknown
            (inference-only samples).
        window: rows per sample (≥ 1).
    """

    features: np.ndarray
    ends: np.ndarray
    labels: np.ndarray
    window: int

    def __len__(self) -> int:
        return int(self.ends.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def subset(self, mask_or_index: np.ndarray) -> Samples:
        """The samples selected by a boolean mask or an index array (same feature matrix)."""
        return Samples(
            self.features, self.ends[mask_or_index], self.labels[mask_or_index], self.window
        )

    def windows(self) -> np.ndarray:
        """All inputs as one float32 array ``(n, window, n_features)`` (copies; small sets only)."""
        offsets = np.arange(-self.window + 1, 1, dtype=np.int64)
        return self.features[self.ends[:, None] + offsets[None, :]]

    def fingerprint(self) -> str:
        """sha256 of the features, sample rows and labels (identifies a data set for resuming)."""
        digest = hashlib.sha256()
        for array in (self.features, self.ends, self.labels):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(str(self.window).encode())
        return digest.hexdigest()


def balanced_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in ``truth`` (a constant guess scores 1/classes)."""
    recalls = [float((predicted[truth == c] == c).mean()) for c in np.unique(truth)]
    return float(np.mean(recalls))


def build_samples(
    blocks: Sequence[tuple[np.ndarray, np.ndarray]],
    window: int,
) -> tuple[Samples, list[np.ndarray]]:
    """Stack per-symbol blocks and find every usable sample.

    ``blocks``: one ``(features, labels)`` pair per symbol, in time order: ``features`` a float
    array ``(rows, n_features)`` (NaN allowed), ``labels`` a float array ``(rows,)`` of classes
    with NaN where unknown (labels may be None-free NaN for inference).

    Returns the samples (ends in stacked-row coordinates) and, per block, the positions in the
    returned samples that belong to it, in time order (for per-symbol splits).
    """
    if not blocks:
        raise DatasetError("no data: build_samples needs at least one (features, labels) block")
    widths = {np.asarray(f).shape[1] for f, _ in blocks}
    if len(widths) != 1:
        raise DatasetError(f"every block needs the same number of features, got {sorted(widths)}")
    stacked: list[np.ndarray] = []
    all_ends: list[np.ndarray] = []
    all_labels: list[np.ndarray] = []
    per_block: list[np.ndarray] = []
    offset = 0
    count = 0
    for number, (features, labels) in enumerate(blocks):
        features = np.asarray(features, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.float64)
        if features.ndim != 2 or labels.shape != (features.shape[0],):
            raise DatasetError(
                f"block {number}: features must be (rows, n_features) and labels (rows,), "
                f"got {features.shape} and {labels.shape}"
            )
        rows = features.shape[0]
        finite_row = np.isfinite(features).all(axis=1)
        # A window is usable when all of its `window` rows are finite: a run-length test.
        bad = np.concatenate([[0], np.cumsum(~finite_row)])
        ends_local = np.arange(window - 1, rows, dtype=np.int64)
        window_ok = (bad[ends_local + 1] - bad[ends_local + 1 - window]) == 0
        label_ok = np.isfinite(labels[ends_local])
        keep = ends_local[window_ok & label_ok]
        stacked.append(features)
        all_ends.append(keep + offset)
        all_labels.append(labels[keep].astype(np.int64))
        per_block.append(np.arange(count, count + keep.size, dtype=np.int64))
        offset += rows
        count += keep.size
    matrix = np.concatenate(stacked) if len(stacked) > 1 else stacked[0]
    samples = Samples(
        np.ascontiguousarray(matrix, dtype=np.float32),
        np.concatenate(all_ends),
        np.concatenate(all_labels),
        window,
    )
    return samples, per_block


def split_by_time(
    block_times: Sequence[np.ndarray], fractions: tuple[float, float, float], embargo: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Cut time-ordered samples of one or more symbols into train / validation / test.

    ``block_times``: per symbol, the sample times (int64, e.g. ns since the epoch), increasing.
    ``fractions``: shares of the distinct sample times for each part (summing to 1); the cuts
    are common to every symbol, so no symbol's test period overlaps another's training period.
    ``embargo``: samples dropped at the end of each symbol's train and validation parts, whose
    labels would otherwise look into the next part.

    Returns, per part, one index array per block (positions into that block's samples).
    Raises :class:`DatasetError` when a part would be empty, saying how much data was there.
    """
    train_f, val_f, test_f = fractions
    if min(fractions) <= 0 or abs(train_f + val_f + test_f - 1.0) > 1e-9:
        raise DatasetError(f"split fractions must be > 0 and sum to 1, got {fractions}")
    if embargo < 0:
        raise DatasetError(f"embargo must be ≥ 0 bars, got {embargo}")
    times = np.unique(np.concatenate([np.asarray(t, dtype=np.int64) for t in block_times]))
    n = times.size
    n_train, n_val = round(n * train_f), round(n * val_f)
    if n_train < 1 or n_val < 1 or n - n_train - n_val < 1:
        raise DatasetError(
            f"{n} labelled bars cannot be split {train_f:g}/{val_f:g}/{test_f:g}: use more data"
        )
    first_val, first_test = times[n_train], times[n_train + n_val]
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for block in block_times:
        block = np.asarray(block, dtype=np.int64)
        positions = np.arange(block.size)
        train = positions[block < first_val]
        val = positions[(block >= first_val) & (block < first_test)]
        test = positions[block >= first_test]
        parts[0].append(train[: max(train.size - embargo, 0)])
        parts[1].append(val[: max(val.size - embargo, 0)])
        parts[2].append(test)
    for name, part in zip(("train", "validation", "test"), parts, strict=True):
        if sum(p.size for p in part) == 0:
            raise DatasetError(
                f"the {name} part is empty: {n} labelled bars split "
                f"{train_f:g}/{val_f:g}/{test_f:g} with an embargo of {embargo} bars leave "
                f"nothing for it; use more data or a shorter embargo"
            )
    return parts
