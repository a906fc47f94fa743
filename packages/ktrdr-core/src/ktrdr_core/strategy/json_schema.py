"""JSON Schema (draft 2020-12) of the strategy file, for editors and API documentation.

It is the pydantic schema plus what the catalogs know: the indicator types with each type's
parameters (types, bounds, defaults, descriptions), and the parameter count of each
membership type. Cross-section rules (references, embargo ≥ label horizon, unique feature
names) cannot be expressed in JSON Schema; ``validate_strategy`` checks those.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from ktrdr_core.catalog.indicators import INDICATORS
from ktrdr_core.catalog.membership import MEMBERSHIPS
from ktrdr_core.strategy.schema import Strategy
from ktrdr_core.strategy.sections import IDENTIFIER_PATTERN

__all__ = ["strategy_json_schema"]


def strategy_json_schema() -> dict[str, Any]:
    """The JSON Schema of a strategy file as a JSON-ready dict (a fresh copy each call)."""
    return copy.deepcopy(_build())


@cache
def _build() -> dict[str, Any]:
    schema = Strategy.model_json_schema(mode="validation")
    defs = schema["$defs"]

    indicator = defs["IndicatorConfig"]
    indicator["properties"]["type"]["enum"] = sorted(INDICATORS)
    indicator["allOf"] = [
        {
            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
            "then": {
                "properties": {
                    "params": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            p.name: {
                                "type": "integer" if p.type == "int" else "number",
                                "minimum": p.minimum,
                                "maximum": p.maximum,
                                "default": p.default,
                                "description": p.description,
                            }
                            for p in spec.params
                        },
                    }
                }
            },
        }
        for name, spec in sorted(INDICATORS.items())
    ]

    membership = defs["Membership"]
    membership["allOf"] = [
        {
            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
            "then": {
                "properties": {
                    "params": {
                        "description": f"{name} [{', '.join(spec.param_names)}]: {spec.constraint}",
                        "minItems": len(spec.params),
                        "maxItems": len(spec.params),
                        "prefixItems": [
                            {
                                "type": ["number", "null"] if p.nullable else "number",
                                "description": p.description,
                            }
                            for p in spec.params
                        ],
                    }
                }
            },
        }
        for name, spec in MEMBERSHIPS.items()
    ]

    fuzzy_set = defs["FuzzySet"]
    fuzzy_set["propertyNames"] = {
        "anyOf": [{"const": "indicator"}, {"pattern": IDENTIFIER_PATTERN}]
    }
    fuzzy_set["description"] = (
        "A fuzzy set: `indicator` names the indicator output it reads; every other key is a "
        "membership name mapped to {type, params}."
    )

    labels = defs["LabelsConfig"]
    labels["minProperties"] = 1
    labels["maxProperties"] = 1

    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ktrdr strategy"
    return schema
