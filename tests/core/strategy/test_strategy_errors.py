"""Every kind of strategy error is reported with its key path, file, line and a message saying
what was expected and what was got — and all of them at once."""

from __future__ import annotations

import pytest

from ktrdr_core.strategy import Strategy, StrategyError, load_strategy, validate_strategy
from tests.support.strategies import MINIMAL, by_path, line_of, only_issue


def mutate(old: str, new: str, text: str = MINIMAL) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_minimal_strategy_is_valid():
    assert validate_strategy(MINIMAL) == []


def test_membership_error_names_path_line_expectation_and_values(tmp_path):
    text = mutate("params: [0, 20, 40]", "params: [30, 20, 40]")
    path = tmp_path / "rsi.yaml"
    path.write_text(text)
    issue = only_issue(path)
    assert issue.path == "fuzzy_sets.rsi_zone.oversold"
    assert issue.line == line_of(text, "oversold:")
    assert issue.file == str(path)
    assert "triangular needs 3 increasing numbers" in issue.message
    assert "got [30, 20, 40]" in issue.message
    assert str(issue) == f"{path}:{issue.line}: fuzzy_sets.rsi_zone.oversold: {issue.message}"


@pytest.mark.parametrize(
    ("old", "new", "path", "needle", "expected"),
    [
        (
            "type: rsi",
            "type: rsii",
            "indicators.rsi_14.type",
            "type: rsi",
            "unknown indicator 'rsii' (did you mean 'rsi'",
        ),
        (
            "{period: 14}",
            "{perod: 14}",
            "indicators.rsi_14.params.perod",
            "{perod",
            "unknown parameter 'perod' for rsi (did you mean 'period'?); rsi takes: period",
        ),
        (
            "{period: 14}",
            "{period: 14.5}",
            "indicators.rsi_14.params.period",
            "{period",
            "period of rsi must be an integer, got 14.5",
        ),
        (
            "{period: 14}",
            "{period: 1}",
            "indicators.rsi_14.params.period",
            "{period",
            "period of rsi must be between 2 and 10000, got 1",
        ),
        (
            "{period: 14}",
            "{period: true}",
            "indicators.rsi_14.params.period",
            "{period",
            "expected a number, got bool True",
        ),
        (
            "    type: macd\n",
            "    type: macd\n    params: {fast: 30, slow: 26}\n",
            "indicators.macd_fast.params.fast",
            "fast: 30",
            "fast must be less than slow for macd, got fast=30, slow=26",
        ),
    ],
)
def test_indicator_catalog_errors(old, new, path, needle, expected):
    text = mutate(old, new)
    issue = only_issue(text)
    assert (issue.path, issue.line) == (path, line_of(text, needle))
    assert expected in issue.message


@pytest.mark.parametrize(
    ("old", "new", "path", "needle", "expected"),
    [
        (
            "indicator: rsi_14",
            "indicator: rsi_41",
            "fuzzy_sets.rsi_zone.indicator",
            "indicator: rsi_41",
            "refers to indicator 'rsi_41', which is not defined in indicators (did you mean "
            "'rsi_14'?); defined: rsi_14, macd_fast",
        ),
        (
            "raw: macd_fast.hist",
            "raw: macd_fast.histo",
            "inputs[1].raw",
            "raw:",
            "indicator macd_fast (macd) has no output 'histo' (did you mean 'hist'?); its outputs: "
            "macd, signal, hist",
        ),
        (
            "raw: macd_fast.hist",
            "raw: macd_fast",
            "inputs[1].raw",
            "raw:",
            "has outputs macd, signal, hist: name one, e.g. macd_fast.hist",
        ),
        (
            "raw: macd_fast.hist",
            "raw: ema_9",
            "inputs[1].raw",
            "raw:",
            "refers to indicator 'ema_9', which is not defined",
        ),
        (
            "- fuzzy_set: rsi_zone",
            "- fuzzy_set: rsi_zon",
            "inputs[0].fuzzy_set",
            "fuzzy_set:",
            "refers to fuzzy set 'rsi_zon', which is not defined in fuzzy_sets (did you mean "
            "'rsi_zone'?)",
        ),
        (
            "timeframes: [1h, 4h]",
            "timeframes: [1h, 1d]",
            "inputs[0].timeframes[1]",
            "    timeframes: [",
            "timeframe 1d is not one of the strategy's timeframes",
        ),
    ],
)
def test_reference_errors(old, new, path, needle, expected):
    text = mutate(old, new)
    issue = only_issue(text)
    assert (issue.path, issue.line) == (path, line_of(text, needle))
    assert expected in issue.message


