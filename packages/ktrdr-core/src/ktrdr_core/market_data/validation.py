"""Validate and normalise OHLCV CSV files (standard library only: the backend runs this on upload).

The canonical file
------------------
One file per symbol and timeframe, UTF-8, header ``timestamp,open,high,low,close,volume``,
one bar per line, oldest first::

    timestamp,open,high,low,close,volume
    2024-01-02T14:00:00Z,187.15,188.44,183.89,185.64,82488700

``timestamp`` is the bar's OPEN time in UTC (ISO-8601 with ``Z``); the bar covers
``[timestamp, timestamp + timeframe)``. Prices are decimal numbers, volume is a
non-negative number (``0`` when unknown).

Accepted variants (normalised, and reported in ``ValidationResult.notes``)
--------------------------------------------------------------------------
- columns in any order and any letter case; surrounding spaces in names ignored;
- the time column may be called ``timestamp``, ``datetime``, ``date`` or ``time`` (a file
  with both ``date`` and ``time`` is ambiguous and rejected); a pandas-style unnamed first
  column (empty header cell) is taken as the time column;
- extra columns (``adj close``, ``symbol``, …) are ignored;
- timestamps as ISO-8601 with ``Z`` or an offset (converted to UTC), naive ISO-8601 (read as
  UTC), dates alone (``2024-01-02`` = 00:00 UTC), or epoch seconds / milliseconds told apart
  by magnitude (seconds below 1e11, milliseconds from 1e11 to 1e14; values below 1e8, i.e.
  before 1973-03-03 in seconds, are rejected because an 8-digit date such as ``20240102``
  would otherwise pass as epoch seconds);
- blank lines are skipped.

Rules (``Issue.rule``), each reported with its 1-based line number in the file
-----------------------------------------------------------------------------
See ``RULES``. Every row is checked and every error counted; the first ``max_errors`` are
kept as ``Issue`` values, the rest are only counted (``error_count``, ``error_counts``).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ktrdr_core.timeframes import Timeframe, bar_seconds, parse_timeframe, timeframe_named

__all__ = [
    "CANONICAL_COLUMNS",
    "CANONICAL_HEADER",
    "RULES",
    "Issue",
    "OHLCVValidationError",
    "ValidationResult",
    "format_timestamp",
    "normalise",
    "validate_ohlcv_csv",
]

CANONICAL_COLUMNS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")
CANONICAL_HEADER = ",".join(CANONICAL_COLUMNS)

RULES: dict[str, str] = {
    "source": "the file can be read (exists, is not empty)",
    "encoding": "the file is UTF-8 text (no NUL characters)",
    "csv_syntax": "the file is well-formed CSV (quotes closed, no field over 128 KiB)",
    "header": "the first line is a header naming the columns",
    "missing_column": "the header has timestamp, open, high, low, close and volume",
    "duplicate_column": "no required column appears twice in the header",
    "field_count": "every row has as many fields as the header",
    "timestamp_format": "the timestamp is ISO-8601 or epoch seconds/milliseconds",
    "timestamp_mixed_format": "all timestamps use one format (ISO-8601 or one epoch unit)",
    "timestamp_mixed_tz": "timestamps are either all naive (UTC) or all carry an offset",
    "timestamp_order": "timestamps strictly increase from one row to the next",
    "duplicate_timestamp": "no timestamp appears twice",
    "timestamp_alignment": "each timestamp is a bar open of the timeframe",
    "timeframe_mismatch": "some consecutive bars are one timeframe apart (the file holds bars "
    "of the timeframe given, not of a longer one)",
    "price_format": "open, high, low and close are numbers",
    "price_not_finite": "prices are finite (no nan, inf)",
    "price_not_positive": "prices are greater than zero",
    "ohlc_consistency": "low <= open, close <= high",
    "volume_format": "volume is a number",
    "volume_not_finite": "volume is finite",
    "volume_negative": "volume is zero or more",
}

# Header spellings accepted for the time column, best first.
_TIME_NAMES = ("timestamp", "datetime", "date", "time")
_PRICE_NAMES = ("open", "high", "low", "close")

_EPOCH_AWARE = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_S_MIN = 100_000_000  # 1973-03-03 in seconds; smaller numbers are not read as epochs
_EPOCH_MS_MIN = 100_000_000_000  # 1e11: from here on a number is epoch milliseconds
_EPOCH_MS_MAX = 100_000_000_000_000  # 1e14 ms = year 5138: larger is neither unit


@dataclass(frozen=True, slots=True)
class Issue:
    """One broken rule: where (1-based file ``line``, ``column`` name) and what."""

    line: int | None
    rule: str
    message: str
    column: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        return f"{where} [{self.rule}]: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``line``, ``rule``, ``message``, ``column``."""
        return {
            "line": self.line,
            "rule": self.rule,
            "message": self.message,
            "column": self.column,
        }


