"""Model bundles on the worker: predictions survive the round trip, wrong inputs are refused."""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pytest
import safetensors.numpy

from ktrdr_core.bundles import BundleError, read_bundle, write_bundle
from ktrdr_worker.features import FeatureMismatchError, compute_features
from ktrdr_worker.models.bundles import describe_bundle, save_bundle
from ktrdr_worker.models.inference import BundleModel, predict_bundle


@pytest.fixture(scope="module")
def planted_features(planted_strategy, planted_data):
    return compute_features(planted_strategy, planted_data)


def test_bundle_from_path_and_bytes_predicts_the_same(tmp_path, planted_outcome, planted_features):
    path = save_bundle(planted_outcome.bundle, tmp_path / "model.zip")
    from_bytes = predict_bundle(planted_outcome.bundle, planted_features)
    from_path = predict_bundle(path, planted_features)
    assert from_bytes.equals(from_path)
    assert list(from_bytes.columns) == ["BUY", "HOLD", "SELL"]
    predicted = from_bytes.dropna()
    assert np.allclose(predicted.sum(axis=1), 1.0)
    # Warm-up rows have NaN features, so no prediction there.
    assert from_bytes.iloc[:14].isna().all().all()


def test_bundle_description_is_plain_json_data(planted_outcome, planted_strategy):
    described = describe_bundle(planted_outcome.bundle)
    assert described["feature_names"] == planted_strategy.feature_names()
    assert described["format"] == "ktrdr-model-bundle/2"
    assert described["weights"]["file"] == "weights.safetensors"
    assert described["strategy"]["name"] == "planted"
    assert described["test_metrics"]["baseline"]["class"] in ("BUY", "HOLD", "SELL")
    assert set(described["splits"]) == {"train", "validation", "test"}


def test_inference_names_the_first_feature_that_differs(planted_outcome, planted_features):
    model = BundleModel(planted_outcome.bundle)
    swapped = planted_features[
        [planted_features.columns[1], planted_features.columns[0], *planted_features.columns[2:]]
    ]
    with pytest.raises(
        FeatureMismatchError,
        match=r"feature 0: the model expects "
        r"'1h_rsi_zone_oversold', the frame has '1h_rsi_zone_overbought'",
    ):
        model.predict(swapped)
    with pytest.raises(
        FeatureMismatchError,
        match=r"feature 5: the model expects '1h_flow_inflow'"
        r", the frame ends after 5 features",
    ):
        model.predict(planted_features.iloc[:, :5])
    extra = planted_features.assign(extra=1.0)
    with pytest.raises(FeatureMismatchError, match=r"extra column 'extra'"):
        model.predict(extra)


def _replace_member(bundle: bytes, name: str, data: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(bundle))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.namelist():
            target.writestr(item, data if item == name else source.read(item))
    return out.getvalue()


def test_altered_weights_are_refused(planted_outcome):
    _, weights = read_bundle(planted_outcome.bundle)
    middle = len(weights) // 2
    flipped = weights[:middle] + bytes([weights[middle] ^ 0xFF]) + weights[middle + 1 :]
    tampered = _replace_member(planted_outcome.bundle, "weights.safetensors", flipped)
    with pytest.raises(BundleError, match="corrupt or was altered"):
        BundleModel(tampered)


def test_weights_that_do_not_fit_the_model_are_refused(planted_outcome):
    """A well-formed safetensors file for another network: caught before any prediction."""
    manifest, weights = read_bundle(planted_outcome.bundle)
    state = safetensors.numpy.load(weights)
    del state["body.0.bias"]
    other = safetensors.numpy.save(state)
    record = manifest.weights.model_copy(
        update={"sha256": hashlib.sha256(other).hexdigest(), "bytes": len(other)}
    )
    bundle = write_bundle(manifest.model_copy(update={"weights": record}), other)
    for engine in ("numpy", "torch"):
        with pytest.raises(BundleError, match=r"body\.0\.bias"):
            BundleModel(bundle, engine)


def test_the_bundle_holds_the_trained_networks_exact_weights(planted_outcome):
    """What training held in torch is what the bundle carries, bit for bit (no pickle)."""
    from ktrdr_worker.models.networks import network_from_state, state_arrays
    from ktrdr_worker.models.spec import NetworkSpec

    manifest, weights = read_bundle(planted_outcome.bundle)
    state = safetensors.numpy.load(weights)
    network = network_from_state(
        NetworkSpec.from_dict(manifest.model), len(manifest.feature_names), state
    )
    again = state_arrays(network)
    assert set(again) == set(state)
    for key, value in state.items():
        assert value.dtype == np.float32 and np.array_equal(again[key], value), key
