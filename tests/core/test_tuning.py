"""The pure parts of a parameter search: the search-space file, a run's objective, the
deflated Sharpe ratio and the overfitting warning."""

from __future__ import annotations

import math

import pytest

from ktrdr_core.tuning import (
    SpaceError,
    deflated_sharpe,
    grid_size,
    objective_of,
    overfitting_warning,
    parse_space,
    probe_values,
)


def test_a_space_file_reads_as_distributions_in_file_order():
    space = parse_space(
        "indicators.rsi_14.params.period: {int: [7, 28]}\n"
        "training.learning_rate: {float: [1e-4, 1e-2], log: true}\n"
        "model.hidden_layers: {choice: [[32], [64, 32]]}\n"
        "decisions.confidence_threshold: {float: [0.4, 0.7], step: 0.05}\n"
    )
    assert space == {
        "indicators.rsi_14.params.period": {"int": [7, 28]},
        "training.learning_rate": {"float": [1e-4, 1e-2], "log": True},
        "model.hidden_layers": {"choice": [[32], [64, 32]]},
        "decisions.confidence_threshold": {"float": [0.4, 0.7], "step": 0.05},
    }
    assert probe_values(space["decisions.confidence_threshold"]) == [0.4, 0.7]
    assert probe_values(space["model.hidden_layers"]) == [[32], [64, 32]]
    assert grid_size(space) is None  # the learning rate has no step
    del space["training.learning_rate"]
    assert grid_size(space) == 22 * 2 * 7


def test_every_problem_of_a_space_file_is_reported_with_its_line():
    text = (
        "period: {int: [7, 28]}\n"
        "indicators.rsi_14.params.period: {int: [7.5, 28]}\n"
        "training.learning_rate: {float: [0.0, 0.1], log: true}\n"
        "training.epochs: {int: [10, 5]}\n"
        "model.hidden_layers: {choice: []}\n"
        "decisions.mode: {choice: [long_only], step: 1}\n"
        "training.batch_size: 64\n"
    )
    with pytest.raises(SpaceError) as error:
        parse_space(text, "space.yaml")
    found = [(i.path, i.line, i.message) for i in error.value.issues]
    assert found == [
        ("period", 1, "expected a dotted strategy path such as indicators.rsi_14.params.period"),
        ("indicators.rsi_14.params.period", 2, "int expects whole numbers, got [7.5, 28]"),
        ("training.learning_rate", 3, "log needs a positive low, got 0.0"),
        ("training.epochs", 4, "low 10 must be below high 5"),
        ("model.hidden_layers", 5, "choice expects a non-empty list of values"),
        ("decisions.mode", 6, "unknown option(s) step for choice (allowed: nothing else)"),
        (
            "training.batch_size",
            7,
            "expected a mapping such as {int: [7, 28]}, {float: [0.1, 0.9]} or {choice: [...]}",
        ),
    ]
    assert str(error.value.issues[0]).startswith("space.yaml:1: period: ")


def test_a_file_that_is_not_yaml_says_where():
    with pytest.raises(SpaceError) as error:
        parse_space("a.b: {int: [1, 2]\n", "s.yaml")
    [issue] = error.value.issues
    assert issue.file == "s.yaml" and issue.line is not None and "invalid YAML" in issue.message


def test_the_objective_is_read_from_a_runs_metrics():
    assert objective_of({"metrics": {"sharpe": 1.5}}, "sharpe") == 1.5
    assert objective_of({"metrics": {"sharpe": None}}, "sharpe") is None
    assert objective_of({"metrics": {"sharpe": float("nan")}}, "sharpe") is None
    assert objective_of({}, "sharpe") is None


def test_the_deflated_sharpe_ratio_follows_bailey_and_lopez_de_prado():
    # Their worked example: an annual Sharpe of 2.5 over 1250 daily returns (250 a year),
    # the best of N = 100 trials whose annual Sharpe ratios vary by 0.5, returns with skew
    # -3 and kurtosis 10: the expected maximum is 0.1132 a day and the DSR 0.9004.
    variance = 0.5 / 250
    trials = [math.sqrt(variance) * z for z in _standard_normal_sample(100)]
    sharpe = 2.5 / math.sqrt(250)
    result = deflated_sharpe(sharpe, trials, 1250, skew=-3, kurtosis=10)
    assert result is not None
    spread = math.sqrt(sum((s - sum(trials) / 100) ** 2 for s in trials) / 99)
    assert result.expected_max == pytest.approx(spread * 2.5313, rel=1e-3)
    assert result.expected_max == pytest.approx(0.1132, abs=5e-4)
    assert result.probability == pytest.approx(0.9004, abs=2e-3)
    # More trials raise the bar the best must clear.
    more = deflated_sharpe(sharpe, trials * 10, 1250, skew=-3, kurtosis=10)
    assert more.expected_max > result.expected_max and more.probability < result.probability
    assert deflated_sharpe(0.1, [0.1], 100) is None


def _standard_normal_sample(n: int) -> list[float]:
    """n values with mean 0 and standard deviation 1 exactly (evenly spaced quantiles)."""
    from statistics import NormalDist

    values = [NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)]
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return [(v - mean) / sd for v in values]


def test_a_holdout_far_below_the_search_is_called_out_in_plain_words():
    warning = overfitting_warning(2.0, 0.3, "sharpe", "maximize")
    assert warning is not None and "fitted noise" in warning and "2 during the search" in warning
    assert overfitting_warning(2.0, 1.6, "sharpe", "maximize") is None
    assert overfitting_warning(0.2, -0.1, "sharpe", "maximize") is not None  # below zero
    assert overfitting_warning(0.1, 0.3, "max_drawdown", "minimize") is not None
    assert overfitting_warning(2.0, None, "sharpe", "maximize") is None
