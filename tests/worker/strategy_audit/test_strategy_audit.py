"""The strategy audit's checks catch what they exist to catch: a feature that reads the next
close, a higher-timeframe bar shown from its open, labels that reach past the embargo, an EMA
whose warm-up is cut short, a Sharpe ratio no better than shuffled positions; and they pass on
a clean strategy with a model trained on the planted market."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from ktrdr_core.examples import read_example
from ktrdr_core.simulator import RSI_REVERSION
from ktrdr_core.strategy.loading import load_strategy
from ktrdr_core.strategy_audit import CheckStatus
from ktrdr_worker.features import compute_features
from ktrdr_worker.labels import make_labels
from ktrdr_worker.models.pipeline import train_strategy
from ktrdr_worker.strategy_audit import (
    audit_strategy,
    check_leakage,
    check_lookahead,
    check_significance,
    check_warmup,
    cut_points,
    model_positions,
)
from tests.support.bars import random_walk
from tests.support.training_data import simulated_market


def example(name: str, **data) -> object:
    config = yaml.safe_load(read_example(name))
    config["data"].update({"symbols": ["SYNTH"], "start": None, "end": None, **data})
    config["training"].update(device="cpu")
    if config["data"]["timeframe"] == "1h":  # 5 % swings are rare on hourly bars
        config["labels"]["zigzag"]["threshold"] = 0.006
    return config


@pytest.fixture(scope="module")
def planted() -> pd.DataFrame:
    return simulated_market(planted=RSI_REVERSION)


@pytest.fixture(scope="module")
def rsi_zones():
    return load_strategy(example("rsi_zones"))


@pytest.fixture(scope="module")
def planted_model(planted, rsi_zones) -> bytes:
    """The rsi_zones example trained on the planted market, as the quickstart trains it."""
    return train_strategy(rsi_zones, {"SYNTH": planted}, explain_repeats=1).bundle


# --------------------------------------------------------------------------- lookahead


def test_a_close_shifted_by_one_bar_is_named_with_its_column_and_bar(planted, rsi_zones):
    def leaky(strategy, data):
        frame = compute_features(strategy, data)
        frame["1d_roc_10_raw"] = data["close"].shift(-1)  # tomorrow's close, today
        return frame

    check = check_lookahead(rsi_zones, planted, cuts=20, features=leaky)
    assert check.status == CheckStatus.FAIL and check.hard
    offence = check.evidence["first_offence"]
    first_cut = planted.index[cut_points(len(planted), 14, 20)[0]]
    # On data cut at a bar, that bar has no next close yet: NaN there, a price on all the data.
    assert offence["column"] == "1d_roc_10_raw" and offence["what"] == "feature"
    assert offence["bar"] == offence["cut"] == first_cut.isoformat()
    assert offence["truncated_value"] is None
    assert offence["full_value"] == pytest.approx(planted["close"].shift(-1).loc[first_cut])
    assert check.evidence["offending_columns"] == ["1d_roc_10_raw"]
    assert check.evidence["offending_cuts"] == 20
    assert "1d_roc_10_raw" in check.summary and first_cut.isoformat() in check.summary


def test_a_higher_timeframe_bar_shown_from_its_open_is_named(rsi_zones):
    hourly = simulated_market(24 * 120, "1h", seed=3)
    strategy = load_strategy(example("rsi_zones", timeframe="1h"))

    def from_open(strategy, data):
        frame = compute_features(strategy, data)
        daily = data["close"].resample("1D").last()  # the day's close…
        frame["1d_close"] = daily.reindex(data.index, method="ffill")  # …from its first hour
        return frame

    check = check_lookahead(strategy, hourly, cuts=30, features=from_open)
    assert check.status == CheckStatus.FAIL
    offence = check.evidence["first_offence"]
    cuts = [hourly.index[c] for c in cut_points(len(hourly), 14, 30)]
    # Cut at the day's last hour, the day is complete: the first offending cut is mid-day,
    # and the first bar that differs is that day's first hour.
    first = next(cut for cut in cuts if cut.hour != 23)
    assert offence["column"] == "1d_close" and offence["cut"] == first.isoformat()
    assert offence["bar"] == first.normalize().isoformat()
    assert offence["truncated_value"] == pytest.approx(hourly["close"].loc[first])
    assert offence["full_value"] == pytest.approx(
        hourly["close"].loc[first.normalize() + pd.Timedelta(hours=23)]
    )
    # ktrdr's own alignment (a 4h set on 1h bars, through compute_features) is clean.
    mtf = load_strategy(
        {
            **example("rsi_zones", timeframe="1h", extra_timeframes=["4h"]),
            "inputs": [{"fuzzy_set": "rsi_zone", "timeframes": ["1h", "4h"]}],
        }
    )
    assert check_lookahead(mtf, hourly, cuts=30).status == CheckStatus.PASS


def test_clean_features_labels_and_decisions_pass(planted, rsi_zones, planted_model):
    report = audit_strategy(
        rsi_zones, planted, symbol="SYNTH", bundle=planted_model, checks=["lookahead"]
    )
    check = report.check("lookahead")
    assert check.status == CheckStatus.PASS, check.summary
    assert check.evidence["cuts"] == 50 and check.evidence["decisions_checked"]
    assert check.evidence["label_mismatches"] == check.evidence["decision_mismatches"] == 0
    assert report.passed
    assert [c.status for c in report.checks[1:]] == [CheckStatus.SKIPPED] * 4


def test_labels_that_change_after_they_settle_fail(planted, rsi_zones):
    def peeking(strategy, base):
        result = make_labels(strategy.labels, base)
        # A label settled from the last bar of whatever data it was given.
        result.labels.iloc[len(base) // 2] = float(base["close"].iloc[-1] > base["close"].iloc[0])
        return result

    check = check_lookahead(rsi_zones, planted, cuts=10, labels=peeking)
    assert check.status == CheckStatus.FAIL
    assert check.evidence["first_offence"]["what"] == "label"


# --------------------------------------------------------------------------- warm-up


def ema_strategy(period: int) -> object:
    config = example("rsi_zones")
    config["indicators"] = {"ema_fast": {"type": "ema", "params": {"period": period}}}
    config["fuzzy_sets"] = {}
    config["inputs"] = [{"raw": "ema_fast"}]
    return load_strategy(config)


def test_an_ema_whose_warm_up_is_cut_short_is_caught(planted):
    check = check_warmup(ema_strategy(30), planted)
    assert check.status == CheckStatus.WARN and not check.hard
    entry = check.evidence["indicators"]["1d ema_fast"]
    # The EMA is NaN for 29 bars, but its start still shows for many more.
    assert check.evidence["dropped_bars"] == 29
    assert entry["needs_bars"] > 3 * 29
    assert check.evidence["short"] == ["1d ema_fast"]
    assert "1d ema_fast needs" in check.summary and "drops 29" in check.summary


def test_a_simple_average_needs_no_more_than_it_drops(planted):
    config = example("rsi_zones")
    config["indicators"] = {"sma_30": {"type": "sma", "params": {"period": 30}}}
    config["fuzzy_sets"] = {}
    config["inputs"] = [{"raw": "sma_30"}]
    check = check_warmup(load_strategy(config), planted)
    assert check.status == CheckStatus.PASS, check.summary
    assert check.evidence["indicators"]["1d sma_30"]["needs_bars"] <= 29


# --------------------------------------------------------------------------- leakage


def test_labels_reaching_past_the_embargo_are_leakage(planted, rsi_zones):
    clean = check_leakage(rsi_zones, planted)
    assert clean.status == CheckStatus.PASS
    assert clean.evidence["measured_horizon_bars"] <= rsi_zones.embargo_bars == 20

    def far_sighted(strategy, base):  # labels from 30 bars ahead, though 20 are declared
        future = base["close"].shift(-30)
        labels = (future > base["close"]).astype(float).where(future.notna())
        result = make_labels(strategy.labels, base)
        return type(result)(labels=labels, report=result.report)

    leaky = check_leakage(rsi_zones, planted, labels=far_sighted)
    assert leaky.status == CheckStatus.FAIL and leaky.hard
    assert leaky.evidence["measured_horizon_bars"] == 30
    assert "data.embargo_bars is 20" in leaky.summary and "30 bars ahead" in leaky.summary


def test_parts_closer_than_the_horizon_are_leakage(planted, rsi_zones):
    index = planted.index
    splits = {
        "train": {"start": index[100].isoformat(), "end": index[2000].isoformat()},
        "validation": {"start": index[2005].isoformat(), "end": index[3000].isoformat()},
        "test": {"start": index[3021].isoformat(), "end": index[-1].isoformat()},
    }
    check = check_leakage(rsi_zones, planted, splits=splits)
    assert check.status == CheckStatus.FAIL
    assert check.evidence["bars_between_parts"] == {"train→validation": 4, "validation→test": 20}
    assert "only 4 bars lie between the model's train part" in check.summary


# --------------------------------------------------------------------------- significance


def test_the_planted_market_is_significant_and_a_random_walk_is_not(
    planted, rsi_zones, planted_model
):
    found = audit_strategy(
        rsi_zones, planted, symbol="SYNTH", bundle=planted_model, checks=["significance"]
    ).check("significance")
    assert found.status == CheckStatus.PASS, found.summary
    assert found.evidence["p_value"] < 0.05 and found.evidence["trades"] >= 10
    assert found.evidence["permutations"] == 1000 and found.evidence["block_bars"] == 20

    # The same model on seeded random walks, all of each: nothing to find there. Under no
    # effect a p-value is uniform, so one walk in five lands below 0.2 by chance; ten walks
    # must look like chance: most above 0.2, none below 0.05.
    p_values = []
    for seed in range(1, 11):
        walk = random_walk(4000, seed=seed, freq="1D")
        walk.index = walk.index.as_unit("us")
        positions = model_positions(planted_model, rsi_zones, walk, start=walk.index[200])
        entries = int(((positions != 0) & (positions.shift(fill_value=0) != positions)).sum())
        chance = check_significance(
            walk["close"].loc[positions.index],
            positions,
            trades=entries,
            cost=0.0015,
            periods_per_year=365,
            block_bars=20,
            seed=seed,
        )
        assert chance.evidence["trades"] >= 10, chance.summary
        p_values.append(chance.evidence["p_value"])
    assert sorted(p_values)[5] > 0.2 and min(p_values) > 0.05, p_values
    assert "no better than the same positions in a random order" in chance.summary
    # Seeded: the same answer twice.
    again = check_significance(
        walk["close"].loc[positions.index],
        positions,
        trades=entries,
        cost=0.0015,
        periods_per_year=365,
        block_bars=20,
        seed=10,
    )
    assert again.evidence == chance.evidence


def test_a_handful_of_trades_is_called_too_few_to_judge(planted):
    close = planted["close"].iloc[:200]
    positions = pd.Series(0, index=close.index)
    positions.iloc[50:60] = 1
    check = check_significance(
        close, positions, trades=1, cost=0.0015, periods_per_year=365, block_bars=20
    )
    assert check.status == CheckStatus.INCONCLUSIVE
    assert check.summary.startswith("1 trade in the test period: too few to judge")


# --------------------------------------------------------------------------- reproducibility


def test_two_trainings_with_one_seed_give_identical_weights_in_distinct_bundles(planted):
    strategy = load_strategy(example("rsi_zones") | {"training": {
        **example("rsi_zones")["training"], "epochs": 3}})  # fmt: skip

    def train_twice():
        return tuple(
            train_strategy(strategy, {"SYNTH": planted}, explain_repeats=1).bundle for _ in range(2)
        )

    report = audit_strategy(
        strategy, planted, symbol="SYNTH", train=train_twice, checks=["reproducibility"]
    )
    check = report.check("reproducibility")
    assert check.status == CheckStatus.PASS, check.summary
    weights, bundles = check.evidence["weights_sha256"], check.evidence["bundle_sha256"]
    assert weights[0] == weights[1] and bundles[0] != bundles[1]
    assert len(set(check.evidence["model_ids"])) == 2
    assert report.trained and report.bundle_sha256 == bundles[0]


def test_a_model_whose_test_period_the_data_does_not_reach_is_said_so(planted, rsi_zones,
                                                                      planted_model):  # fmt: skip
    early = planted.iloc[:1500]  # ends years before the model's test period
    report = audit_strategy(
        rsi_zones, early, symbol="SYNTH", bundle=planted_model, checks=["significance"]
    )
    check = report.check("significance")
    assert check.status == CheckStatus.SKIPPED
    assert check.summary.startswith("the model's test period cannot be backtested: data for")
    assert report.passed
