"""Shapes of catalog entries, shared by the indicator and membership catalogs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ParamType = Literal["int", "float"]


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of an indicator: its type, default and inclusive bounds."""

    name: str
    type: ParamType
    default: int | float
    minimum: int | float
    maximum: int | float
    description: str


@dataclass(frozen=True)
class IndicatorSpec:
    """One indicator type: parameters, named outputs (column names) and a one-line description."""

    name: str
    category: Literal["trend", "momentum", "volatility", "volume"]
    description: str
    params: tuple[ParamSpec, ...] = field(default_factory=tuple)
    outputs: tuple[str, ...] = ("value",)
    # Pairs (a, b): parameter a must be strictly less than parameter b (e.g. macd fast < slow).
    less_than: tuple[tuple[str, str], ...] = ()
    # OHLCV columns the indicator reads, e.g. ("high", "low", "close", "volume").
    inputs: tuple[str, ...] = ("close",)

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)
