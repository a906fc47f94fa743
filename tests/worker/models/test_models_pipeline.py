"""Training a strategy end to end: it learns what is there, explains it, and is reproducible."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from ktrdr_core.bundles import read_manifest
from ktrdr_core.reports import load_training_result
from ktrdr_core.strategy.loading import load_strategy
from ktrdr_worker.models.pipeline import StrategyTrainingError, train_strategy
from ktrdr_worker.models.training import TrainingCancelled
from tests.support.training_data import PLANTED_STRATEGY, example_for, planted_market


def test_model_learns_the_planted_signal_and_explains_it(planted_outcome):
    result = load_training_result(planted_outcome.result)
    test = result.test_metrics
    assert test.balanced_accuracy >= test.baseline.balanced_accuracy + 0.15
    top = result.explanations[0]
    assert top.feature == "1h_rsi_zone_oversold"
    assert top.text == "`1h_rsi_zone_oversold` high → BUY"
    # The noise memberships matter far less than the planted one.
    assert all(row.importance < top.importance / 5 for row in result.explanations[1:])
    print("\n" + result.explanation_table())


def test_training_result_records_how_the_model_was_made(planted_outcome, planted_strategy):
    result = load_training_result(planted_outcome.result)
    assert result.device == "cpu" and result.seed == 3
    assert result.feature_names == planted_strategy.feature_names()
    assert len(result.history) == result.epochs_run >= result.best_epoch >= 1
    splits = result.splits
    assert splits["train"].end < splits["validation"].start
    assert splits["validation"].end < splits["test"].start
    assert sum(splits["test"].class_counts.values()) == result.test_metrics.samples
    assert {"features_s", "training_s", "explanation_s", "total_s"} <= result.timings.keys()
    assert result.versions["torch"].startswith("2.")
    assert result.labels["reports"]["SYN"]["method"] == "forward_return"
    manifest = read_manifest(planted_outcome.bundle)
    assert manifest.history[-1].epoch == result.epochs_run
    assert manifest.strategy.hash == planted_strategy.strategy_hash()
    assert manifest.data[0].symbol == "SYN" and len(manifest.data[0].checksum) == 64


def test_training_twice_gives_the_same_weights(planted_outcome, planted_strategy, planted_data):
    again = train_strategy(planted_strategy, {"SYN": planted_data}, threads=1, explain_repeats=1)
    first, second = read_manifest(planted_outcome.bundle), read_manifest(again.bundle)
    assert first.weights.sha256 == second.weights.sha256
    assert [h.val_loss for h in first.history] == [h.val_loss for h in second.history]


def test_cancelled_strategy_training_resumes_to_the_same_model(
    tmp_path, planted_outcome, planted_strategy, planted_data
):
    polls = 0

    def cancel() -> bool:
        nonlocal polls
        polls += 1
        return polls == 30

    epochs = []
    with pytest.raises(TrainingCancelled) as stopped:
        train_strategy(
            planted_strategy,
            {"SYN": planted_data},
            threads=1,
            should_cancel=cancel,
            checkpoint_dir=tmp_path,
            on_epoch=epochs.append,
        )
    assert epochs and all(isinstance(e, dict) and "val_loss" in e for e in epochs)
    resumed = train_strategy(
        planted_strategy,
        {"SYN": planted_data},
        threads=1,
        resume_from=stopped.value.checkpoint,
        explain_repeats=1,
    )
    assert read_manifest(resumed.bundle).weights.sha256 == (
        read_manifest(planted_outcome.bundle).weights.sha256
    )
    assert load_training_result(resumed.result).resumed_from_epoch == stopped.value.epoch


def test_data_must_match_the_strategys_symbols(planted_strategy, planted_data):
    with pytest.raises(StrategyTrainingError, match=r"missing \['SYN'\]"):
        train_strategy(planted_strategy, {"OTHER": planted_data})


def test_example_strategy_trains_on_real_daily_data(goog, tmp_path):
    strategy = example_for("rsi_zones", "GOOG", training={"epochs": 5})
    outcome = train_strategy(
        strategy, {"GOOG": goog}, threads=1, bundle_path=tmp_path / "goog.zip", explain_repeats=1
    )
    assert outcome.bundle_path.read_bytes() == outcome.bundle
    result = load_training_result(outcome.result)
    assert result.epochs_run == 5
    assert result.test_metrics.samples > 100
    assert result.test_metrics.baseline.class_ == "HOLD"
    assert [row.rank for row in result.explanations] == list(range(1, 7))


def test_multi_timeframe_gru_example_trains_on_real_hourly_data(eurusd):
    strategy = example_for(
        "macd_bollinger_mtf",
        "EURUSD",
        training={"epochs": 2},
        model={"hidden_layers": [16], "window": 8},
    )
    outcome = train_strategy(strategy, {"EURUSD": eurusd}, threads=1, explain_repeats=1)
    result = load_training_result(outcome.result)
    assert result.model["type"] == "gru" and result.epochs_run == 2
    assert result.feature_names[:2] == ["1h_macd_momentum_bearish", "1h_macd_momentum_neutral"]
    assert any(name.startswith("4h_") for name in result.feature_names)
    # Data start and end bound the samples: nothing before the first complete 4h window.
    manifest = read_manifest(outcome.bundle)
    assert manifest.warmup_bars >= 33 + 7  # MACD(12, 26, 9) warm-up plus the window
    assert pd.Timestamp(manifest.splits["train"].start) > eurusd.index[manifest.warmup_bars - 1]


def test_several_symbols_train_one_model_on_a_common_timeline():
    data = yaml.safe_load(PLANTED_STRATEGY)
    data["data"]["symbols"] = ["AAA", "BBB"]
    data["training"]["epochs"] = 2
    strategy = load_strategy(data)
    early, late = planted_market(1200, seed=1), planted_market(900, seed=2)
    late.index = late.index + pd.Timedelta(hours=300)  # BBB starts later
    outcome = train_strategy(strategy, {"AAA": early, "BBB": late}, threads=1, explain_repeats=1)
    manifest = read_manifest(outcome.bundle)
    assert [record.symbol for record in manifest.data] == ["AAA", "BBB"]
    assert manifest.data[1].checksum != manifest.data[0].checksum
    for part in ("train", "validation", "test"):
        assert sum(r.samples[part] for r in manifest.data) == manifest.splits[part].samples
    # Both symbols are tested on the same calendar period.
    assert manifest.data[0].samples["test"] > 0 and manifest.data[1].samples["test"] > 0
    assert manifest.splits["test"].start > manifest.splits["validation"].end
