"""Feature names and order, defaults, and the strategy hash."""

from __future__ import annotations

import json
import re

from ktrdr_core.examples import load_example, read_example
from ktrdr_core.strategy import load_strategy
from tests.support.strategies import MINIMAL

ORDERED = """\
name: order
data:
  symbols: [X]
  timeframe: 15m
  extra_timeframes: [1d, 1h]
indicators:
  rsi_14: {type: rsi}
  bb: {type: bbands, params: {period: 30}}
  atr_5: {type: atr, params: {period: 5}}
fuzzy_sets:
  zone:
    indicator: rsi_14
    low: {type: gaussian, params: [20, 10]}
    mid: {type: gaussian, params: [50, 10]}
    high: {type: gaussian, params: [80, 10]}
  band:
    indicator: bb.upper
    far: {type: sigmoid, params: [0, 1]}
    near: {type: sigmoid, params: [0, -1]}
inputs:
  - raw: atr_5.value
    timeframes: [1d, 15m]
  - fuzzy_set: zone
    timeframes: [1h, 15m]
  - raw: bb.lower
  - fuzzy_set: band
labels:
  triple_barrier: {profit_take: 2, stop_loss: 1, max_holding_bars: 12}
"""


def test_feature_order_follows_inputs_then_timeframes_then_memberships():
    strategy = load_strategy(ORDERED)
    assert strategy.feature_names() == [
        "1d_atr_5_raw",  # single-output: no ".value" even when written
        "15m_atr_5_raw",
        "1h_zone_low",  # timeframes in the order the input lists them
        "1h_zone_mid",
        "1h_zone_high",  # memberships in file order, not alphabetical
        "15m_zone_low",
        "15m_zone_mid",
        "15m_zone_high",
        "15m_bb.lower_raw",  # timeframes left out: the base timeframe
        "15m_band_far",
        "15m_band_near",
    ]


def test_feature_specs_say_what_to_compute():
    features = load_strategy(ORDERED).features()
    raw = features[0]
    assert (raw.kind, raw.timeframe.value, raw.indicator, raw.output) == (
        "raw",
        "1d",
        "atr_5",
        "value",
    )
    assert raw.fuzzy_set is raw.membership is raw.membership_spec is None
    fuzzy = features[-1]
    assert (fuzzy.kind, fuzzy.indicator, fuzzy.output, fuzzy.fuzzy_set, fuzzy.membership) == (
        "fuzzy",
        "bb",
        "upper",
        "band",
        "near",
    )
    assert fuzzy.membership_spec is not None
    assert (fuzzy.membership_spec.type, fuzzy.membership_spec.params) == ("sigmoid", [0, -1])
    assert [f.input_index for f in features] == [0, 0, 1, 1, 1, 1, 1, 1, 2, 3, 3]


def test_feature_names_are_the_same_from_every_source():
    # Training reads the file, inference may rebuild the model from a bundle's JSON.
    strategy = load_example("macd_bollinger_mtf")
    again = load_strategy(json.loads(strategy.model_dump_json()))
    assert again.feature_names() == strategy.feature_names()
    assert all(re.fullmatch(r"(1h|4h)_[a-z0-9_.]+", n) for n in strategy.feature_names())


def test_catalog_defaults_are_filled_and_typed():
    strategy = load_strategy(ORDERED)
    assert strategy.indicators["rsi_14"].params == {"period": 14}
    assert strategy.indicators["bb"].params == {"period": 30, "std": 2.0}
    assert isinstance(strategy.indicators["bb"].params["std"], float)
    assert strategy.embargo_bars == 12  # the triple barrier's max_holding_bars
    assert strategy.training.device == "auto" and strategy.model.type == "mlp"


def test_hash_ignores_layout_comments_key_order_and_spelt_out_defaults():
    base = load_strategy(MINIMAL).strategy_hash()
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    relaid = (
        "# a comment\n"
        + MINIMAL.replace("name: mini\n", "").replace(
            "    type: macd\n",
            "    params:\n      fast: 12\n      slow: 26\n      signal: 9\n    type: macd\n",
        )
        + "name: 'mini'\ntraining: {epochs: 100}\n"
    )
    assert load_strategy(relaid).strategy_hash() == base


def test_hash_changes_with_anything_that_changes_the_strategy():
    base = load_strategy(MINIMAL).strategy_hash()
    changed = [
        MINIMAL.replace("{period: 14}", "{period: 15}"),
        MINIMAL.replace("[60, 80, 100]", "[60, 80, 99]"),
        MINIMAL + "training: {seed: 1}\n",
        # swapping two memberships changes the feature order, hence the hash
        MINIMAL.replace("oversold", "tmp")
        .replace("overbought", "oversold")
        .replace("tmp", "overbought"),
    ]
    hashes = {load_strategy(text).strategy_hash() for text in changed}
    assert base not in hashes and len(hashes) == len(changed)


def test_examples_round_trip_through_their_dump():
    for name in ("rsi_zones", "volatility_triple_barrier"):
        strategy = load_strategy(read_example(name))
        again = load_strategy(strategy.model_dump(mode="json"))
        assert again == strategy
        assert again.strategy_hash() == strategy.strategy_hash()
