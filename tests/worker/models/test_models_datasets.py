"""Samples and splits: windows stay inside one symbol, splits are chronological with an embargo."""

from __future__ import annotations

import numpy as np
import pytest

from ktrdr_worker.models.datasets import DatasetError, build_samples, split_by_time


def test_windows_never_cross_a_symbol_boundary_or_a_nan_row():
    first = np.arange(20, dtype=float).reshape(10, 2)
    first[4, 1] = np.nan  # a gap inside the first symbol
    second = 100 + np.arange(12, dtype=float).reshape(6, 2)
    labels_1 = np.r_[np.zeros(9), np.nan]  # the last bar has no label yet
    labels_2 = np.full(6, 2.0)
    samples, per_block = build_samples([(first, labels_1), (second, labels_2)], window=3)
    # First symbol: windows end at 2, 3 (before the gap) and 7, 8 (after it); row 9 is unlabelled.
    # Second symbol (rows 10..15): windows end at 12..15, never reaching back into rows 8, 9.
    assert samples.ends.tolist() == [2, 3, 7, 8, 12, 13, 14, 15]
    assert [p.tolist() for p in per_block] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    windows = samples.windows()
    assert windows.shape == (8, 3, 2)
    assert windows[4, 0].tolist() == [100.0, 101.0]  # the first full window of symbol two
    assert samples.labels.tolist() == [0, 0, 0, 0, 2, 2, 2, 2]


def test_split_is_chronological_with_an_embargo_after_train_and_validation():
    times = np.arange(100, dtype=np.int64)
    (train,), (val,), (test,) = split_by_time([times], (0.6, 0.2, 0.2), embargo=5)
    assert train.tolist() == list(range(0, 55))  # 60 bars, the last 5 embargoed
    assert val.tolist() == list(range(60, 75))
    assert test.tolist() == list(range(80, 100))


def test_split_cuts_every_symbol_at_the_same_times():
    early = np.arange(0, 100, dtype=np.int64)  # one symbol's history starts earlier
    late = np.arange(50, 100, dtype=np.int64)
    train, val, test = split_by_time([early, late], (0.5, 0.25, 0.25), embargo=0)
    # Cuts fall on the union of times (0..99): validation from 50, test from 75, for both.
    assert early[train[0]].tolist() == list(range(50))
    assert late[train[1]].tolist() == []
    assert late[val[1]].tolist() == list(range(50, 75))
    assert early[test[0]].tolist() == late[test[1]].tolist() == list(range(75, 100))


def test_too_little_data_for_the_split_says_so():
    with pytest.raises(DatasetError, match="validation part is empty"):
        split_by_time([np.arange(10, dtype=np.int64)], (0.8, 0.1, 0.1), embargo=3)
