"""The numpy forward pass against torch: every network type, activation and shape a ``model``
section can describe gives the same probabilities within 1e-5 and the same argmax; a state that
does not fit the spec is refused naming the key; and the module runs where torch cannot be
imported."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from ktrdr_worker.models import forward, networks, spec
from ktrdr_worker.models.datasets import Samples
from ktrdr_worker.models.forward import (
    NumpyNetwork,
    expected_state_shapes,
    predict_probabilities_numpy,
)
from ktrdr_worker.models.spec import ModelSpecError, NetworkSpec
from ktrdr_worker.models.training import predict_probabilities

TOLERANCE = 1e-5
N_FEATURES = 7


def _torch_network(network_spec: NetworkSpec, seed: int) -> torch.nn.Module:
    """A seeded random network with a non-trivial standardisation, in eval mode."""
    torch.manual_seed(seed)
    network = networks.build_network(network_spec, N_FEATURES)
    rng = np.random.default_rng(seed)
    networks.set_standardisation(
        network, rng.normal(0.0, 5.0, N_FEATURES), rng.uniform(0.2, 4.0, N_FEATURES)
    )
    return network.eval()


def _state(network: torch.nn.Module) -> dict[str, np.ndarray]:
    return {key: value.detach().numpy().copy() for key, value in network.state_dict().items()}


def _inputs(network: torch.nn.Module, window: int, seed: int, batch: int = 64) -> np.ndarray:
    """Raw (unstandardised) inputs whose standardised values spread over about ±3σ."""
    rng = np.random.default_rng(seed + 1000)
    mean = network.standardise.mean.numpy()
    std = network.standardise.std.numpy()
    z = rng.normal(0.0, 1.5, (batch, window, N_FEATURES))
    return (mean + std * z).astype(np.float32)


def _torch_probabilities(network: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(network(torch.from_numpy(x)), dim=1).double().numpy()


MLP_SPECS = [
    NetworkSpec(type="mlp", hidden_layers=layers, activation=activation, dropout=dropout)
    for activation in spec.ACTIVATION_NAMES
    for layers in [(8,), (16, 8), (5, 11, 3)]
    for dropout in (0.0, 0.3)
]
RECURRENT_SPECS = [
    NetworkSpec(type=kind, hidden_layers=layers, dropout=dropout, window=window)
    for kind in ("gru", "lstm")
    for layers, window in [((8,), 2), ((12, 6), 5), ((4, 9, 5), 16)]
    for dropout in (0.0, 0.2)
]


def _spec_id(s: NetworkSpec) -> str:
    act = f"-{s.activation}" if s.type == "mlp" else ""
    return f"{s.type}{act}-{'x'.join(map(str, s.hidden_layers))}-w{s.window}-d{s.dropout}"


@pytest.mark.parametrize("network_spec", MLP_SPECS + RECURRENT_SPECS, ids=_spec_id)
def test_numpy_probabilities_equal_torch(network_spec):
    seed = (MLP_SPECS + RECURRENT_SPECS).index(network_spec)
    network = _torch_network(network_spec, seed)
    x = _inputs(network, network_spec.window, seed)
    expected = _torch_probabilities(network, x)
    numpy_network = NumpyNetwork(network_spec, _state(network))
    got = numpy_network.probabilities(x)
    assert got.dtype == np.float64 and got.shape == (len(x), 3)
    assert np.abs(got - expected).max() < TOLERANCE
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    logits = numpy_network.logits(x)
    assert logits.dtype == np.float32
    with torch.no_grad():
        torch_logits = network(torch.from_numpy(x)).numpy()
    assert np.abs(logits - torch_logits).max() < TOLERANCE * max(1.0, np.abs(torch_logits).max())


def test_train_mode_dropout_would_differ_so_the_eval_comparison_means_something():
    """A dropout spec in train mode changes torch's output; numpy matches eval mode only."""
    network_spec = NetworkSpec(type="mlp", hidden_layers=(16, 8), dropout=0.5)
    network = _torch_network(network_spec, 3)
    x = _inputs(network, 1, 3)
    numpy_probabilities = NumpyNetwork(network_spec, _state(network)).probabilities(x)
    network.train()
    torch.manual_seed(0)
    assert np.abs(_torch_probabilities(network, x) - numpy_probabilities).max() > 1e-3


