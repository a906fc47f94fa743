"""The JSON Schema export: valid JSON, names every section, carries the catalogs."""

from __future__ import annotations

import json

import pytest
import yaml

from ktrdr_core.catalog.indicators import INDICATORS
from ktrdr_core.catalog.membership import MEMBERSHIPS
from ktrdr_core.examples import list_examples, read_example
from ktrdr_core.strategy import strategy_json_schema

SECTIONS = [
    "name",
    "description",
    "data",
    "indicators",
    "fuzzy_sets",
    "inputs",
    "model",
    "training",
    "labels",
    "decisions",
    "backtest",
]


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_schema_is_json_and_names_every_section():
    schema = json.loads(json.dumps(strategy_json_schema(), allow_nan=False))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert list(schema["properties"]) == SECTIONS
    assert set(schema["required"]) == {"name", "data", "indicators", "inputs", "labels"}
    assert schema["additionalProperties"] is False
    for ref in _refs(schema):
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"]


def test_every_section_model_forbids_unknown_keys():
    defs = strategy_json_schema()["$defs"]
    for name, definition in defs.items():
        if name == "FuzzySet":  # extra keys are memberships, each a Membership
            assert definition["additionalProperties"] == {"$ref": "#/$defs/Membership"}
        elif definition.get("type") == "object":
            assert definition["additionalProperties"] is False, name


def test_schema_carries_the_catalogs():
    defs = strategy_json_schema()["$defs"]
    indicator = defs["IndicatorConfig"]
    assert indicator["properties"]["type"]["enum"] == sorted(INDICATORS)
    rsi = next(
        rule for rule in indicator["allOf"] if rule["if"]["properties"]["type"]["const"] == "rsi"
    )
    period = rsi["then"]["properties"]["params"]["properties"]["period"]
    assert (period["type"], period["minimum"], period["default"]) == ("integer", 2, 14)
    membership = defs["Membership"]
    counts = {
        rule["if"]["properties"]["type"]["const"]: rule["then"]["properties"]["params"]["minItems"]
        for rule in membership["allOf"]
    }
    assert counts == {name: len(spec.params) for name, spec in MEMBERSHIPS.items()}


@pytest.mark.parametrize("name", list_examples())
def test_examples_use_only_what_the_schema_declares(name):
    schema = strategy_json_schema()
    rules = {
        rule["if"]["properties"]["type"]["const"]: rule["then"]["properties"]["params"][
            "properties"
        ]
        for rule in schema["$defs"]["IndicatorConfig"]["allOf"]
    }
    data = yaml.safe_load(read_example(name))
    assert set(data) <= set(schema["properties"])
    for config in data["indicators"].values():
        assert set(config.get("params", {})) <= set(rules[config["type"]])


def test_each_call_returns_a_fresh_copy():
    first = strategy_json_schema()
    first["properties"].clear()
    assert list(strategy_json_schema()["properties"]) == SECTIONS
