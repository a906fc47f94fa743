"""Market-data providers: where a data-fetch operation gets its bars.

``make_provider(name, env)`` builds one from the worker's environment; each provider's module
says which variables it reads. ``ktrdr_core.protocol.DATA_PROVIDERS`` lists the names the
backend accepts; every one of them has an entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ktrdr_core.protocol import DATA_PROVIDERS
from ktrdr_worker.providers.base import Bar, Provider, ProviderError

__all__ = ["Bar", "Provider", "ProviderError", "make_provider"]


def make_provider(name: str, env: Mapping[str, str], **kwargs: Any) -> Provider:
    """The provider called ``name``, configured from ``env``; ProviderError when unknown."""
    if name == "binance":
        from ktrdr_worker.providers.binance import BinanceProvider

        return BinanceProvider.from_env(env, **kwargs)
    if name == "ib":
        from ktrdr_worker.providers.ib import IbProvider

        return IbProvider.from_env(env, **kwargs)
    raise ProviderError(f"unknown provider {name!r}; known: {', '.join(DATA_PROVIDERS)}")