@pytest.mark.parametrize(
    "network_spec",
    [
        NetworkSpec(type="mlp", hidden_layers=(16, 8), activation="gelu", dropout=0.1),
        NetworkSpec(type="gru", hidden_layers=(8, 4), dropout=0.1, window=6),
        NetworkSpec(type="lstm", hidden_layers=(8,), dropout=0.0, window=6),
    ],
    ids=_spec_id,
)
def test_samples_in_batches_equal_training_predict_probabilities(network_spec):
    network = _torch_network(network_spec, 5)
    rng = np.random.default_rng(5)
    features = rng.normal(0.0, 3.0, (200, N_FEATURES)).astype(np.float32)
    ends = np.arange(network_spec.window - 1, 200, 3, dtype=np.int64)
    samples = Samples(features, ends, np.full(ends.size, -1), network_spec.window)
    expected = predict_probabilities(network, samples)
    numpy_network = NumpyNetwork(network_spec, _state(network), n_features=N_FEATURES)
    for batch_size in (7, forward.EVAL_BATCH):  # batches that split the samples, and one batch
        got = predict_probabilities_numpy(numpy_network, samples, batch_size=batch_size)
        assert got.shape == expected.shape and got.dtype == np.float64
        assert np.abs(got - expected).max() < TOLERANCE
    empty = samples.subset(np.zeros(ends.size, dtype=bool))
    assert predict_probabilities_numpy(numpy_network, empty).shape == (0, 3)


def test_samples_of_another_window_are_refused():
    network_spec = NetworkSpec(type="gru", hidden_layers=(4,), window=4)
    numpy_network = NumpyNetwork(network_spec, _state(_torch_network(network_spec, 1)))
    features = np.zeros((10, N_FEATURES), dtype=np.float32)
    samples = Samples(features, np.arange(2, 10), np.full(8, -1), 3)
    with pytest.raises(ValueError, match="windows of 3 bars, the network expects 4"):
        predict_probabilities_numpy(numpy_network, samples)
    with pytest.raises(ValueError, match=r"shape \(batch, 4, 7\)"):
        numpy_network.logits(np.zeros((2, 4, N_FEATURES + 1), dtype=np.float32))


@pytest.mark.parametrize(
    "network_spec",
    [
        NetworkSpec(type="mlp", hidden_layers=(6, 5), dropout=0.0),
        NetworkSpec(type="mlp", hidden_layers=(6, 5), dropout=0.2),
        NetworkSpec(type="gru", hidden_layers=(6, 5), window=3),
        NetworkSpec(type="lstm", hidden_layers=(6, 5), window=3),
    ],
    ids=_spec_id,
)
def test_expected_state_shapes_are_torchs(network_spec):
    network = networks.build_network(network_spec, N_FEATURES)
    torch_shapes = {key: tuple(v.shape) for key, v in network.state_dict().items()}
    assert expected_state_shapes(network_spec, N_FEATURES) == torch_shapes


GRU = NetworkSpec(type="gru", hidden_layers=(6, 5), window=3)


def _gru_state() -> dict[str, np.ndarray]:
    return _state(_torch_network(GRU, 2))


def test_a_missing_key_is_named():
    state = _gru_state()
    del state["recurrent.1.bias_hh_l0"]
    with pytest.raises(ModelSpecError, match=r"missing 'recurrent.1.bias_hh_l0' .*\(15,\)"):
        NumpyNetwork(GRU, state)
    del state["standardise.mean"]
    with pytest.raises(ModelSpecError, match=r"missing 'standardise\.mean'"):
        NumpyNetwork(GRU, state)