@pytest.mark.parametrize(
    ("params", "kind", "expected"),
    [
        ("[0, 20]", "triangular", "triangular needs 3 numbers [a, b, c], got 2: [0, 20]"),
        ("[0, 0, 0]", "triangular", "got [0, 0, 0]"),
        ("[null, 20, 40]", "triangular", "triangular parameter a must be a number"),
        ("[null, 10, 20, null]", "trapezoidal", "not both), got [null, 10, 20, null]"),
        ("[0, 30, 20, 40]", "trapezoidal", "4 non-decreasing numbers"),
        ("[0, 10, 20, .inf]", "trapezoidal", "write null for an open shoulder"),
        ("[50, 0]", "gaussian", "sigma > 0, got [50, 0]"),
        ("[50, -1]", "gaussian", "sigma > 0, got [50, -1]"),
        ("[50, 0]", "sigmoid", "slope ≠ 0, got [50, 0]"),
    ],
)
def test_membership_parameter_errors(params, kind, expected):
    text = mutate("{type: triangular, params: [0, 20, 40]}", f"{{type: {kind}, params: {params}}}")
    issue = only_issue(text)
    assert issue.path == "fuzzy_sets.rsi_zone.oversold"
    assert issue.line == line_of(text, "oversold:")
    assert expected in issue.message


def test_open_shoulders_are_valid():
    text = mutate("[0, 20, 40]}", "[null, 0, 20, 40]}").replace(
        "oversold: {type: triangular", "oversold: {type: trapezoidal"
    )
    text = mutate("[60, 80, 100]}", "[60, 80, 100, null]}", text).replace(
        "overbought: {type: triangular", "overbought: {type: trapezoidal"
    )
    strategy = load_strategy(text)
    assert strategy.fuzzy_sets["rsi_zone"].memberships["oversold"].params == [None, 0, 20, 40]


def test_unknown_membership_type_lists_the_known_ones():
    text = mutate("{type: triangular, params: [0, 20, 40]}", "{type: bell, params: [1]}")
    issue = only_issue(text)
    assert issue.path == "fuzzy_sets.rsi_zone.oversold.type"
    assert "'triangular', 'trapezoidal', 'gaussian' or 'sigmoid', got 'bell'" in issue.message


def test_misspelt_indicator_key_in_a_fuzzy_set_is_explained():
    text = mutate("    indicator: rsi_14\n", "    indicatr: rsi_14\n")
    issues = by_path(validate_strategy(text))
    assert "did you mean 'indicator'?" in issues["fuzzy_sets.rsi_zone.indicatr"].message
    missing = issues["fuzzy_sets.rsi_zone.indicator"].message
    assert missing.startswith("required key 'indicator' is missing (Indicator output read")
    assert issues["fuzzy_sets.rsi_zone.indicator"].line == line_of(text, "rsi_zone:")


def test_membership_names_must_fit_in_feature_names():
    text = mutate("    oversold:", "    Over-sold:")
    issue = only_issue(text)
    assert issue.path == "fuzzy_sets.rsi_zone.Over-sold"
    assert "lower-case letters, digits and underscores" in issue.message


def test_embargo_must_cover_the_label_horizon():
    text = mutate("  extra_timeframes: [4h]\n", "  extra_timeframes: [4h]\n  embargo_bars: 3\n")
    issue = only_issue(text)
    assert (issue.path, issue.line) == ("data.embargo_bars", line_of(text, "embargo_bars"))
    assert "labels.zigzag.lookahead = 10 bars" in issue.message
    assert "expected ≥ 10, got 3" in issue.message


