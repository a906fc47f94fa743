"""Strategy YAML is read safely: plain data only, bounded size, expansion and nesting,
duplicate keys refused, and YAML 1.1's surprising booleans left as text."""

from __future__ import annotations

import pytest

from ktrdr_core.strategy import MAX_FILE_BYTES, load_strategy, validate_strategy
from ktrdr_core.strategy.yaml_source import MAX_NODES, parse_yaml
from tests.support.strategies import MINIMAL, line_of, only_issue


def laughs(levels: int, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_stopped_at_the_node_budget():
    # 9^9 ≈ 387 million strings if expanded; the budget stops it after MAX_NODES values.
    issues = validate_strategy(laughs(9))
    bomb = [i for i in issues if "more than" in i.message]
    assert len(bomb) == 1
    assert f"file expands to more than {MAX_NODES} values" in bomb[0].message
    assert bomb[0].line is not None


def test_a_few_aliases_are_fine():
    text = MINIMAL.replace("params: [0, 20, 40]", "params: &low [0, 20, 40]").replace(
        "params: [60, 80, 100]", "params: *low"
    )
    text = text.replace("oversold", "low_a").replace("overbought", "low_b")
    strategy = load_strategy(text)
    memberships = strategy.fuzzy_sets["rsi_zone"].memberships
    assert memberships["low_a"].params == memberships["low_b"].params == [0, 20, 40]


def test_merge_keys_work_and_explicit_keys_win():
    text = MINIMAL.replace(
        "  rsi_zone:\n", "  rsi_zone:\n    <<: &low {oversold: {type: gaussian, params: [20, 5]}}\n"
    ).replace("    oversold: {type: triangular, params: [0, 20, 40]}\n", "")
    text += "backtest:\n  <<: {commission: 0.002, slippage: 0.001}\n  slippage: 0.0\n"
    strategy = load_strategy(text)
    assert (strategy.backtest.commission, strategy.backtest.slippage) == (0.002, 0.0)
    # merged keys come first, as PyYAML orders them: that is the feature order
    assert list(strategy.fuzzy_sets["rsi_zone"].memberships) == ["oversold", "overbought"]


def test_recursive_alias_is_refused():
    issue = [i for i in validate_strategy("a: &a [1, *a]\n") if "recursive" in i.message]
    assert len(issue) == 1 and issue[0].path == "a[1]"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("!!python/object/apply:os.system ['echo pwned']", "!!python/object/apply:os.system"),
        ("!!python/name:os.system", "!!python/name:os.system"),
        ("!custom thing", "!custom"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!set {a, b}", "!!set"),
        ("!!omap [a: 1]", "!!omap"),
    ],
)
def test_object_constructing_and_unknown_tags_are_refused(value, shown):
    text = MINIMAL.replace("name: mini", f"name: {value}")
    issue = only_issue(text)
    assert (issue.path, issue.line) == ("name", 1)
    assert f"YAML tag {shown} is not allowed" in issue.message


def test_duplicate_keys_are_errors_with_both_lines():
    text = MINIMAL.replace("  macd_fast:\n", "  rsi_14:\n    type: ema\n  macd_fast:\n")
    issue = only_issue(text)
    assert issue.path == "indicators.rsi_14"
    assert issue.line == line_of(text, "rsi_14:", 2)
    assert f"first written on line {line_of(text, 'rsi_14:')}" in issue.message


def test_oversized_text_and_files_are_refused_before_parsing(tmp_path):
    big = MINIMAL + "description: '" + "x" * MAX_FILE_BYTES + "'\n"
    assert "limited to 1048576 bytes (1 MiB)" in only_issue(big).message
    path = tmp_path / "big.yaml"
    path.write_text(big)
    assert "limited to 1048576 bytes" in only_issue(path).message


def test_deep_nesting_is_refused():
    text = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    issues = validate_strategy(text)
    assert len(issues) == 1 and "nest" in issues[0].message


def test_yaml_1_1_booleans_stay_text():
    # Norway's ISO code and "on" are symbols, not booleans.
    strategy = load_strategy(MINIMAL.replace("symbols: [AAPL]", "symbols: [NO, on, Y]"))
    assert strategy.data.symbols == ["NO", "on", "Y"]


def test_syntax_error_has_a_line():
    text = MINIMAL.replace("symbols: [AAPL]", "symbols: [AAPL")
    issues = validate_strategy(text)
    assert len(issues) == 1
    assert issues[0].message.startswith("invalid YAML")
    assert issues[0].line is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "file is empty"),
        ("# only a comment\n", "file is empty"),
        ("- a\n- b\n", "expected a mapping of sections"),
        ("a: 1\n---\nb: 2\n", "single document"),
    ],
)
def test_empty_non_mapping_and_multi_document_files(text, expected, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert expected in only_issue(path).message


def test_non_utf8_file_is_refused(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(MINIMAL.replace("mini", "min\xe9").encode("latin-1"))
    assert "not UTF-8" in only_issue(path).message


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(MINIMAL.encode("utf-8-sig"))
    assert load_strategy(path).name == "mini"


def test_exponent_floats_read_as_numbers_as_json_writes_them():
    """The backend hands a worker an overridden strategy as JSON, which writes 0.00001 as
    1e-05; YAML 1.1 would read that as text and the worker would refuse the strategy."""
    import json

    from ktrdr_core.examples import read_example

    parsed = parse_yaml("a: 1e-05\nb: 2E+3\nc: 1.5e3\nd: 1e5x\ne: 3\n").data
    assert parsed == {"a": 1e-05, "b": 2000.0, "c": 1500.0, "d": "1e5x", "e": 3}
    example = parse_yaml(read_example("volatility_triple_barrier")).data
    as_json = json.dumps(example, indent=2) + "\n"
    assert '"weight_decay": 1e-05' in as_json
    assert load_strategy(as_json).training.weight_decay == 0.00001