def test_an_extra_key_is_named():
    state = _gru_state()
    state["recurrent.2.weight_ih_l0"] = np.zeros((15, 5), dtype=np.float32)
    with pytest.raises(ModelSpecError, match=r"unexpected 'recurrent\.2\.weight_ih_l0'"):
        NumpyNetwork(GRU, state)


def test_a_wrong_shape_is_named():
    state = _gru_state()
    state["head.weight"] = np.zeros((3, 6), dtype=np.float32)
    with pytest.raises(
        ModelSpecError, match=r"'head.weight' has shape \(3, 6\), expected \(3, 5\)"
    ):
        NumpyNetwork(GRU, state)
    # An LSTM's state (four gates) does not pass for a GRU (three).
    lstm_state = _state(_torch_network(NetworkSpec(type="lstm", hidden_layers=(6, 5), window=3), 2))
    with pytest.raises(ModelSpecError, match=r"'recurrent.0.weight_ih_l0' has shape \(24, 7\)"):
        NumpyNetwork(GRU, lstm_state)


def test_a_feature_count_that_differs_from_the_state_is_refused():
    with pytest.raises(
        ModelSpecError, match=r"'standardise.mean' has shape \(7,\), expected \(8,\)"
    ):
        NumpyNetwork(GRU, _gru_state(), n_features=8)


def test_both_backends_cover_every_activation_name():
    assert tuple(networks.ACTIVATIONS) == spec.ACTIVATION_NAMES
    assert tuple(forward.ACTIVATIONS) == spec.ACTIVATION_NAMES


def test_activations_equal_torchs_over_a_wide_range():
    x = np.linspace(-30.0, 30.0, 120_001, dtype=np.float32)
    for name in spec.ACTIVATION_NAMES:
        expected = networks.ACTIVATIONS[name]()(torch.from_numpy(x)).numpy()
        got = forward.ACTIVATIONS[name](x)
        assert got.dtype == np.float32, name
        # 2e-6 relative: torch's own float32 GELU is 1.1e-6 off the exact value.
        assert (np.abs(got - expected) / np.maximum(1.0, np.abs(expected))).max() < 2e-6, name


def test_gelu_error_against_exact_erf_is_about_two_float32_ulps():
    x = np.linspace(-12.0, 12.0, 240_001, dtype=np.float32)
    x64 = x.astype(np.float64)
    exact = 0.5 * x64 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in x64]))
    error = np.abs(forward.gelu(x).astype(np.float64) - exact) / np.maximum(1.0, np.abs(exact))
    assert error.max() < 3e-7


NO_TORCH_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "scipy", "sklearn"}:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocked())
    import numpy as np
    from ktrdr_worker.models.forward import NumpyNetwork
    from ktrdr_worker.models.spec import NetworkSpec

    spec = NetworkSpec(type="lstm", hidden_layers=(3,), window=2)
    rng = np.random.default_rng(0)
    state = {
        "standardise.mean": np.zeros(2, np.float32),
        "standardise.std": np.ones(2, np.float32),
        "recurrent.0.weight_ih_l0": rng.normal(size=(12, 2)).astype(np.float32),
        "recurrent.0.weight_hh_l0": rng.normal(size=(12, 3)).astype(np.float32),
        "recurrent.0.bias_ih_l0": np.zeros(12, np.float32),
        "recurrent.0.bias_hh_l0": np.zeros(12, np.float32),
        "head.weight": rng.normal(size=(3, 3)).astype(np.float32),
        "head.bias": np.zeros(3, np.float32),
    }
    p = NumpyNetwork(spec, state).probabilities(rng.normal(size=(4, 2, 2)))
    assert p.shape == (4, 3) and np.allclose(p.sum(axis=1), 1.0), p
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "scipy", "sklearn"})
    assert not heavy, heavy
    print("ok")
    """
)


def test_forward_runs_where_torch_scipy_and_sklearn_cannot_be_imported():
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
