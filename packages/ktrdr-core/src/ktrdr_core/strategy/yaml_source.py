"""Safe YAML reading for strategy files, keeping the line of every key.

Built on ``yaml.SafeLoader``'s parser and composer (libyaml's ``CSafeLoader`` when
available); the node tree is then turned into plain data here, which is what makes these
guarantees possible:

- only plain data: mappings, lists, strings, numbers, booleans, null. Any other tag
  (``!!python/object``, ``!custom``, ``!!binary``, ``!!set``…) is an error, never constructed;
- booleans are YAML 1.2's ``true``/``false`` only, so ``NO`` or ``on`` stay text (the
  "Norway problem"); dates stay text for the schema to parse;
- bounded input: at most ``MAX_FILE_BYTES`` of UTF-8, at most ``MAX_NODES`` values after alias
  expansion (a "billion laughs" file stops there), at most ``MAX_DEPTH`` levels of nesting,
  and no recursive aliases;
- a key written twice in one mapping is an error (PyYAML would silently keep the last);
- anchors, aliases and merge keys (``<<: *defaults``) work within those bounds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ktrdr_core.strategy.issues import Path

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "ParsedYaml", "parse_yaml"]

MAX_FILE_BYTES = 1024 * 1024
"""Largest strategy file accepted: 1 MiB (real ones are a few KiB)."""

MAX_NODES = 100_000
"""Most values (scalars, lists, mappings) a file may expand to, aliases counted each time."""

MAX_DEPTH = 64
"""Deepest nesting of lists/mappings (a strategy needs about 5)."""

_TAG = "tag:yaml.org,2002:"
_MERGE = _TAG + "merge"


# libyaml's SafeLoader when present: it reads a 1 MiB file in about a second rather than ten,
# and caps nesting at 1000 levels itself. The pure-Python one gives identical results.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrategyYamlLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """SafeLoader with YAML 1.2 booleans and exponent floats; used only to parse and compose,
    never to construct."""


# Rebuild the implicit resolvers without YAML 1.1's yes/no/on/off booleans.
_StrategyYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TAG + "bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrategyYamlLoader.add_implicit_resolver(
    _TAG + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# YAML 1.2 floats in exponent form (1e-05, 2E+3, 1.5e3), which YAML 1.1 reads as text: JSON
# writes small numbers so, and the backend hands workers an overridden strategy as JSON.
_StrategyYamlLoader.add_implicit_resolver(
    _TAG + "float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@dataclass
class ParsedYaml:
    """Result of parsing: ``data`` (None when the text does not parse), the 1-based line of
    each key path (the key's line inside a mapping, the item's line inside a list), and
    problems found while reading, as ``(path, message, line)``."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[tuple[Path, str, int | None]] = field(default_factory=list)


def _line_text(text: str, index: int) -> str:
    """The ``index``-th (0-based) line of ``text``, or '' past the end."""
    lines = text.splitlines()
    return lines[index] if 0 <= index < len(lines) else ""