def test_left_out_embargo_is_the_label_horizon():
    assert load_strategy(MINIMAL).embargo_bars == 10


def test_feature_names_must_be_unique():
    # Set `rsi` + membership `zone_low` and set `rsi_zone` + membership `low` collide.
    text = MINIMAL.replace("oversold:", "low:").replace(
        "inputs:\n",
        "  rsi:\n    indicator: rsi_14\n    zone_low: {type: gaussian, params: [30, 5]}\n"
        "inputs:\n  - fuzzy_set: rsi\n",
    )
    issue = only_issue(text)
    assert issue.path == "inputs[1]"
    assert "feature '1h_rsi_zone_low' is already produced by inputs[0]" in issue.message


@pytest.mark.parametrize(
    ("old", "new", "path", "expected"),
    [
        (
            "  timeframe: 1h\n",
            "  timeframe: 2h\n",
            "data.timeframe",
            "expected '1m', '5m', '15m', '30m', '1h', '4h', '1d' or '1w', got '2h'",
        ),
        (
            "extra_timeframes: [4h]",
            "extra_timeframes: [15m, 4h]",
            "data.extra_timeframes",
            "must be longer than the base timeframe 1h (they are resampled from it), got 15m",
        ),
        (
            "symbols: [AAPL]",
            "symbols: [AAPL, AAPL]",
            "data.symbols",
            "symbols must be unique, got AAPL more than once",
        ),
        ("symbols: [AAPL]", "symbols: []", "data.symbols", "expected at least 1 item(s), got 0"),
        (
            "  extra_timeframes: [4h]\n",
            "  extra_timeframes: [4h]\n  start: 2024-01-01\n  end: 2023-01-01\n",
            "data.end",
            "end must not be before start",
        ),
        (
            "  extra_timeframes: [4h]\n",
            "  extra_timeframes: [4h]\n  split: {train: 0.8, validation: 0.2, test: 0.2}\n",
            "data.split",
            "must add up to 1, got 0.8 + 0.2 + 0.2 = 1.2",
        ),
        ("name: mini", "name: my strategy", "name", "without spaces"),
        (
            "zigzag: {threshold: 0.02, lookahead: 10}",
            "zigzag: {threshold: 2, lookahead: 10}",
            "labels.zigzag.threshold",
            "expected less than 1, got 2",
        ),
        (
            "labels:\n  zigzag: {threshold: 0.02, lookahead: 10}\n",
            "labels: {}\n",
            "labels",
            "choose exactly one labelling method (zigzag, forward_return or triple_barrier), got "
            "none",
        ),
    ],
)
def test_section_value_errors(old, new, path, expected):
    text = mutate(old, new)
    issue = only_issue(text)
    assert issue.path == path
    assert expected in issue.message
    assert issue.line == line_of(text, path.split(".")[-1].split("[")[0] + ":")


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("model: {type: mlp, window: 8}", "mlp takes one bar per sample: window must be 1"),
        ("model: {type: gru}", "gru needs window ≥ 2 bars of history per sample, got 1"),
        ("model: {hidden_layers: []}", "expected at least 1 item(s), got 0"),
        ("model: {dropout: 1.0}", "expected less than 1, got 1.0"),
        ("training: {device: tpu}", "expected 'auto', 'cpu', 'cuda' or 'mps', got 'tpu'"),
        ("training: {epochs: 10.0}", "expected a valid integer, got 10.0"),
        ("training: {learning_rate: 0}", "expected greater than 0, got 0"),
        ("training: {early_stopping: {patience: 0}}", "expected greater than or equal to 1"),
        ("decisions: {mode: short}", "expected 'long_only' or 'long_short', got 'short'"),
        ("decisions: {confidence_threshold: 1.5}", "expected less than or equal to 1, got 1.5"),
        ("backtest: {commission: -0.1}", "expected greater than or equal to 0, got -0.1"),
        ("backtest: {fractional: yes}", "expected a valid boolean, got 'yes'"),
        ("backtest: {capital: .nan}", "expected a finite number"),
    ],
)
def test_model_training_decisions_backtest_errors(section, expected):
    issue = only_issue(MINIMAL + section + "\n")
    assert issue.line == line_of(MINIMAL + section, section)
    assert expected in issue.message


