"""Every file of the hostile corpus through the core validators: refused, with the rule or
key path, the line and the words the manifest expects."""

from __future__ import annotations

import pytest

from ktrdr_core.market_data import OHLCVValidationError, normalise, validate_ohlcv_csv
from ktrdr_core.strategy import StrategyError, load_strategy, validate_strategy
from tests.support.hostile_corpus import TIMEFRAME, Expected, market_data_cases, strategy_cases

MARKET_DATA = market_data_cases()
STRATEGIES = strategy_cases()


def test_the_corpus_is_big_enough():
    assert len(MARKET_DATA) >= 30 and len(STRATEGIES) >= 30


@pytest.mark.parametrize("case", MARKET_DATA, ids=lambda c: c.id)
def test_market_data_file_is_refused_with_rule_and_line(case: Expected, tmp_path):
    result = validate_ohlcv_csv(case.file, TIMEFRAME)
    assert not result.ok and len(result.timestamps) == 0
    matching = [i for i in result.issues if (i.rule, i.line) == (case.rule, case.line)]
    assert matching, f"no {case.rule} issue on line {case.line}: {[str(i) for i in result.issues]}"
    message = matching[0].message
    for text in case.contains:
        assert text in message, f"{text!r} not in {message!r}"
    # The same file as bytes (an upload) gets the same first issue.
    assert validate_ohlcv_csv(case.file.read_bytes(), TIMEFRAME).issues[0] == result.issues[0]
    # normalise writes nothing for a refused file.
    dest = tmp_path / "out.csv"
    with pytest.raises(OHLCVValidationError):
        normalise(case.file, TIMEFRAME, dest)
    assert not dest.exists()


@pytest.mark.parametrize("case", STRATEGIES, ids=lambda c: c.id)
def test_strategy_file_is_refused_with_key_path_and_line(case: Expected):
    issues = validate_strategy(case.file)
    matching = [i for i in issues if (i.path, i.line) == (case.path, case.line)]
    assert matching, f"no issue at {case.path!r} line {case.line}: {[str(i) for i in issues]}"
    assert any(all(text in i.message for text in case.contains) for i in matching), [
        i.message for i in matching
    ]
    assert all(i.file == str(case.file) for i in issues)
    with pytest.raises(StrategyError):
        load_strategy(case.file)
