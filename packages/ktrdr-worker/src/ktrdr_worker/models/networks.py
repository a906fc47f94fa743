"""The neural networks: an MLP over one row of features, or a GRU/LSTM over a window of rows.

Every network takes a float32 tensor of shape ``(batch, window, n_features)`` (``window`` is 1
for an MLP) and returns logits of shape ``(batch, 3)`` for BUY / HOLD / SELL (the class
indices of ``ktrdr_worker.labels``). Inputs are standardised inside the network with the
training set's mean and standard deviation, held as buffers, so a saved ``state_dict`` carries
everything inference needs besides the :class:`NetworkSpec`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ktrdr_core.errors import KtrdrError

N_CLASSES = 3
NETWORK_TYPES = ("mlp", "gru", "lstm")
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}


class ModelSpecError(KtrdrError, ValueError):
    """A model description that cannot be built; the message names the field."""


@dataclass(frozen=True)
class NetworkSpec:
    """What to build, in plain values (stored in every bundle).

    Attributes:
        type: ``mlp``, ``gru`` or ``lstm``.
        hidden_layers: widths of the hidden layers (MLP: dense layers; GRU/LSTM: stacked
            recurrent layers, followed by a linear output layer).
        activation: MLP activation (one of :data:`ACTIVATIONS`); unused by GRU/LSTM.
        dropout: dropout probability in [0, 1) after each hidden layer.
        window: bars of features each sample sees (1 for an MLP; ≥ 2 makes sense for GRU/LSTM).
    """

    type: str = "mlp"
    hidden_layers: tuple[int, ...] = field(default=(32, 16))
    activation: str = "relu"
    dropout: float = 0.1
    window: int = 1

    def __post_init__(self) -> None:
        if self.type not in NETWORK_TYPES:
            raise ModelSpecError(
                f"model.type: expected one of {', '.join(NETWORK_TYPES)}, got {self.type!r}"
            )
        layers = tuple(self.hidden_layers)
        if not layers or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in layers
        ):
            raise ModelSpecError(
                f"model.hidden_layers: expected one or more positive integers, got {layers!r}"
            )
        object.__setattr__(self, "hidden_layers", layers)
        if self.activation not in ACTIVATIONS:
            raise ModelSpecError(
                f"model.activation: expected one of {', '.join(ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )
        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, int | float):
            raise ModelSpecError(f"model.dropout: expected a number in [0, 1), got {dropout!r}")
        if not (math.isfinite(dropout) and 0.0 <= dropout < 1.0):
            raise ModelSpecError(f"model.dropout: expected a number in [0, 1), got {dropout!r}")
        window = self.window
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ModelSpecError(f"model.window: expected an integer ≥ 1 (bars), got {window!r}")
        if self.type == "mlp" and window != 1:
            # An MLP over a window would silently flatten time; say so instead.
            raise ModelSpecError(
                f"model.window: an mlp sees one bar (window 1), got {window}; "
                "use type gru or lstm for a window of bars"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkSpec:
        """Build from a plain dict (a strategy's ``model`` section or a bundle's copy).

        Unknown keys are an error naming the key, never silently dropped.
        """
        known = {"type", "hidden_layers", "activation", "dropout", "window"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelSpecError(
                f"model.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})"
            )
        values = dict(data)
        if "hidden_layers" in values:
            values["hidden_layers"] = tuple(values["hidden_layers"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict (lists, not tuples)."""
        data = asdict(self)
        data["hidden_layers"] = list(self.hidden_layers)
        return data


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