def test_forward_return_thresholds_are_signed():
    text = mutate(
        "zigzag: {threshold: 0.02, lookahead: 10}",
        "forward_return: {horizon: 5, buy_threshold: 0.01, sell_threshold: 0.01}",
    )
    issue = only_issue(text)
    assert issue.path == "labels.forward_return.sell_threshold"
    assert "expected less than 0, got 0.01" in issue.message


def test_two_label_methods_are_refused_even_when_one_is_also_wrong():
    text = mutate(
        "  zigzag: {threshold: 0.02, lookahead: 10}\n",
        "  zigzag: {threshold: 0.02, lookahead: 10}\n  forward_return: {horizon: 0}\n",
    )
    issues = by_path(validate_strategy(text))
    assert "got zigzag and forward_return" in issues["labels"].message
    assert "labels.forward_return.horizon" in issues


def test_input_needs_exactly_one_source():
    text = mutate("  - raw: macd_fast.hist\n", "  - timeframes: [1h]\n")
    issue = only_issue(text)
    assert issue.path == "inputs[1]"
    assert "exactly one of `fuzzy_set: <set name>` or `raw:" in issue.message
    assert "got neither" in issue.message


@pytest.mark.parametrize(
    ("location", "yaml_text"),
    [
        ("", "colour: red\n"),
        ("data", "data:\n  symbols: [A]\n  timeframe: 1h\n  colour: red\n"),
        ("data.split", "data:\n  symbols: [A]\n  timeframe: 1h\n  split: {colour: red}\n"),
        ("indicators.rsi_14", "indicators:\n  rsi_14: {type: rsi, colour: red}\n"),
        (
            "fuzzy_sets.rsi_zone.oversold",
            "fuzzy_sets:\n  rsi_zone:\n    indicator: rsi_14\n"
            "    oversold: {type: gaussian, params: [1, 2], colour: red}\n",
        ),
        ("inputs[0]", "inputs:\n  - {raw: rsi_14, colour: red}\n"),
        ("model", "model: {colour: red}\n"),
        ("training", "training: {colour: red}\n"),
        ("training.early_stopping", "training: {early_stopping: {colour: red}}\n"),
        ("labels", "labels: {zigzag: {threshold: 0.1, lookahead: 5}, colour: red}\n"),
        ("labels.zigzag", "labels: {zigzag: {threshold: 0.1, lookahead: 5, colour: red}}\n"),
        ("decisions", "decisions: {colour: red}\n"),
        ("backtest", "backtest: {colour: red}\n"),
    ],
)
def test_unknown_keys_are_errors_at_every_level(location, yaml_text):
    # Replace the section the snippet redefines, keep the rest of the minimal strategy.
    import yaml

    base = yaml.safe_load(MINIMAL)
    base.update(yaml.safe_load(yaml_text))
    issues = validate_strategy(base)
    path = f"{location}.colour" if location else "colour"
    hits = [i for i in issues if i.path == path]
    assert len(hits) == 1, issues
    assert hits[0].message.startswith("unknown key 'colour'")
    assert "expected one of:" in hits[0].message
    assert hits[0].line is None  # mapping input: no file lines


def test_unknown_key_suggests_the_close_one_and_has_a_line():
    text = MINIMAL + "training:\n  epoch: 10\n"
    issue = only_issue(text)
    assert (issue.path, issue.line) == ("training.epoch", line_of(text, "epoch:"))
    assert "unknown key 'epoch' (did you mean 'epochs'?); expected one of: epochs," in (
        issue.message
    )


