"""``load_strategy`` and ``validate_strategy``: every problem of a file in one pass.

A file goes through three stages and the problems of all three are gathered before anything
is reported: safe YAML reading (``yaml_source``), the pydantic schema (``schema``), and the
cross-section checks (``consistency``). Each problem carries its key path, the file and the
line of that key, and a message saying what was expected and what was got.
"""

from __future__ import annotations

import difflib
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path as FilePath
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from ktrdr_core.strategy.consistency import check_data, resolve_defaults
from ktrdr_core.strategy.features import check_feature_names
from ktrdr_core.strategy.issues import Path, StrategyError, StrategyProblem, format_path
from ktrdr_core.strategy.schema import Strategy
from ktrdr_core.strategy.sections import (
    IDENTIFIER_PATTERN,
    NAME_PATTERN,
    REFERENCE_PATTERN,
    SYMBOL_PATTERN,
    FuzzySet,
    Membership,
)
from ktrdr_core.strategy.yaml_source import MAX_FILE_BYTES, parse_yaml

__all__ = ["StrategySource", "load_strategy", "validate_strategy"]

StrategySource = str | bytes | os.PathLike[str] | Mapping[str, Any]

_PATTERN_WORDS = {
    IDENTIFIER_PATTERN: (
        "a name of lower-case letters, digits and underscores starting with a letter (at most 64)"
    ),
    REFERENCE_PATTERN: "an indicator reference `id` or `id.output` (e.g. macd_fast.hist)",
    NAME_PATTERN: "a name of letters, digits, `_`, `.` and `-` without spaces (at most 64)",
    SYMBOL_PATTERN: "a symbol of letters, digits and `.` `_` `=` `-` (e.g. AAPL, BRK.B, ^GSPC)",
}


def validate_strategy(
    source: StrategySource, *, filename: str | None = None
) -> list[StrategyProblem]:
    """Check a strategy and return every problem found (empty when it is valid).

    In: a file path (``pathlib.Path`` or any ``os.PathLike``, or a ``str`` without a newline),
    YAML text (a ``str`` containing a newline, or ``bytes``), or an already-parsed mapping
    (e.g. a JSON request body; its issues have no line numbers). ``filename`` names text
    input in messages. Out: issues in file order; never raises for a bad strategy.
    """
    _, issues = _run(source, filename)
    return issues


def load_strategy(source: StrategySource, *, filename: str | None = None) -> Strategy:
    """Read and validate a strategy (same inputs as ``validate_strategy``).

    Out: the validated ``Strategy`` with defaults filled in (catalog defaults for indicator
    parameters, the label horizon for a missing embargo). Raises ``StrategyError`` carrying
    every issue when there is any.
    """
    strategy, issues = _run(source, filename)
    if issues or strategy is None:
        raise StrategyError(issues, source=_describe(source, filename))
    return strategy


def _describe(source: StrategySource, filename: str | None) -> str | None:
    if filename:
        return filename
    if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source):
        return os.fspath(source)
    return None


def _read(source: StrategySource, filename: str | None) -> tuple[Any, str | None, list[Any]]:
    """Turn any accepted source into (text or mapping, file name, early problems)."""
    if isinstance(source, Mapping):
        return source, filename, []
    if isinstance(source, bytes):
        return _decode(source, filename)
    if isinstance(source, str) and "\n" in source:
        return source, filename, []
    if isinstance(source, str | os.PathLike):
        path = FilePath(os.fspath(source))
        name = filename or str(path)
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                message = (
                    f"file is {size} bytes; strategy files are limited to {MAX_FILE_BYTES} "
                    "bytes (1 MiB)"
                )
                return None, name, [((), message, None)]
            with path.open("rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            hint = (
                " (a str without a newline is read as a file path; pass YAML text with its "
                "newlines)"
                if isinstance(source, str)
                else ""
            )
            message = f"cannot read the strategy file: {exc.strerror or exc}{hint}"
            return None, name, [((), message, None)]
        return _decode(raw, name)
    raise TypeError(f"expected a path, YAML text or a mapping, got {type(source).__name__}")


def _decode(raw: bytes, name: str | None) -> tuple[Any, str | None, list[Any]]:
    try:
        return raw.decode("utf-8-sig"), name, []
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"file is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
        return None, name, [((), message, line)]


