"""The neural networks: an MLP over one row of features, or a GRU/LSTM over a window of rows.

Every network takes a float32 tensor of shape ``(batch, window, n_features)`` (``window`` is 1
for an MLP) and returns logits of shape ``(batch, 3)`` for BUY / HOLD / SELL (the class
indices of ``ktrdr_worker.labels``). Inputs are standardised inside the network with the
training set's mean and standard deviation, held as buffers, so a saved ``state_dict`` carries
everything inference needs besides the :class:`NetworkSpec`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ktrdr_worker.models.spec import N_CLASSES, ModelSpecError, NetworkSpec

# One torch module per name in ktrdr_worker.models.spec.ACTIVATION_NAMES (a test checks).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}


class _Standardise(nn.Module):
    """(x - mean) / std with the training set's statistics, saved in the state dict."""

    def __init__(self, n_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MLPNetwork(nn.Module):
    """Dense layers over the last (only) bar of the window."""

    def __init__(self, n_features: int, spec: NetworkSpec):
        super().__init__()
        self.standardise = _Standardise(n_features)
        layers: list[nn.Module] = []
        width = n_features
        for hidden in spec.hidden_layers:
            layers += [nn.Linear(width, hidden), ACTIVATIONS[spec.activation]()]
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            width = hidden
        layers.append(nn.Linear(width, N_CLASSES))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.standardise(x[:, -1, :]))


class RecurrentNetwork(nn.Module):
    """Stacked GRU or LSTM layers over the window; the last step's state feeds a linear head."""

    def __init__(self, n_features: int, spec: NetworkSpec):
        super().__init__()
        self.standardise = _Standardise(n_features)
        cell = nn.GRU if spec.type == "gru" else nn.LSTM
        self.recurrent = nn.ModuleList()
        width = n_features
        for hidden in spec.hidden_layers:
            self.recurrent.append(cell(width, hidden, batch_first=True))
            width = hidden
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(width, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.standardise(x)
        for layer in self.recurrent:
            h, _ = layer(h)
            h = self.dropout(h)
        return self.head(h[:, -1, :])


def build_network(spec: NetworkSpec, n_features: int) -> nn.Module:
    """A fresh, randomly initialised network for ``n_features`` inputs (uses torch's global RNG)."""
    if n_features < 1:
        raise ModelSpecError(f"a network needs at least one input feature, got {n_features}")
    if spec.type == "mlp":
        return MLPNetwork(n_features, spec)
    return RecurrentNetwork(n_features, spec)


def set_standardisation(
    network: nn.Module, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> None:
    """Store the training set's per-feature mean and standard deviation in the network.

    A standard deviation of 0 (a constant feature) is stored as 1 so the feature passes as 0.
    """
    standardise = network.standardise
    mean_t = torch.as_tensor(mean, dtype=torch.float32)
    std_t = torch.as_tensor(std, dtype=torch.float32)
    std_t = torch.where(std_t > 1e-12, std_t, torch.ones_like(std_t))
    standardise.mean.copy_(mean_t)
    standardise.std.copy_(std_t)


def state_arrays(network: nn.Module) -> dict[str, np.ndarray]:
    """The network's ``state_dict`` as contiguous float32 numpy arrays (what a bundle stores)."""
    return {
        key: np.ascontiguousarray(value.detach().to("cpu").numpy())
        for key, value in network.state_dict().items()
    }


def trainable_parameters(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def network_from_state(
    spec: NetworkSpec, n_features: int, state: Mapping[str, np.ndarray]
) -> nn.Module:
    """A network of ``spec`` holding ``state`` (as stored in a bundle), on the CPU, in eval mode.

    A state that does not fit the spec exactly (a missing, extra or misshapen tensor) raises
    :class:`ModelSpecError` with torch's description of the misfit.
    """
    network = build_network(spec, n_features)
    tensors = {key: torch.from_numpy(np.array(value, copy=True)) for key, value in state.items()}
    try:
        network.load_state_dict(tensors, strict=True)
    except (RuntimeError, TypeError) as exc:
        raise ModelSpecError(f"the weights do not fit the model spec ({exc})") from None
    return network.eval()
