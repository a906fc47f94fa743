"""numpy and torch inference agree: on the three examples, trained on real data (GOOG daily,
EURUSD hourly and 4-hourly), the probabilities of every bar are equal within 1e-5 and every
decision is the same; a backtest records which forward pass ran and gives the same report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_worker.features import compute_features
from ktrdr_worker.models.backtest import backtest_model
from ktrdr_worker.models.decisions import DecisionSettings, decide_positions
from ktrdr_worker.models.inference import BundleModel, InferenceError, resolve_engine
from ktrdr_worker.models.pipeline import train_strategy
from tests.support.training_data import INFERENCE_EXAMPLES, inference_example

TOLERANCE = 1e-5


@pytest.fixture(scope="module", params=sorted(INFERENCE_EXAMPLES))
def trained(request, goog, eurusd):
    name = request.param
    strategy, symbol, bars = inference_example(name, goog, eurusd)
    outcome = train_strategy(strategy, {symbol: bars}, threads=1, explain_repeats=1)
    return name, outcome.bundle, bars, compute_features(strategy, bars)


def test_numpy_and_torch_probabilities_agree_on_every_bar(trained):
    name, bundle, _, features = trained
    by_numpy = BundleModel(bundle, "numpy").predict(features)
    by_torch = BundleModel(bundle, "torch").predict(features)
    assert by_numpy.index.equals(by_torch.index)
    assert (by_numpy.isna() == by_torch.isna()).all().all(), "predictable bars differ"
    predicted = by_torch.notna().all(axis=1)
    assert predicted.sum() > 500, f"{name}: too few predictions to compare"
    worst = float(np.nanmax(np.abs(by_numpy.to_numpy() - by_torch.to_numpy())))
    print(f"{name}: {int(predicted.sum())} bars, max |numpy - torch| = {worst:.2e}")
    assert worst <= TOLERANCE, f"{name}: probabilities differ by {worst:.2e}"
    # The class each bar leans to, and the decisions of the bundle's own settings and of
    # settings that act on every lean (so that no bar is left out of the comparison).
    assert (by_numpy[predicted].idxmax(axis=1) == by_torch[predicted].idxmax(axis=1)).all()
    manifest = BundleModel(bundle, "numpy").manifest
    for overrides in ({}, {"confidence_threshold": 0.0}):
        settings = DecisionSettings.from_dict({**manifest.decisions, **overrides})
        a, b = decide_positions(by_numpy, settings), decide_positions(by_torch, settings)
        pd.testing.assert_series_equal(a.positions, b.positions)
        assert a.counts == b.counts


def test_a_backtest_records_its_engine_and_gives_the_same_report(trained):
    name, bundle, bars, _ = trained
    reports = {
        engine: backtest_model(bundle, bars, inference=engine).report
        for engine in ("numpy", "torch")
    }
    assert reports["numpy"]["inference"] == "numpy" and reports["torch"]["inference"] == "torch"
    numpy_report, torch_report = (
        {k: v for k, v in report.items() if k not in ("inference", "created_at")}
        for report in (reports["numpy"], reports["torch"])
    )
    assert numpy_report == torch_report, f"{name}: the reports differ beyond the engine"


def test_auto_chooses_torch_where_it_is_installed_and_torch_is_never_faked(monkeypatch):
    assert resolve_engine("auto") == "torch"
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    assert resolve_engine("auto") == "numpy"
    with pytest.raises(InferenceError, match="torch is not installed here"):
        resolve_engine("torch")
    with pytest.raises(InferenceError, match="expected one of auto, numpy, torch"):
        resolve_engine("onnx")
