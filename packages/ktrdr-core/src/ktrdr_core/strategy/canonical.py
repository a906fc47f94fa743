"""Canonical JSON form and hash of a strategy.

The canonical form is the validated strategy with every default filled in (``model_dump`` in
JSON mode: catalog defaults for indicator parameters, the resolved embargo, ints for int
parameters and floats for float ones), serialised with sorted keys, no whitespace, UTF-8 and
no NaN, together with a format tag and the ordered feature names. Sorting keys makes the hash
independent of how the file is laid out (key order, comments, quoting, flow or block style,
``14`` written as ``14`` or left to its default); adding the feature names keeps the one
ordering that does matter — memberships and inputs — in the hash.
"""

from __future__ import annotations

import hashlib
import json

from ktrdr_core.strategy.features import derive_features
from ktrdr_core.strategy.sections import StrategySections

__all__ = ["CANONICAL_FORMAT", "canonical_json", "strategy_hash"]

CANONICAL_FORMAT = "ktrdr-strategy/1"
"""Changes whenever the canonical form changes, so old and new hashes never collide."""


def canonical_json(strategy: StrategySections) -> str:
    """The canonical JSON text of a validated strategy (see module docstring)."""
    payload = {
        "format": CANONICAL_FORMAT,
        "strategy": strategy.model_dump(mode="json"),
        "feature_names": [feature.name for feature in derive_features(strategy)],
    }
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def strategy_hash(strategy: StrategySections) -> str:
    """sha256 of ``canonical_json(strategy)`` encoded as UTF-8, as 64 lower-case hex digits."""
    return hashlib.sha256(canonical_json(strategy).encode("utf-8")).hexdigest()
