"""What network a model is, in plain values: the ``model`` section as a spec (no torch).

Both the torch networks (``ktrdr_worker.models.networks``, for training) and the numpy forward
pass (``ktrdr_worker.models.forward``, for inference without torch) are built from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ktrdr_core.errors import KtrdrError

N_CLASSES = 3
NETWORK_TYPES = ("mlp", "gru", "lstm")
# Activation names a model section may use; torch and numpy each map them to their own function
# (ktrdr_worker.models.networks and ktrdr_worker.models.forward), with torch's default parameters.
ACTIVATION_NAMES = ("relu", "gelu", "tanh", "silu", "leaky_relu", "elu")


class ModelSpecError(KtrdrError, ValueError):
    """A model description that cannot be built; the message names the field."""


@dataclass(frozen=True)
class NetworkSpec:
    """What to build, in plain values (stored in every bundle).

    Attributes:
        type: ``mlp``, ``gru`` or ``lstm``.
        hidden_layers: widths of the hidden layers (MLP: dense layers; GRU/LSTM: stacked
            recurrent layers, followed by a linear output layer).
        activation: MLP activation (one of :data:`ACTIVATION_NAMES`); unused by GRU/LSTM.
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
        if self.activation not in ACTIVATION_NAMES:
            raise ModelSpecError(
                f"model.activation: expected one of {', '.join(ACTIVATION_NAMES)}, "
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
