"""The forward pass of every network a ``model`` section describes, in numpy float32 (no torch).

:class:`NumpyNetwork` holds the arrays of a torch ``state_dict`` (as
``ktrdr_worker.models.networks`` names and shapes them) and computes the same logits and class
probabilities as the torch network in eval mode, so the backtest worker's image predicts
without torch. Inputs are float32 arrays ``(batch, window, n_features)``; logits are
``(batch, 3)`` for BUY / HOLD / SELL. Every product, activation and recurrence step runs in
float32 like torch on the CPU; the probabilities are a float32 softmax returned as float64,
like ``ktrdr_worker.models.training.predict_probabilities``. Dropout is off (inference).

Equations, as torch documents them (zero initial state, gates in torch's row order):

* GRU (rows r, z, n): ``r = σ(W_ir x + b_ir + W_hr h + b_hr)``, ``z = σ(W_iz x + b_iz + W_hz h
  + b_hz)``, ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``, ``h' = (1 - z) ⊙ n + z ⊙ h``.
* LSTM (rows i, f, g, o): ``i, f, o = σ(·)``, ``g = tanh(·)`` of ``W_i* x + b_i* + W_h* h +
  b_h*``; ``c' = f ⊙ c + i ⊙ g``, ``h' = o ⊙ tanh(c')``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from ktrdr_worker.fuzzy import logistic
from ktrdr_worker.models.spec import N_CLASSES, ModelSpecError, NetworkSpec

if TYPE_CHECKING:
    from ktrdr_worker.models.datasets import Samples

__all__ = [
    "ACTIVATIONS",
    "EVAL_BATCH",
    "NumpyNetwork",
    "expected_state_shapes",
    "gelu",
    "predict_probabilities_numpy",
]

# Samples per forward pass in predict_probabilities_numpy (training.predict_probabilities's).
EVAL_BATCH = 8192

_F32 = np.float32
_ONE = _F32(1.0)
_HALF = _F32(0.5)
_SQRT_HALF = _F32(1.0 / math.sqrt(2.0))
# Abramowitz & Stegun 7.1.26 (Hastings): erfc(a) ≈ t·P(t)·exp(-a²), t = 1 / (1 + p·a), a ≥ 0.
_ERF_P = _F32(0.3275911)
_ERF_A = tuple(_F32(c) for c in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))
# erf(10/√2) is 1 in float32; clamping keeps a² finite for any finite input (no overflow warning).
_ERF_CLAMP = _F32(10.0)


def gelu(x: np.ndarray) -> np.ndarray:
    """torch's exact GELU, ``x · Φ(x) = x/2 · (1 + erf(x/√2))``, in float32.

    numpy has no erf. Abramowitz & Stegun 7.1.26 approximates it within 1.5e-7 (absolute) — the
    same formula torch's vectorised CPU kernel (``Vectorized<float>::erf``) evaluates — and, as
    ``1 + erf(u)`` is computed here as ``2 - erfc(|u|)`` for u ≥ 0 and ``erfc(|u|)`` for u < 0,
    no cancellation loses precision for negative inputs. Measured against ``math.erf`` in
    float64 over ±12 (tests/worker/models/test_forward.py), the error is below 3e-7 of
    max(1, |GELU(x)|): about two float32 ulps, where torch's own float32 GELU is off by 1e-6.
    """
    x = np.asarray(x, dtype=_F32)
    u = x * _SQRT_HALF
    a = np.minimum(np.abs(u), _ERF_CLAMP)
    t = _ONE / (_ONE + _ERF_P * a)
    a1, a2, a3, a4, a5 = _ERF_A
    erfc = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t * np.exp(-a * a)
    return _HALF * x * np.where(u >= 0, _F32(2.0) - erfc, erfc)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, _F32(0.0))


def _silu(x: np.ndarray) -> np.ndarray:
    return x * logistic(x)


def _leaky_relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, x * _F32(0.01))  # torch's default negative_slope


def _elu(x: np.ndarray) -> np.ndarray:
    # torch's default alpha 1; expm1 of min(x, 0) keeps the unused branch from overflowing.
    return np.where(x > 0, x, np.expm1(np.minimum(x, _F32(0.0))))


# One function per name in ktrdr_worker.models.spec.ACTIVATION_NAMES (a test checks), each with
# torch's default parameters.
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": _relu,
    "gelu": gelu,
    "tanh": np.tanh,
    "silu": _silu,
    "leaky_relu": _leaky_relu,
    "elu": _elu,
}


def _dense_indices(spec: NetworkSpec) -> list[int]:
    """Indices of the Linear layers in the MLP's ``body`` Sequential: each hidden layer takes
    Linear, activation and (only when dropout > 0) Dropout; the output Linear comes last."""
    per_hidden = 3 if spec.dropout > 0 else 2
    return [per_hidden * k for k in range(len(spec.hidden_layers) + 1)]


def expected_state_shapes(spec: NetworkSpec, n_features: int) -> dict[str, tuple[int, ...]]:
    """The ``state_dict`` keys and array shapes that ``networks.build_network(spec, n_features)``
    has, in its order."""
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ModelSpecError(f"a network needs at least one input feature, got {n_features!r}")
    shapes: dict[str, tuple[int, ...]] = {
        "standardise.mean": (n_features,),
        "standardise.std": (n_features,),
    }
    widths = [n_features, *spec.hidden_layers]
    if spec.type == "mlp":
        outs = [*spec.hidden_layers, N_CLASSES]
        for index, width_in, width_out in zip(_dense_indices(spec), widths, outs, strict=True):
            shapes[f"body.{index}.weight"] = (width_out, width_in)
            shapes[f"body.{index}.bias"] = (width_out,)
        return shapes
    gates = 3 if spec.type == "gru" else 4
    for number, (width_in, hidden) in enumerate(zip(widths[:-1], spec.hidden_layers, strict=True)):
        shapes[f"recurrent.{number}.weight_ih_l0"] = (gates * hidden, width_in)
        shapes[f"recurrent.{number}.weight_hh_l0"] = (gates * hidden, hidden)
        shapes[f"recurrent.{number}.bias_ih_l0"] = (gates * hidden,)
        shapes[f"recurrent.{number}.bias_hh_l0"] = (gates * hidden,)
    shapes["head.weight"] = (N_CLASSES, widths[-1])
    shapes["head.bias"] = (N_CLASSES,)
    return shapes


def _checked_state(
    spec: NetworkSpec, state: Mapping[str, np.ndarray], n_features: int | None
) -> tuple[int, dict[str, np.ndarray]]:
    """``state`` as float32 arrays after checking it has exactly the keys and shapes of ``spec``
    (n_features taken from ``standardise.mean`` when not given); ModelSpecError names the first
    missing key, else the first unexpected one, else the first wrong shape."""
    where = f"the weights do not fit the {spec.type} of hidden_layers {list(spec.hidden_layers)}"
    if n_features is None:
        if "standardise.mean" not in state:
            raise ModelSpecError(f"{where}: missing 'standardise.mean' (shape (n_features,))")
        mean_shape = np.shape(state["standardise.mean"])
        if len(mean_shape) != 1:
            raise ModelSpecError(
                f"{where}: 'standardise.mean' has shape {mean_shape}, expected (n_features,)"
            )
        n_features = int(mean_shape[0])
    expected = expected_state_shapes(spec, n_features)
    for key, shape in expected.items():
        if key not in state:
            raise ModelSpecError(f"{where}: missing {key!r} (expected shape {shape})")
    unexpected = sorted(str(key) for key in state if key not in expected)
    if unexpected:
        raise ModelSpecError(f"{where}: unexpected {unexpected[0]!r}")
    arrays: dict[str, np.ndarray] = {}
    for key, shape in expected.items():
        try:
            array = np.ascontiguousarray(state[key], dtype=_F32)
        except (TypeError, ValueError) as exc:
            raise ModelSpecError(f"{where}: {key!r} is not an array of numbers ({exc})") from None
        if array.shape != shape:
            raise ModelSpecError(
                f"{where}: {key!r} has shape {array.shape}, expected {shape} "
                f"(for {n_features} input features)"
            )
        arrays[key] = array
    return n_features, arrays


class NumpyNetwork:
    """A network of ``spec`` holding ``state`` (a torch ``state_dict`` as numpy arrays), run in
    numpy float32.

    ``state`` must have exactly the keys and shapes ``networks.build_network`` gives (see
    :func:`expected_state_shapes`), else :class:`ModelSpecError` names the first missing or
    unexpected key or wrong shape. ``n_features`` defaults to the length of
    ``standardise.mean``; pass it to check the state against a known feature count.
    """

    def __init__(
        self,
        spec: NetworkSpec,
        state: Mapping[str, np.ndarray],
        n_features: int | None = None,
    ) -> None:
        self.spec = spec
        self.n_features, arrays = _checked_state(spec, state, n_features)
        self._mean = arrays["standardise.mean"]
        self._std = arrays["standardise.std"]
        self._activation = ACTIVATIONS[spec.activation]
        if spec.type == "mlp":
            # (W transposed for x @ W.T as one contiguous matrix, b) per Linear, in order.
            self._dense = [
                (
                    np.ascontiguousarray(arrays[f"body.{i}.weight"].T),
                    arrays[f"body.{i}.bias"],
                )
                for i in _dense_indices(spec)
            ]
        else:
            # (W_ih.T, b_ih, W_hh.T, b_hh) per recurrent layer.
            self._recurrent = [
                tuple(
                    np.ascontiguousarray(arrays[f"recurrent.{n}.{name}"].T)
                    if name.startswith("weight")
                    else arrays[f"recurrent.{n}.{name}"]
                    for name in ("weight_ih_l0", "bias_ih_l0", "weight_hh_l0", "bias_hh_l0")
                )
                for n in range(len(spec.hidden_layers))
            ]
            self._head = (np.ascontiguousarray(arrays["head.weight"].T), arrays["head.bias"])

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits ``(batch, 3)`` float32 for inputs ``(batch, window, n_features)`` (cast to
        float32), ``window`` being the spec's."""
        x = np.asarray(x, dtype=_F32)
        want = (self.spec.window, self.n_features)
        if x.ndim != 3 or x.shape[1:] != want:
            raise ValueError(
                f"inputs must have shape (batch, {want[0]}, {want[1]}) (batch, window bars, "
                f"features), got {x.shape}"
            )
        if self.spec.type == "mlp":
            h = (x[:, -1, :] - self._mean) / self._std
            last = len(self._dense) - 1
            for number, (weight_t, bias) in enumerate(self._dense):
                h = h @ weight_t + bias
                if number < last:
                    h = self._activation(h)
            return h
        h = (x - self._mean) / self._std
        step = self._gru_layer if self.spec.type == "gru" else self._lstm_layer
        for layer in self._recurrent:
            h = step(h, *layer)
        weight_t, bias = self._head
        return h[:, -1, :] @ weight_t + bias

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(batch, 3)`` float64 (columns BUY, HOLD, SELL): a stable float32
        softmax of :meth:`logits`, as torch computes it, returned as float64."""
        logits = self.logits(x)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float64)

    @staticmethod
    def _gru_layer(
        x: np.ndarray, w_ih_t: np.ndarray, b_ih: np.ndarray, w_hh_t: np.ndarray, b_hh: np.ndarray
    ) -> np.ndarray:
        """Outputs ``(batch, steps, hidden)`` of one GRU layer over ``x (batch, steps, in)``."""
        batch, steps, _ = x.shape
        hidden = w_hh_t.shape[0]
        projected = x @ w_ih_t + b_ih  # every step's input rows at once: (batch, steps, 3·hidden)
        h = np.zeros((batch, hidden), dtype=_F32)
        out = np.empty((batch, steps, hidden), dtype=_F32)
        for t in range(steps):
            gi = projected[:, t, :]
            gh = h @ w_hh_t + b_hh
            r = logistic(gi[:, :hidden] + gh[:, :hidden])
            z = logistic(gi[:, hidden : 2 * hidden] + gh[:, hidden : 2 * hidden])
            n = np.tanh(gi[:, 2 * hidden :] + r * gh[:, 2 * hidden :])
            h = (_ONE - z) * n + z * h
            out[:, t, :] = h
        return out

    @staticmethod
    def _lstm_layer(
        x: np.ndarray, w_ih_t: np.ndarray, b_ih: np.ndarray, w_hh_t: np.ndarray, b_hh: np.ndarray
    ) -> np.ndarray:
        """Outputs ``(batch, steps, hidden)`` of one LSTM layer over ``x (batch, steps, in)``."""
        batch, steps, _ = x.shape
        hidden = w_hh_t.shape[0]
        projected = x @ w_ih_t + b_ih  # (batch, steps, 4·hidden), rows i, f, g, o
        h = np.zeros((batch, hidden), dtype=_F32)
        c = np.zeros((batch, hidden), dtype=_F32)
        out = np.empty((batch, steps, hidden), dtype=_F32)
        for t in range(steps):
            gates = projected[:, t, :] + (h @ w_hh_t + b_hh)
            i = logistic(gates[:, :hidden])
            f = logistic(gates[:, hidden : 2 * hidden])
            g = np.tanh(gates[:, 2 * hidden : 3 * hidden])
            o = logistic(gates[:, 3 * hidden :])
            c = f * c + i * g
            h = o * np.tanh(c)
            out[:, t, :] = h
        return out


def predict_probabilities_numpy(
    network: NumpyNetwork, samples: Samples, batch_size: int = EVAL_BATCH
) -> np.ndarray:
    """Class probabilities ``(len(samples), 3)`` (float64, columns BUY, HOLD, SELL) for
    ``samples`` (``ktrdr_worker.models.datasets.Samples``), ``batch_size`` samples at a time.

    Each batch's windows are gathered from ``samples.features`` on their own, so memory stays
    at one batch of windows however many samples there are.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1 sample, got {batch_size}")
    if samples.window != network.spec.window:
        raise ValueError(
            f"the samples have windows of {samples.window} bars, the network expects "
            f"{network.spec.window}"
        )
    ends = np.asarray(samples.ends, dtype=np.int64)
    if ends.size == 0:
        return np.zeros((0, N_CLASSES))
    offsets = np.arange(-samples.window + 1, 1, dtype=np.int64)
    return np.concatenate(
        [
            network.probabilities(samples.features[batch[:, None] + offsets[None, :]])
            for batch in (
                ends[start : start + batch_size] for start in range(0, ends.size, batch_size)
            )
        ]
    )
