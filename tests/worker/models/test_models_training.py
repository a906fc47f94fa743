"""The training loop: reproducible, resumable, cancellable, and it keeps the best epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ktrdr_worker.models.spec import ModelSpecError, NetworkSpec
from ktrdr_worker.models.training import (
    TrainingCancelled,
    TrainingConfig,
    TrainingError,
    checkpoint_path,
    class_weights,
    predict_probabilities,
    train_network,
)
from tests.support.training_data import noisy_samples

GRU = NetworkSpec(type="gru", hidden_layers=(8,), window=4, dropout=0.2)
MLP = NetworkSpec(type="mlp", hidden_layers=(16, 8), dropout=0.2)
CONFIG = TrainingConfig(
    epochs=6, batch_size=64, seed=11, device="cpu", threads=1, early_stopping_patience=0
)


def _weights(trained) -> dict[str, torch.Tensor]:
    return trained.network.state_dict()


def _assert_identical(a, b) -> None:
    sa, sb = _weights(a), _weights(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), f"{key} differs"


def test_same_seed_same_inputs_give_bit_identical_weights():
    train, val = noisy_samples(window=4)
    first = train_network(train, val, GRU, CONFIG)
    second = train_network(train, val, GRU, CONFIG)
    _assert_identical(first, second)
    assert [h["val_loss"] for h in first.history] == [h["val_loss"] for h in second.history]
    # And the seed matters: another seed gives other weights.
    third = train_network(train, val, GRU, CONFIG.replace(seed=12))
    assert not torch.equal(_weights(first)["head.weight"], _weights(third)["head.weight"])


def test_training_leaves_the_callers_random_state_alone():
    train, val = noisy_samples()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    train_network(train, val, MLP, CONFIG.replace(epochs=1))
    assert torch.equal(torch.rand(3), expected)
    assert not torch.are_deterministic_algorithms_enabled()


def test_resume_after_cancel_ends_exactly_like_an_uninterrupted_run(tmp_path):
    train, val = noisy_samples(window=4)
    config = CONFIG.replace(lr_schedule="plateau")
    uninterrupted = train_network(train, val, GRU, config)

    polls = 0

    def cancel_mid_epoch() -> bool:
        nonlocal polls
        polls += 1
        return polls == 25  # epoch 3 has begun; batches are 11 per epoch

    with pytest.raises(TrainingCancelled) as stopped:
        train_network(
            train, val, GRU, config, should_cancel=cancel_mid_epoch, checkpoint_dir=tmp_path
        )
    assert stopped.value.checkpoint == checkpoint_path(tmp_path)
    assert stopped.value.epoch == 2

    reports = []
    resumed = train_network(
        train, val, GRU, config, resume_from=stopped.value.checkpoint, on_epoch=reports.append
    )
    _assert_identical(uninterrupted, resumed)
    assert resumed.history == [
        {**h, "elapsed_s": r["elapsed_s"], "samples_per_s": r["samples_per_s"]}
        for h, r in zip(uninterrupted.history, resumed.history, strict=True)
    ]
    assert [r.epoch for r in reports] == [3, 4, 5, 6]  # only the epochs run after resuming
    assert resumed.resumed_from_epoch == 2


def test_periodic_checkpoint_lets_a_crashed_run_finish_with_the_same_weights(tmp_path):
    train, val = noisy_samples()
    full = train_network(train, val, MLP, CONFIG)

    def crash_in_epoch_5(report) -> None:
        if report.epoch == 5:
            raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        train_network(
            train,
            val,
            MLP,
            CONFIG.replace(checkpoint_interval=2),
            checkpoint_dir=tmp_path,
            on_epoch=crash_in_epoch_5,
        )
    resumed = train_network(train, val, MLP, CONFIG, resume_from=checkpoint_path(tmp_path))
    assert resumed.resumed_from_epoch == 4
    _assert_identical(full, resumed)


def test_resume_refuses_other_data_or_settings(tmp_path):
    train, val = noisy_samples()
    config = CONFIG.replace(checkpoint_interval=1)
    train_network(train, val, MLP, config, checkpoint_dir=tmp_path)
    other_train, other_val = noisy_samples(seed=1)
    with pytest.raises(TrainingError, match="different training data"):
        train_network(other_train, other_val, MLP, config, resume_from=checkpoint_path(tmp_path))
    with pytest.raises(TrainingError, match=r"training\.learning_rate = 0\.001, now 0\.01"):
        train_network(
            train,
            val,
            MLP,
            config.replace(learning_rate=0.01),
            resume_from=checkpoint_path(tmp_path),
        )
    with pytest.raises(TrainingError, match="model"):
        train_network(
            train,
            val,
            NetworkSpec(hidden_layers=(4,)),
            config,
            resume_from=checkpoint_path(tmp_path),
        )


def test_early_stopping_keeps_the_best_epochs_weights():
    train, val = noisy_samples()
    # A high learning rate overfits quickly, so validation loss stops improving.
    config = CONFIG.replace(epochs=60, learning_rate=0.05, early_stopping_patience=3, min_delta=0.0)
    trained = train_network(train, val, NetworkSpec(hidden_layers=(64, 64), dropout=0.0), config)
    assert trained.stopped_early
    assert len(trained.history) == trained.best_epoch + 3
    losses = [h["val_loss"] for h in trained.history]
    assert trained.best_epoch == int(np.argmin(losses)) + 1
    # The returned network is the best epoch's: its validation loss is the minimum seen.
    weights = torch.as_tensor(trained.class_weights, dtype=torch.float32)
    logits = torch.log(torch.as_tensor(predict_probabilities(trained.network, val)))
    loss = torch.nn.functional.nll_loss(logits.float(), torch.as_tensor(val.labels), weight=weights)
    assert float(loss) == pytest.approx(min(losses), rel=1e-4)


def test_every_epoch_reports_progress_and_learning_rate_follows_the_schedule():
    train, val = noisy_samples()
    reports = []
    train_network(train, val, MLP, CONFIG, on_epoch=reports.append)
    assert [r.epoch for r in reports] == list(range(1, 7))
    rates = [r.learning_rate for r in reports]
    assert rates[0] == CONFIG.learning_rate and rates == sorted(rates, reverse=True)
    assert all(r.val_loss > 0 and 0 <= r.val_balanced_accuracy <= 1 for r in reports)


def test_class_weights_balance_the_classes_and_a_missing_class_is_an_error():
    weights = class_weights(np.array([0] * 10 + [1] * 80 + [2] * 10))
    assert weights[0] == weights[2] == pytest.approx(8 * weights[1])
    with pytest.raises(TrainingError, match="no SELL sample"):
        class_weights(np.array([0, 1, 1, 0]))


def test_impossible_settings_name_the_field():
    with pytest.raises(TrainingError, match=r"training\.batch_size"):
        TrainingConfig(batch_size=0)
    with pytest.raises(TrainingError, match=r"training\.lr_schedule"):
        TrainingConfig(lr_schedule="warm")
    with pytest.raises(ModelSpecError, match=r"model\.window"):
        NetworkSpec(type="mlp", window=5)
    with pytest.raises(ModelSpecError, match=r"model\.cells"):
        NetworkSpec.from_dict({"type": "gru", "cells": 3})