def _control_characters(value: str) -> list[str]:
    """Control characters other than tab and line ends in ``value``, as ``U+XXXX``."""
    return sorted(
        {f"U+{ord(c):04X}" for c in value if (ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127}
    )


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


def parse_yaml(text: str) -> ParsedYaml:
    """Parse one YAML document into plain data with line numbers, within the bounds above.

    In: the file's text. Out: ``ParsedYaml``; problems never raise.
    """
    size = len(text.encode("utf-8"))
    if size > MAX_FILE_BYTES:
        return ParsedYaml(
            None,
            problems=[
                (
                    (),
                    f"file is {size} bytes; strategy files are limited to "
                    f"{MAX_FILE_BYTES} bytes (1 MiB)",
                    None,
                )
            ],
        )
    loader = _StrategyYamlLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        parts = [p for p in (exc.context, exc.problem) if p]
        message = "invalid YAML: " + ", ".join(parts)
        if mark is not None and "\t" in _line_text(text, mark.line):
            message += " (this line holds a tab: YAML indents with spaces only)"
        return ParsedYaml(None, problems=[((), message, mark.line + 1 if mark else None)])
    except yaml.reader.ReaderError as exc:
        # A character YAML refuses (control characters): no mark, but a position.
        line = text.count("\n", 0, exc.position) + 1
        shown = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        message = f"invalid YAML: character {shown} is not allowed ({exc.reason}); remove it"
        return ParsedYaml(None, problems=[((), message, line)])
    except yaml.YAMLError as exc:
        return ParsedYaml(None, problems=[((), f"invalid YAML: {exc}", None)])
    except RecursionError:
        return ParsedYaml(
            None,
            problems=[
                (
                    (),
                    "invalid YAML: nested too deeply for the reader (a strategy needs "
                    f"about 5 levels; at most {MAX_DEPTH} are accepted)",
                    None,
                )
            ],
        )
    finally:
        loader.dispose()
    if node is None:
        return ParsedYaml(
            None,
            problems=[
                (
                    (),
                    "file is empty; expected a mapping of sections "
                    "(name, data, indicators, fuzzy_sets, inputs, labels, ...)",
                    None,
                )
            ],
        )
    builder = _Builder(loader)
    data = builder.build(node, (), 0)
    return ParsedYaml(data, builder.lines, builder.problems)


class _Builder:
    """Turns composed nodes into plain data, recording lines and problems."""

    def __init__(self, loader: _StrategyYamlLoader):
        self.loader = loader
        self.lines: dict[Path, int] = {}
        self.problems: list[tuple[Path, str, int | None]] = []
        self.nodes = 0
        self.exhausted = False
        self.active: set[int] = set()

    def problem(self, path: Path, message: str, node: Node) -> None:
        self.problems.append((path, message, node.start_mark.line + 1))

    def build(self, node: Node, path: Path, depth: int) -> Any:
        if self.exhausted:
            return None
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.exhausted = True
            self.problem(
                path,
                f"file expands to more than {MAX_NODES} values (an alias counts again each "
                "time it is used); a strategy has a few hundred, so this is refused",
                node,
            )
            return None
        if depth > MAX_DEPTH:
            self.problem(path, f"nested deeper than {MAX_DEPTH} levels", node)
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            self.problem(path, "an alias refers to a value that contains it (recursive)", node)
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return self.sequence(node, path, depth)
            assert isinstance(node, MappingNode)
            return self.mapping(node, path, depth)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        tag = node.tag
        try:
            if tag == _TAG + "str":
                # YAML refuses these characters written raw; an escape ("\\0") would let a NUL
                # through into names, hashes and the database (PostgreSQL text cannot hold it).
                bad = _control_characters(node.value)
                if bad:
                    self.problem(
                        path,
                        f"text holds control character(s) {', '.join(bad)}; strategy files "
                        "hold printable text only",
                        node,
                    )
                    return None
                return node.value
            if tag == _TAG + "null":
                return None
            if tag == _TAG + "bool":
                return self.loader.construct_yaml_bool(node)
            if tag == _TAG + "int":
                return self.loader.construct_yaml_int(node)
            if tag == _TAG + "float":
                return self.loader.construct_yaml_float(node)
            if tag == _TAG + "timestamp":
                return node.value  # the schema parses dates from text
        except (ValueError, KeyError) as exc:
            shown = node.value if len(node.value) <= 40 else node.value[:40] + "…"
            self.problem(path, f"cannot read {shown!r} as {_show_tag(tag)}: {exc}", node)
            return None
        self.problem(path, _tag_message(tag), node)
        return None

    def sequence(self, node: SequenceNode, path: Path, depth: int) -> list[Any]:
        if node.tag != _TAG + "seq":
            self.problem(path, _tag_message(node.tag), node)
            return []
        items = []
        for index, item in enumerate(node.value):
            item_path = (*path, index)
            self.lines.setdefault(item_path, item.start_mark.line + 1)
            items.append(self.build(item, item_path, depth + 1))
        return items

    def mapping(self, node: MappingNode, path: Path, depth: int) -> dict[str, Any]:
        if node.tag != _TAG + "map":
            self.problem(path, _tag_message(node.tag), node)
            return {}
        result: dict[str, Any] = {}
        # Merge keys first: explicit keys override merged ones, and merged keys come first in
        # order, as PyYAML's own loader does.
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for key, value in self.merged(value_node, path, depth).items():
                    result.setdefault(key, value)
        explicit: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.key(key_node, path)
            if key is None:
                continue
            line = key_node.start_mark.line + 1
            if key in explicit:
                self.problem(
                    (*path, key),
                    f"duplicate key {key!r} (first written on line {explicit[key]}); "
                    "each key may appear once in a mapping",
                    key_node,
                )
                continue
            explicit[key] = line
            self.lines[(*path, key)] = line
            result[key] = self.build(value_node, (*path, key), depth + 1)
        return result

    def merged(self, node: Node, path: Path, depth: int) -> dict[str, Any]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in sources:
            if not isinstance(source, MappingNode):
                self.problem(path, "a merge key (<<) needs a mapping or a list of mappings", source)
                continue
            value = self.build(source, path, depth + 1)
            if isinstance(value, dict):
                for key, item in value.items():
                    merged.setdefault(key, item)
        return merged

    def key(self, node: Node, path: Path) -> str | None:
        if not isinstance(node, ScalarNode):
            self.problem(path, "keys must be plain text, not a list or mapping", node)
            return None
        if node.tag not in {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}:
            self.problem(path, _tag_message(node.tag), node)
            return None
        self.nodes += 1
        return str(node.value)  # keys are names: taken as written ("1h", "null", "14")


def _tag_message(tag: str) -> str:
    return (
        f"YAML tag {_show_tag(tag)} is not allowed: strategy files hold plain data only "
        "(mappings, lists, text, numbers, true/false, null)"
    )
