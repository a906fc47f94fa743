"""Backend logs: one line per event, carrying the operation and worker it concerns.

On a terminal the lines are plain text; otherwise (containers, files) each line is a JSON
object with the same field names as the worker's logs (``time``, ``level``, ``logger``,
``message``, ``worker_id``, ``operation_id``, ``exception``), so one log collector query
follows an operation across the backend and its workers. State transitions add ``event``,
``state``, ``attempt`` and ``kind``; audit events (ktrdr_api.audit) add ``audit``.

Code attaches the fields per record: ``log.info(..., extra={"operation_id": op_id})``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO

__all__ = ["CONTEXT_FIELDS", "configure_logging"]

CONTEXT_FIELDS = ("worker_id", "operation_id", "attempt", "kind", "event", "state", "audit")
"""Optional fields a record may carry (through ``extra``); written when set."""

LOGGERS = ("ktrdr_api", "uvicorn", "uvicorn.error", "uvicorn.access")
"""Loggers sent to the one handler: ours and the server's (start-up, errors)."""


def _context(record: logging.LogRecord) -> dict[str, object]:
    return {
        key: value for key in CONTEXT_FIELDS if (value := getattr(record, key, None)) is not None
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_context(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``12:00:01 INFO    [worker op] message`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        context = _context(record)
        ids = ("worker_id", "operation_id")
        where = " ".join(str(context[key]) for key in ids if key in context)
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{stamp} {record.levelname:<7} [{where}] {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(
    level: int = logging.INFO,
    *,
    json_lines: bool | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send the backend's and uvicorn's logs to ``stream`` (default stderr): JSON lines unless
    it is a terminal (``json_lines`` forces either). Returns the handler installed."""
    stream = stream or sys.stderr
    use_json = not stream.isatty() if json_lines is None else json_lines
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler] if name in ("ktrdr_api", "uvicorn") else []
        # uvicorn.error and .access reach the handler through "uvicorn".
        logger.propagate = name not in ("ktrdr_api", "uvicorn")
        logger.setLevel(level)
    return handler