def test_missing_sections_are_named():
    issues = by_path(validate_strategy("name: x\n"))
    for section in ("data", "indicators", "inputs", "labels"):
        assert issues[section].message.startswith(f"required key '{section}' is missing (")
    assert "model" not in issues and "training" not in issues  # they have defaults


def test_many_errors_are_reported_at_once(tmp_path):
    text = (
        MINIMAL.replace("symbols: [AAPL]", "symbols: [AAPL, AAPL]")
        .replace("{period: 14}", "{period: 0, colour: 1}")
        .replace("[0, 20, 40]", "[30, 20, 40]")
        .replace("raw: macd_fast.hist", "raw: macd_fast.histo")
        .replace("timeframes: [1h, 4h]", "timeframes: [1h, 1w]")
        + "model: {type: cnn}\ntraining: {epochs: 0}\nbacktest: {capital: -5}\nextra: 1\n"
    )
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    expected_paths = [
        "data.symbols",
        "indicators.rsi_14.params.period",
        "indicators.rsi_14.params.colour",
        "fuzzy_sets.rsi_zone.oversold",
        "inputs[0].timeframes[1]",
        "inputs[1].raw",
        "model.type",
        "training.epochs",
        "backtest.capital",
        "extra",
    ]
    with pytest.raises(StrategyError) as caught:
        load_strategy(path)
    issues = caught.value.issues
    assert [i.path for i in issues] == expected_paths  # every one, in file order
    assert all(i.file == str(path) and i.line is not None for i in issues)
    assert [i.line for i in issues] == sorted(i.line for i in issues)
    report = str(caught.value)
    assert f"invalid strategy in {path}: {len(expected_paths)} problem(s)" in report
    assert all(p in report for p in expected_paths)


def test_mapping_input_gets_paths_without_lines(minimal):
    minimal["indicators"]["rsi_14"]["params"]["period"] = 99999
    issue = only_issue(minimal)
    assert (issue.path, issue.line, issue.file) == ("indicators.rsi_14.params.period", None, None)


def test_the_loader_runs_the_cross_section_checks_the_plain_sections_leave_out(minimal):
    minimal["fuzzy_sets"]["rsi_zone"]["indicator"] = "nope"
    Strategy.model_validate(minimal)  # the sections are plain data: each one alone is valid
    issue = only_issue(minimal)
    assert issue.path == "fuzzy_sets.rsi_zone.indicator"
    assert "refers to indicator" in issue.message


def test_missing_file_is_an_issue_not_a_crash(tmp_path):
    issue = only_issue(tmp_path / "absent.yaml")
    assert issue.path == "" and "cannot read the strategy file" in issue.message


@pytest.mark.parametrize(
    ("weights", "path", "needle"),
    [
        ("{AAPL: 0.5, MSFT: 0.4}", "backtest.weights", "weights must sum to 1, they sum to 0.9"),
        ("{AAPL: 1.5, MSFT: -0.5}", "backtest.weights", "each weight must be in (0, 1]"),
        ("{AAPL: 0.5, MSFT: 0.25, TSLA: 0.25}", "backtest.weights", "TSLA not in data.symbols"),
        ("{AAPL: 1.0}", "backtest.weights", "no weight for MSFT: name every symbol"),
    ],
)
def test_backtest_weights_must_share_the_capital_between_the_symbols(weights, path, needle):
    text = mutate("symbols: [AAPL]", "symbols: [AAPL, MSFT]") + f"backtest:\n  weights: {weights}\n"
    issue = only_issue(text)
    assert issue.path == path
    assert needle in issue.message


def test_backtest_weights_that_share_the_capital_are_kept():
    text = mutate("symbols: [AAPL]", "symbols: [AAPL, MSFT]")
    strategy = load_strategy(text + "backtest:\n  weights: {AAPL: 0.25, MSFT: 0.75}\n")
    assert strategy.backtest.weights == {"AAPL": 0.25, "MSFT": 0.75}
    assert load_strategy(text).backtest.weights is None  # equal shares
