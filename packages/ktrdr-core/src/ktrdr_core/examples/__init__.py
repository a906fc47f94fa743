"""Example strategy files shipped with ktrdr-core (package data, so pip-only users have them).

- ``rsi_zones``: one timeframe, fuzzy RSI zones, zigzag labels, MLP;
- ``macd_bollinger_mtf``: MACD + Bollinger position on 1h and 4h, forward-return labels, GRU;
- ``volatility_triple_barrier``: normalised ATR, squeeze and ADX on 4h and 1d,
  triple-barrier labels, LSTM.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ktrdr_core.strategy.schema import Strategy

__all__ = ["list_examples", "load_example", "read_example"]

_SUFFIX = ".yaml"


def list_examples() -> list[str]:
    """Names of the shipped examples (file names without ``.yaml``), sorted."""
    return sorted(
        entry.name[: -len(_SUFFIX)]
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(_SUFFIX) and entry.is_file()
    )


def read_example(name: str) -> str:
    """The YAML text of example ``name`` (see ``list_examples``); ValueError if unknown."""
    known = list_examples()
    if name not in known:
        raise ValueError(f"unknown example strategy {name!r}; available: {', '.join(known)}")
    return resources.files(__name__).joinpath(name + _SUFFIX).read_text(encoding="utf-8")


def load_example(name: str) -> Strategy:
    """Example ``name`` loaded and validated with ``load_strategy``."""
    from ktrdr_core.strategy.loading import load_strategy

    return load_strategy(read_example(name), filename=f"ktrdr_core/examples/{name}{_SUFFIX}")