def _run(
    source: StrategySource, filename: str | None
) -> tuple[Strategy | None, list[StrategyProblem]]:
    content, name, read_problems = _read(source, filename)
    lines: dict[Path, int] = {}
    data: Any = None
    if isinstance(content, str):
        parsed = parse_yaml(content)
        data, lines = parsed.data, parsed.lines
        read_problems.extend(parsed.problems)
    elif content is not None:
        data = content

    strategy: Strategy | None = None
    problems: list[tuple[Path, str]] = []
    if data is not None and not isinstance(data, Mapping):
        problems.append(
            (
                (),
                "expected a mapping of sections (name: ..., data: ..., ...) at the top "
                f"level, got {_kind(data)}",
            )
        )
    elif data is not None:
        try:
            strategy = Strategy.model_validate(data)
            # Fills what the file may leave out; parts that do not resolve carry a problem below.
            resolve_defaults(strategy)
        except ValidationError as exc:
            problems.extend(_convert(error) for error in exc.errors(include_url=False))
        consistency = check_data(data)
        # An unknown parameter is the whole story: its value's type does not matter.
        unknown = {path for path, message in consistency if message.startswith("unknown ")}
        problems = [(path, message) for path, message in problems if path not in unknown]
        problems.extend(consistency)
        if strategy is not None and not consistency and not read_problems:
            problems.extend(check_feature_names(strategy))

    # A value the YAML reader refused reaches the schema as null: report it once, as read.
    refused = [path for path, _, _ in read_problems]
    problems = [
        (path, message)
        for path, message in problems
        if not any(path[: len(r)] == r for r in refused)
    ]
    issues: list[StrategyProblem] = []
    seen: set[tuple[str, str]] = set()
    for path, message, line in [*read_problems, *((p, m, None) for p, m in problems)]:
        text_path = format_path(path)
        if (text_path, message) in seen:
            continue
        seen.add((text_path, message))
        issues.append(StrategyProblem(text_path, message, name, line or _line(lines, path)))
    # File order; issues without a line (missing sections, mapping input) come after, in the
    # order found.
    order = {id(issue): index for index, issue in enumerate(issues)}
    issues.sort(key=lambda i: (i.line if i.line is not None else math.inf, order[id(i)]))
    return (strategy if not issues else None), issues


def _line(lines: dict[Path, int], path: Path) -> int | None:
    """Line of the key at ``path``, else of its nearest written ancestor (a missing key is
    reported on the line of the mapping that lacks it)."""
    for end in range(len(path), 0, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


# --------------------------------------------------------------------------------------------
# pydantic errors → (path, message)


def _convert(error: Any) -> tuple[Path, str]:
    loc: Path = tuple(part for part in error["loc"] if part != "[key]")
    kind: str = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if "[key]" in error["loc"]:
        return loc, _key_message(value, ctx)
    if kind == "missing":
        return loc, _missing_message(loc)
    if kind == "extra_forbidden":
        return loc, _unknown_key_message(loc)
    if kind in {"value_error", "assertion_error"}:
        return loc, str(ctx.get("error", error["msg"]))
    parent = _model_at(loc[:-1])
    if parent is FuzzySet and kind in {"model_type", "dict_type"}:
        hint = difflib.get_close_matches(str(loc[-1]), ["indicator"], n=1, cutoff=0.6)
        did_you_mean = " (did you mean 'indicator'?)" if hint else ""
        return loc, (
            f"expected a membership {{type: ..., params: [...]}}{did_you_mean}: every key of a "
            f"fuzzy set other than `indicator` names a membership; got {_show(value)}"
        )
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        return loc, f"expected a mapping (key: value), got {_kind(value)} {_show(value)}"
    if kind == "list_type":
        return loc, f"expected a list, got {_kind(value)} {_show(value)}"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        words = _PATTERN_WORDS.get(pattern, f"text matching {pattern}")
        return loc, f"expected {words}, got {_show(value)}"
    if kind == "too_short":
        return loc, (
            f"expected at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"
        )
    if kind == "too_long":
        return loc, (
            f"expected at most {ctx.get('max_length')} item(s), got {ctx.get('actual_length')}"
        )
    message = str(error["msg"])
    if message.startswith("Input should be "):
        message = "expected " + message[len("Input should be ") :]
    elif message:
        message = message[0].lower() + message[1:]
    return loc, f"{message}, got {_show(value)}"


def _missing_message(loc: Path) -> str:
    model = _model_at(loc[:-1])
    field = model.model_fields.get(str(loc[-1])) if model is not None else None
    what = f" ({field.description.rstrip('.')})" if field is not None and field.description else ""
    return f"required key {loc[-1]!r} is missing{what}"


def _key_message(key: Any, ctx: Mapping[str, Any]) -> str:
    pattern = ctx.get("pattern", "")
    words = _PATTERN_WORDS.get(pattern, f"text matching {pattern}")
    return f"name {key!r} is not allowed: expected {words}"


def _unknown_key_message(loc: Path) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    allowed = list(model.model_fields) if model is not None else []
    hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
    expected = f"; expected one of: {', '.join(allowed)}" if allowed else ""
    return f"unknown key {key!r}{did_you_mean}{expected}"


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _model_at(path: Path) -> type[BaseModel] | None:
    """The schema model that describes the value at ``path`` (None for non-model values)."""
    current: Any = Strategy
    for part in path:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is not None:
                current = field.annotation
            elif current is FuzzySet:
                current = Membership
            else:
                return None
        elif typing.get_origin(current) is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def _show(value: Any, limit: int = 80) -> str:
    """A value as the user would have written it in YAML, shortened."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(_show(v, limit) for v in value) + "]"
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{k}: {_show(v, limit)}" for k, v in value.items()) + "}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