def format_timestamp(epoch_s: int) -> str:
    """Canonical text of an epoch-seconds bar open: ``2024-01-02T14:00:00Z``."""
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ValidationResult:
    """Outcome of ``validate_ohlcv_csv``.

    ``row_count`` counts the data rows read (header and blank lines excluded). When ``ok``,
    the normalised bars are held column-wise: ``timestamps`` (epoch seconds, UTC, bar open)
    and ``open``/``high``/``low``/``close``/``volume`` (floats); when not ``ok`` those arrays
    are empty, so a broken file cannot be used by mistake.
    """

    source: str
    timeframe: Timeframe | None
    row_count: int = 0
    issues: list[Issue] = field(default_factory=list)
    error_count: int = 0
    error_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    timestamps: array = field(default_factory=lambda: array("q"))
    open: array = field(default_factory=lambda: array("d"))
    high: array = field(default_factory=lambda: array("d"))
    low: array = field(default_factory=lambda: array("d"))
    close: array = field(default_factory=lambda: array("d"))
    volume: array = field(default_factory=lambda: array("d"))

    @property
    def ok(self) -> bool:
        """True when no rule was broken."""
        return self.error_count == 0

    @property
    def first(self) -> datetime | None:
        """Open time (aware UTC) of the first bar, or None when there is none / not ok."""
        return datetime.fromtimestamp(self.timestamps[0], tz=UTC) if self.timestamps else None

    @property
    def last(self) -> datetime | None:
        """Open time (aware UTC) of the last bar, or None when there is none / not ok."""
        return datetime.fromtimestamp(self.timestamps[-1], tz=UTC) if self.timestamps else None

    def raise_for_errors(self) -> None:
        """Raise ``OHLCVValidationError`` (carrying every kept issue) when not ``ok``."""
        if not self.ok:
            raise OHLCVValidationError(self)

    def rows(self) -> Iterator[tuple[datetime, float, float, float, float, float]]:
        """Yield ``(open_time_utc, open, high, low, close, volume)`` per bar; needs ``ok``."""
        self.raise_for_errors()
        for i, ts in enumerate(self.timestamps):
            yield (
                datetime.fromtimestamp(ts, tz=UTC),
                self.open[i],
                self.high[i],
                self.low[i],
                self.close[i],
                self.volume[i],
            )

    def canonical_csv(self) -> str:
        """The bars as canonical CSV text (header + one ``\\n``-terminated line per bar).

        Numbers are written as the shortest text that reads back to the same float, without
        a trailing ``.0`` (``100`` rather than ``100.0``), so equal data gives equal bytes.
        Raises ``OHLCVValidationError`` when not ``ok``.
        """
        self.raise_for_errors()
        # Column at a time with C-level map/zip: about twice as fast as a per-row f-string.
        columns = [
            list(map(str.removesuffix, map(repr, values), itertools.repeat(".0")))
            for values in (self.open, self.high, self.low, self.close, self.volume)
        ]
        stamps = _timestamp_texts(self.timestamps)
        lines = map(",".join, zip(stamps, *columns, strict=True))
        return CANONICAL_HEADER + "\n" + "".join(line + "\n" for line in lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no bar data): counts, first/last, issues, notes, columns."""
        first, last = self.first, self.last
        return {
            "source": self.source,
            "timeframe": self.timeframe.value if self.timeframe else None,
            "ok": self.ok,
            "row_count": self.row_count,
            "bar_count": len(self.timestamps),
            "first": format_timestamp(self.timestamps[0]) if first else None,
            "last": format_timestamp(self.timestamps[-1]) if last else None,
            "error_count": self.error_count,
            "error_counts": dict(self.error_counts),
            "issues": [issue.to_dict() for issue in self.issues],
            "notes": list(self.notes),
            "columns": dict(self.columns),
        }


class OHLCVValidationError(ValueError):
    """An OHLCV file broke one or more rules. Carries them all.

    ``issues`` holds the first ``max_errors`` issues (line, rule, message), ``error_count``
    the total, ``error_counts`` the total per rule, ``result`` the full ``ValidationResult``.
    """

    def __init__(self, result: ValidationResult) -> None:
        self.result = result
        self.issues = list(result.issues)
        self.error_count = result.error_count
        self.error_counts = dict(result.error_counts)
        per_rule = ", ".join(f"{rule}: {n}" for rule, n in self.error_counts.items())
        lines = [
            f"{result.source}: {self.error_count} error(s) in OHLCV data ({per_rule})",
            *(f"  {issue}" for issue in self.issues),
        ]
        hidden = self.error_count - len(self.issues)
        if hidden > 0:
            lines.append(f"  … and {hidden} more")
        super().__init__("\n".join(lines))


def validate_ohlcv_csv(
    source: str | bytes | os.PathLike[str],
    timeframe: Timeframe | str | None,
    *,
    max_errors: int = 100,
) -> ValidationResult:
    """Check an OHLCV CSV against every rule in ``RULES`` and normalise it.

    ``source``: CSV text (a ``str`` containing a newline), raw bytes (UTF-8, BOM allowed), or
    a path (``os.PathLike``, or a ``str`` without newline). ``timeframe``: the bar timeframe
    (``"1h"``…), used for the alignment rule; ``None`` skips that rule (noted in ``notes``).
    ``max_errors``: how many ``Issue`` values to keep; all errors are counted regardless.

    Returns a ``ValidationResult``; it never raises for bad data (call
    ``result.raise_for_errors()`` for that). Raises ``FileNotFoundError`` for a missing path
    and ``TimeframeError`` for an unknown timeframe.
    """
    tf = parse_timeframe(timeframe) if timeframe is not None else None
    if max_errors < 0:
        raise ValueError(f"max_errors must be >= 0, got {max_errors}")
    name, text, decode_issue = _read_source(source)
    result = ValidationResult(source=name, timeframe=tf)
    issues = result.issues
    counts = result.error_counts

    def error(line: int | None, rule: str, message: str, column: str | None = None) -> None:
        counts[rule] = counts.get(rule, 0) + 1
        if len(issues) < max_errors:
            issues.append(Issue(line, rule, message, column))

    if decode_issue is None and "\x00" in text:
        # CSV text never holds NUL; it means binary data or a UTF-16 file read as bytes.
        at = text.index("\x00")
        decode_issue = (
            text.count("\n", 0, at) + 1,
            "encoding",
            f"NUL character at character offset {at}: this is binary data, not CSV text "
            "(a UTF-16 export? save it as UTF-8)",
        )
    if decode_issue is not None:
        error(*decode_issue)
        return _finish(result)
    if tf is None:
        result.notes.append("no timeframe given: bar alignment was not checked")

    header_line, header, numbered_rows = _split_rows(text, error)
    if header is None:
        if "csv_syntax" not in counts:  # else the reason was reported already
            error(None, "source", "the file has no header and no data")
        return _finish(result)
    mapping = _map_header(header, header_line, error, result.notes)
    if mapping is None:
        return _finish(result)
    result.columns = {canon: header[idx].strip() for canon, idx in mapping.items()}

    _scan_rows(numbered_rows, len(header), mapping, tf, error, result)
    if tf is not None:
        _check_spacing(result.timestamps, tf, error)
    return _finish(result)


def _check_spacing(timestamps: array, tf: Timeframe, error: Any) -> None:
    """Coarser bars filed under a finer timeframe pass every per-row rule (a daily bar opens
    on an hour too), so look at the spacing: a file of ``tf`` bars has at least one pair of
    consecutive bars one ``tf`` apart, whatever its sessions, weekends and holes. With three
    bars or more and no such pair, the file holds longer bars; :func:`bar_seconds` says which.
    """
    if len(timestamps) < 3:
        return
    gaps = [b - a for a, b in itertools.pairwise(timestamps)]
    if min(gaps) <= tf.seconds:
        return
    median = bar_seconds(gaps)
    named = timeframe_named(median)
    found = f"{_spell_seconds(median)} apart (median)" + (f", which is {named}" if named else "")
    error(
        None,
        "timeframe_mismatch",
        f"bars are {found}, never {tf.value} apart; you said {tf.value}: import the file with "
        "the timeframe it holds",
        "timestamp",
    )


def _spell_seconds(seconds: int) -> str:
    """``1 week``, ``31 days``, ``4 hours``, ``2.5 days``: a spacing for a message (weeks only
    when whole: a month reads better in days)."""
    for unit, size in (("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and (unit != "week" or seconds % size == 0):
            count = seconds / size
            text = f"{count:g}" if count == int(count) else f"{count:.1f}"
            return f"{text} {unit}{'' if text == '1' else 's'}"
    return f"{seconds} seconds"


def normalise(
    source: str | bytes | os.PathLike[str],
    timeframe: Timeframe | str | None,
    dest: str | os.PathLike[str] | None = None,
    *,
    max_errors: int = 100,
) -> ValidationResult:
    """Validate ``source`` and, when ``dest`` is given, write the canonical CSV there.

    Raises ``OHLCVValidationError`` (with every kept issue) when any rule is broken, so
    nothing is written for a broken file. Returns the ``ValidationResult``; its
    ``canonical_csv()`` gives the canonical text.
    """
    result = validate_ohlcv_csv(source, timeframe, max_errors=max_errors)
    result.raise_for_errors()
    if dest is not None:
        Path(dest).write_text(result.canonical_csv(), encoding="utf-8", newline="\n")
    return result


# --- internals ----------------------------------------------------------------------


def _read_source(
    source: str | bytes | os.PathLike[str],
) -> tuple[str, str, tuple[int | None, str, str] | None]:
    """Return (name for messages, text, decode issue or None)."""
    if isinstance(source, bytes | bytearray | memoryview):
        name, data = "<bytes>", bytes(source)
    elif isinstance(source, str) and ("\n" in source or "\r" in source):
        return "<text>", source.removeprefix("\ufeff"), None
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"OHLCV file not found: {path} (a str without a newline is read as a path; "
                "pass CSV text with its newlines, or bytes)"
            )
        name, data = str(path), path.read_bytes()
    else:
        raise TypeError(f"expected CSV text, bytes or a path, got {type(source).__name__}")
    try:
        return name, data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        hint = ""
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            hint = ": it starts with a UTF-16 byte-order mark; save it as UTF-8"
        return name, "", (line, "encoding", f"not UTF-8 text (byte offset {exc.start}){hint}")


def _split_rows(
    text: str, error: Any
) -> tuple[int, list[str] | None, Iterator[tuple[int, list[str]]]]:
    """Return (header line, header cells or None, iterator of (1-based line, cells)).

    Files without quotes and with plain line ends (nearly all OHLCV exports) are split with
    ``str.split``, about twice as fast as ``csv.reader``; anything else goes through ``csv``,
    whose ``line_num`` keeps line numbers right across quoted newlines. Malformed CSV (a quote
    never closed, a field over the csv module's limit) is reported as ``csv_syntax`` on the
    line where the broken row starts, and reading stops there.
    """
    if '"' not in text:
        body = text.replace("\r\n", "\n") if "\r\n" in text else text
        if "\r" not in body:
            lines = body.split("\n")
            if lines and lines[-1] == "":
                lines.pop()  # the newline that ends the last line opens no new line
            for idx, line in enumerate(lines):
                if line.strip(" \t,"):
                    rest = itertools.islice(lines, idx + 1, None)
                    rows = enumerate(map(str.split, rest, itertools.repeat(",")), idx + 2)
                    return idx + 1, line.split(","), rows
            return 0, None, iter(())
    # strict: an unclosed quote or text after a closing quote is an error, not a guess.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = _csv_rows(reader, error)
    for line, row in rows:
        if any(cell.strip() for cell in row):
            return line, row, rows
    return 0, None, iter(())


def _csv_rows(reader: Any, error: Any) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) from ``reader``; a csv.Error becomes a ``csv_syntax`` issue and ends it."""
    start = 1  # the line where the next row starts
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            hint = ""
            if "end of data" in str(exc):
                hint = "; a quote opened on this line is never closed"
            elif "field limit" in str(exc):
                hint = "; a field this long is no price (an unclosed quote?)"
            error(start, "csv_syntax", f"malformed CSV ({exc}){hint}")
            return
        yield reader.line_num, row
        start = reader.line_num + 1


def _map_header(
    header: list[str],
    line: int,
    error: Any,
    notes: list[str],
) -> dict[str, int] | None:
    """Map canonical column -> index in the row, or report why not (returns None)."""
    names = [cell.strip().lower() for cell in header]
    first_cell = header[0].strip() if header else ""
    if len(header) == 1:
        separator = next((sep for sep in (";", "\t", "|") if sep in first_cell), None)
        if separator is not None:
            error(
                line,
                "header",
                f"the header is one field {first_cell[:60]!r}: the file looks separated by "
                f"{separator!r}; ktrdr reads comma-separated CSV "
                f"(header {CANONICAL_HEADER})",
            )
            return None
    if _looks_like_data(first_cell):
        error(
            line,
            "header",
            f"the first line starts with {header[0]!r}, which looks like data, not a header; "
            f"add the header {CANONICAL_HEADER}",
        )
        return None
    mapping: dict[str, int] = {}
    failed = False
    reported: set[str] = set()
    for canon in (*_PRICE_NAMES, "volume"):
        positions = [i for i, n in enumerate(names) if n == canon]
        if len(positions) > 1:
            reported.add(canon)
            error(
                line,
                "duplicate_column",
                f"column {canon!r} appears {len(positions)} times (fields "
                f"{', '.join(str(p + 1) for p in positions)})",
                canon,
            )
            failed = True
        elif positions:
            mapping[canon] = positions[0]

    time_candidates = {n: i for i, n in reversed(list(enumerate(names))) if n in _TIME_NAMES}
    time_idx: int | None = None
    for pick in ("timestamp", "datetime"):
        if pick in time_candidates:
            time_idx = time_candidates[pick]
            break
    else:
        if "date" in time_candidates and "time" in time_candidates:
            error(
                line,
                "header",
                "both a 'date' and a 'time' column: which one holds the bar open time is "
                "ambiguous; rename it to 'timestamp' (and merge date and time if they are split)",
                "timestamp",
            )
            reported.add("timestamp")
            failed = True
        elif time_candidates:
            time_idx = next(iter(time_candidates.values()))
        elif names and names[0] == "":
            time_idx = 0
            notes.append("the unnamed first column was taken as the timestamp column")
    if time_idx is not None:
        chosen = names[time_idx]
        if chosen and names.count(chosen) > 1:
            reported.add("timestamp")
            error(
                line,
                "duplicate_column",
                f"column {chosen!r} appears {names.count(chosen)} times",
                "timestamp",
            )
            failed = True
        mapping = {"timestamp": time_idx, **mapping}

    # Columns already reported (duplicated, ambiguous) are not reported missing as well.
    missing = [c for c in CANONICAL_COLUMNS if c not in mapping and c not in reported]
    if missing:
        for col in missing:
            hint = ""
            if col == "timestamp":
                found = ", ".join(repr(cell.strip()) for cell in header[:8])
                hint = f" (accepted names: timestamp, datetime, date, time; found {found})"
            extra = " (write 0 when the volume is unknown)" if col == "volume" else ""
            error(line, "missing_column", f"no {col!r} column in the header{hint}{extra}", col)
        failed = True
    if failed:
        return None

    used = set(mapping.values())
    extras = [f"{header[i].strip()!r}" for i in range(len(header)) if i not in used]
    if extras:
        notes.append(f"ignored extra column(s): {', '.join(extras)}")
    renamed = [
        f"{header[i].strip()!r} -> {canon}"
        for canon, i in mapping.items()
        if header[i].strip() != canon and header[i].strip() != ""
    ]
    if renamed:
        notes.append(f"column(s) renamed: {', '.join(renamed)}")
    return mapping


def _looks_like_data(cell: str) -> bool:
    if not cell:
        return False
    try:
        float(cell)
        return True
    except ValueError:
        pass
    try:
        datetime.fromisoformat(cell)
        return True
    except ValueError:
        return False


def _scan_rows(
    numbered_rows: Iterator[tuple[int, list[str]]],
    ncols: int,
    mapping: dict[str, int],
    tf: Timeframe | None,
    error: Any,
    result: ValidationResult,
) -> None:
    """The hot loop: one pass over the data rows, every rule checked per row."""
    i_ts = mapping["timestamp"]
    i_o, i_h, i_l, i_c, i_v = (mapping[c] for c in ("open", "high", "low", "close", "volume"))
    ts_out, o_out, h_out, l_out, c_out, v_out = (
        result.timestamps,
        result.open,
        result.high,
        result.low,
        result.close,
        result.volume,
    )
    ts_append, o_append, h_append = ts_out.append, o_out.append, h_out.append
    l_append, c_append, v_append = l_out.append, c_out.append, v_out.append
    fromiso = datetime.fromisoformat
    epoch_aware, epoch_naive = _EPOCH_AWARE, _EPOCH_NAIVE
    step = tf.seconds if tf is not None else 1
    origin = tf.origin if tf is not None else 0

    # Format of the file's timestamps, fixed by the first one that parses:
    # "naive" / "offset" (ISO-8601) or "s" / "ms" (epoch). Plus the line that fixed it.
    ts_kind: str | None = None
    ts_kind_line = 0
    first_raw = ""
    prev_ts: int | None = None
    rows = 0
    blank = 0
    order_errors = 0

    for line, row in numbered_rows:
        if len(row) != ncols:
            # csv gives [] for a blank line, str.split gives [""]; both are skipped.
            if len(row) <= 1 and not (row and row[0].strip()):
                blank += 1
                continue
            rows += 1
            error(line, "field_count", f"{len(row)} field(s), the header has {ncols}")
            continue
        rows += 1

        # --- timestamp ---------------------------------------------------------------
        raw = row[i_ts]
        # All-digit text is an epoch number, never ISO "basic" format (20240102 would
        # otherwise pass as a date here and as epoch seconds elsewhere).
        dt = None
        if not raw.isdigit():
            try:
                dt = fromiso(raw)
            except ValueError:
                # Rare: surrounding spaces (stripped only here, off the fast path) or not ISO.
                raw = raw.strip()
                if not raw.isdigit():
                    # try/except, not contextlib.suppress: this runs once per bad row.
                    try:  # noqa: SIM105
                        dt = fromiso(raw)
                    except ValueError:
                        pass
        if dt is not None:
            if dt.tzinfo is None:
                kind = "naive"
                delta = dt - epoch_naive
            else:
                kind = "offset"
                delta = dt - epoch_aware
            frac = delta.microseconds != 0
            ts = delta.days * 86_400 + delta.seconds
        else:
            try:
                number = float(raw)
            except ValueError:
                number = math.nan
            if number != number:
                error(
                    line,
                    "timestamp_format",
                    f"cannot read timestamp {raw!r}: expected ISO-8601 such as "
                    "2024-01-02T14:00:00Z, or epoch seconds/milliseconds",
                    "timestamp",
                )
                continue
            if number < _EPOCH_S_MIN or number >= _EPOCH_MS_MAX:
                error(
                    line,
                    "timestamp_format",
                    f"number {raw!r} is not an epoch timestamp in seconds (1e8..1e11, from "
                    "1973-03-03) or milliseconds (1e11..1e14); write ISO-8601 instead",
                    "timestamp",
                )
                continue
            if number >= _EPOCH_MS_MIN:
                kind, seconds = "ms", number / 1000.0
            else:
                kind, seconds = "s", number
            ts = int(seconds)
            frac = ts != seconds
        if kind != ts_kind:
            if ts_kind is None:
                ts_kind, ts_kind_line = kind, line
                first_raw = raw
            else:
                _report_kind(kind, raw, line, ts_kind, ts_kind_line, error)
                continue
        if frac:
            error(
                line,
                "timestamp_alignment",
                f"timestamp {raw!r} has a fraction of a second; bars open on whole minutes",
                "timestamp",
            )
            continue

        if prev_ts is not None and ts <= prev_ts:
            if ts == prev_ts:
                error(
                    line,
                    "duplicate_timestamp",
                    f"timestamp {format_timestamp(ts)} repeats the previous row's",
                    "timestamp",
                )
            else:
                order_errors += 1
                error(
                    line,
                    "timestamp_order",
                    f"timestamp {format_timestamp(ts)} is earlier than the previous row's "
                    f"{format_timestamp(prev_ts)}; rows must be oldest first",
                    "timestamp",
                )
            prev_ts = ts
            continue
        prev_ts = ts
        if (ts - origin) % step:
            error(line, "timestamp_alignment", _alignment_message(ts, tf, raw), "timestamp")
            continue

        # --- prices and volume -------------------------------------------------------
        try:
            o = float(row[i_o])
            h = float(row[i_h])
            lo = float(row[i_l])
            c = float(row[i_c])
            v = float(row[i_v])
        except ValueError:
            _report_bad_numbers(row, mapping, line, error)
            continue
        # One combined test on the fast path; the slow path says which rules broke.
        # x - x is 0.0 only for finite x (nan and inf give nan), and nan fails every "<=".
        if (
            o - o + h - h + lo - lo + c - c + v - v != 0.0
            or not (0.0 < lo <= o <= h and lo <= c <= h)
            or v < 0.0
        ):
            _report_bad_values((o, h, lo, c, v), row, mapping, line, error)
            continue

        ts_append(ts)
        o_append(o)
        h_append(h)
        l_append(lo)
        c_append(c)
        v_append(v)

    result.row_count = rows
    if blank:
        result.notes.append(f"skipped {blank} blank line(s)")
    if rows == 0 and "csv_syntax" not in result.error_counts:  # else reading stopped early
        error(None, "source", "the file has a header but no data rows")
    elif order_errors and order_errors >= rows - 1:
        result.notes.append("the rows are in descending time order: reverse them, oldest first")
    if ts_kind == "offset" and not first_raw.endswith(("Z", "z", "+00:00")):
        result.notes.append("timestamps carried UTC offsets and were converted to UTC")
    elif ts_kind == "naive":
        result.notes.append("timestamps had no UTC offset and were read as UTC")
    elif ts_kind in ("s", "ms"):
        unit = "seconds" if ts_kind == "s" else "milliseconds"
        result.notes.append(f"timestamps were epoch {unit} and were converted to ISO-8601 UTC")


def _report_kind(
    kind: str, raw: str, line: int, ts_kind: str, ts_kind_line: int, error: Any
) -> None:
    """Report a timestamp whose kind differs from the file's (set by line ``ts_kind_line``)."""
    if {kind, ts_kind} == {"naive", "offset"}:
        described = {"naive": "has no UTC offset", "offset": "has a UTC offset"}
        error(
            line,
            "timestamp_mixed_tz",
            f"timestamp {raw!r} {described[kind]} but the one on line {ts_kind_line} "
            f"{described[ts_kind]}; use one convention for the whole file",
            "timestamp",
        )
    else:
        names = {"naive": "ISO-8601", "offset": "ISO-8601", "s": "epoch seconds"}
        names["ms"] = "epoch milliseconds"
        error(
            line,
            "timestamp_mixed_format",
            f"timestamp {raw!r} is {names[kind]} but line {ts_kind_line} is {names[ts_kind]}",
            "timestamp",
        )


def _alignment_message(ts: int, tf: Timeframe | None, raw: str) -> str:
    assert tf is not None  # step is 1 without a timeframe, so this is never reached then
    if tf is Timeframe.W1:
        rule = "1w bars open on Monday at 00:00 UTC"
    elif tf is Timeframe.D1:
        rule = "1d bars open at 00:00 UTC (give daily dates without a UTC offset)"
    else:
        rule = f"{tf.value} bars open at whole multiples of {tf.value} from 00:00 UTC"
    shown = format_timestamp(ts)
    source = f" (from {raw!r})" if raw != shown else ""
    return f"timestamp {shown}{source} is not a {tf.value} bar open: {rule}"


def _report_bad_numbers(row: list[str], mapping: dict[str, int], line: int, error: Any) -> None:
    for name in (*_PRICE_NAMES, "volume"):
        text = row[mapping[name]]
        try:
            float(text)
        except ValueError:
            shown = "empty" if not text.strip() else repr(text)
            rule = "volume_format" if name == "volume" else "price_format"
            error(line, rule, f"{name} is {shown}, not a number", name)


def _report_bad_values(
    values: tuple[float, float, float, float, float],
    row: list[str],
    mapping: dict[str, int],
    line: int,
    error: Any,
) -> None:
    """Report every value rule a row of parsed numbers breaks (the row is known to be bad)."""
    o, h, lo, c, v = values
    prices_ok = True
    for name, value in zip(_PRICE_NAMES, values, strict=False):
        if not math.isfinite(value):
            error(line, "price_not_finite", f"{name} is {row[mapping[name]].strip()!r}", name)
            prices_ok = False
        elif value <= 0.0:
            error(line, "price_not_positive", f"{name} is {row[mapping[name]].strip()!r}", name)
            prices_ok = False
    if prices_ok and not (lo <= o <= h and lo <= c <= h):
        shown = ", ".join(f"{n}={row[mapping[n]].strip()}" for n in _PRICE_NAMES)
        error(line, "ohlc_consistency", f"need low <= open, close <= high; got {shown}")
    if not math.isfinite(v):
        error(line, "volume_not_finite", f"volume is {row[mapping['volume']].strip()!r}", "volume")
    elif v < 0.0:
        error(line, "volume_negative", f"volume is {row[mapping['volume']].strip()!r}", "volume")


_MINUTE_TEXT = [f"{m // 60:02d}:{m % 60:02d}:00Z" for m in range(1440)]


def _timestamp_texts(timestamps: array) -> list[str]:
    """Epoch seconds -> canonical texts, formatting each date once and each minute once."""
    day_text: dict[int, str] = {}
    minute_text = _MINUTE_TEXT
    out: list[str] = []
    append = out.append
    for ts in timestamps:
        day, sec = divmod(ts, 86_400)
        date_text = day_text.get(day)
        if date_text is None:
            date_text = day_text[day] = format_timestamp(day * 86_400)[:11]
        minute, second = divmod(sec, 60)
        if second:
            append(f"{date_text}{minute // 60:02d}:{minute % 60:02d}:{second:02d}Z")
        else:
            append(date_text + minute_text[minute])
    return out


def _finish(result: ValidationResult) -> ValidationResult:
    result.error_count = sum(result.error_counts.values())
    if result.error_count:
        # A broken file keeps no bars: nothing downstream can use half of it by mistake.
        for name in ("timestamps", "open", "high", "low", "close", "volume"):
            setattr(result, name, array("q" if name == "timestamps" else "d"))
    return result
