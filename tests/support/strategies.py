"""Strategy texts and issue helpers for the strategy tests."""

from __future__ import annotations

from typing import Any

from ktrdr_core.strategy import StrategyProblem, validate_strategy

# A small valid strategy. Line numbers in tests are found with `line_of`, not hard-coded.
MINIMAL = """\
name: mini
data:
  symbols: [AAPL]
  timeframe: 1h
  extra_timeframes: [4h]
indicators:
  rsi_14:
    type: rsi
    params: {period: 14}
  macd_fast:
    type: macd
fuzzy_sets:
  rsi_zone:
    indicator: rsi_14
    oversold: {type: triangular, params: [0, 20, 40]}
    overbought: {type: triangular, params: [60, 80, 100]}
inputs:
  - fuzzy_set: rsi_zone
    timeframes: [1h, 4h]
  - raw: macd_fast.hist
labels:
  zigzag: {threshold: 0.02, lookahead: 10}
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the `occurrence`-th line containing `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not found {occurrence} time(s)"
    return hits[occurrence - 1]


def by_path(issues: list[StrategyProblem]) -> dict[str, StrategyProblem]:
    """Issues keyed by path; fails if two issues share a path (tests expect one each)."""
    result: dict[str, StrategyProblem] = {}
    for issue in issues:
        assert issue.path not in result, f"two issues at {issue.path}: {issues}"
        result[issue.path] = issue
    return result


def only_issue(source: Any) -> StrategyProblem:
    issues = validate_strategy(source)
    assert len(issues) == 1, "\n".join(map(str, issues)) or "no issue"
    return issues[0]
