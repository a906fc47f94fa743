"""Lining two runs up: what changed in their inputs beside how their metrics moved."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ktrdr_core.runs import RunRecord, diff_runs, flatten


def _record(**changes) -> RunRecord:
    base = {
        "operation_id": "op_000000000001",
        "kind": "walkforward",
        "state": "completed",
        "strategy_name": "s",
        "strategy_hash": "a" * 64,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "seed": 3,
        "data": {"EURUSD/1h@1": "c" * 64},
        "versions": {"backend ktrdr-api": "0.1.0", "worker torch": "2.13.0"},
        "parameters": {"strategy.training.epochs": 5, "strategy.model.hidden_layers": [8]},
        "metrics": {"total_return": 0.10, "sharpe": 1.0},
    }
    return RunRecord(**(base | changes))


def test_flatten_keeps_lists_whole():
    assert flatten({"a": {"b": 1, "c": [2, 3]}, "d": {}}) == {"a.b": 1, "a.c": [2, 3], "d": {}}


def test_identical_inputs_show_only_the_metrics():
    diff = diff_runs(_record(), _record(operation_id="op_000000000002"))
    assert diff.same_inputs
    assert ("total_return", 0.10, 0.10, 0.0) in diff.metrics


def test_every_kind_of_change_is_named():
    b = _record(
        seed=4,
        data={"EURUSD/1h@2": "d" * 64},
        versions={"backend ktrdr-api": "0.2.0", "worker torch": "2.13.0"},
        parameters={"strategy.training.epochs": 9, "strategy.model.hidden_layers": [8]},
        metrics={"total_return": 0.25, "win_rate": 0.6},
    )
    diff = diff_runs(_record(), b)
    assert not diff.same_inputs
    assert diff.parameters == [("strategy.training.epochs", 5, 9)]
    assert diff.data == [("EURUSD/1h", f"v1 {'c' * 12}", f"v2 {'d' * 12}")]
    assert diff.seed == (3, 4)
    assert diff.versions == [("backend ktrdr-api", "0.1.0", "0.2.0")]
    metrics = {key: (a, b, d) for key, a, b, d in diff.metrics}
    assert metrics["total_return"][2] == pytest.approx(0.15)
    assert metrics["sharpe"] == (1.0, None, None) and metrics["win_rate"] == (None, 0.6, None)
