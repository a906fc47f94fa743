"""The shipped example strategies: present, valid, and genuinely different."""

from __future__ import annotations

from importlib import resources

import pytest

from ktrdr_core.examples import list_examples, load_example, read_example
from ktrdr_core.strategy import load_strategy, validate_strategy

EXPECTED = {"rsi_zones", "macd_bollinger_mtf", "volatility_triple_barrier"}


def test_the_three_examples_are_listed():
    assert set(list_examples()) >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_validates_from_text_and_from_file(name, tmp_path):
    text = read_example(name)
    assert validate_strategy(text) == []
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_strategy(path).name == name
    assert load_strategy(str(path)).strategy_hash() == load_example(name).strategy_hash()


def test_examples_are_package_data_beside_the_module():
    # What the wheel ships: the YAML files live inside the ktrdr_core.examples package.
    files = {entry.name for entry in resources.files("ktrdr_core.examples").iterdir()}
    assert {f"{name}.yaml" for name in EXPECTED} <= files


def test_examples_cover_the_three_kinds_of_strategy():
    rsi = load_example("rsi_zones")
    mtf = load_example("macd_bollinger_mtf")
    vol = load_example("volatility_triple_barrier")

    assert rsi.data.extra_timeframes == [] and rsi.labels.method == "zigzag"
    assert {"rsi"} <= {cfg.type for cfg in rsi.indicators.values()}

    assert [tf.value for tf in mtf.data.timeframes] == ["1h", "4h"]
    assert {"macd", "bbands"} <= {cfg.type for cfg in mtf.indicators.values()}
    assert mtf.labels.method == "forward_return"
    assert {f.timeframe.value for f in mtf.features()} == {"1h", "4h"}

    assert vol.labels.method == "triple_barrier"
    assert {"natr", "adx"} <= {cfg.type for cfg in vol.indicators.values()}

    assert len({rsi.strategy_hash(), mtf.strategy_hash(), vol.strategy_hash()}) == 3
    assert {rsi.model.type, mtf.model.type, vol.model.type} == {"mlp", "gru", "lstm"}


def test_unknown_example_names_the_available_ones():
    with pytest.raises(ValueError, match=r"unknown example strategy 'nope'.*rsi_zones"):
        read_example("nope")
