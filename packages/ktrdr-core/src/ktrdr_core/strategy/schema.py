"""The strategy model: the validated sections of a file plus what is derived from them.

The sections themselves are plain data in ``ktrdr_core.strategy.sections``; the loader
(``load_strategy``) runs the cross-section checks and fills the defaults, so build a
``Strategy`` with ``load_strategy``.
"""

from __future__ import annotations

from ktrdr_core.strategy.canonical import strategy_hash
from ktrdr_core.strategy.features import FeatureSpec, derive_features
from ktrdr_core.strategy.sections import StrategySections

__all__ = ["Strategy"]


class Strategy(StrategySections):
    """A whole strategy file. Build it with ``load_strategy``; see the package docstring."""

    # -- derived values ------------------------------------------------------------------------

    @property
    def embargo_bars(self) -> int:
        """Embargo in base-timeframe bars: ``data.embargo_bars`` (filled from the label
        horizon when the file leaves it out)."""
        assert self.data.embargo_bars is not None  # filled by resolve_defaults
        return self.data.embargo_bars

    def features(self) -> list[FeatureSpec]:
        """Every model input column, in order; see ``ktrdr_core.strategy.features``."""
        return derive_features(self)

    def feature_names(self) -> list[str]:
        """Ordered feature names, e.g. ``["1h_rsi_zone_oversold", ..., "4h_atr_14_raw"]``."""
        return [feature.name for feature in self.features()]

    def strategy_hash(self) -> str:
        """sha256 (hex) of the canonical JSON form; see ``ktrdr_core.strategy.canonical``."""
        return strategy_hash(self)
