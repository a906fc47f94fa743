"""Worker logs: one line per event carrying the worker id and the operation it runs.

On a terminal the lines are plain text; otherwise (containers, files) each line is a JSON
object, so a log collector can filter by ``worker_id`` or ``operation_id``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["configure_logging", "log_context"]

log_context: dict[str, Any] = {"worker_id": None, "operation_id": None}
"""Fields added to every record; the worker sets them (one worker per process)."""


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in log_context.items():
            setattr(record, key, value)
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: getattr(record, k, None) for k in log_context if getattr(record, k, None)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        where = " ".join(
            str(getattr(record, key)) for key in log_context if getattr(record, key, None)
        )
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{stamp} {record.levelname:<7} [{where}] {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: int = logging.INFO, *, json_lines: bool | None = None) -> None:
    """Send ``ktrdr_worker`` logs to stderr: JSON lines unless stderr is a terminal
    (``json_lines`` forces either)."""
    use_json = not sys.stderr.isatty() if json_lines is None else json_lines
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(_JsonFormatter() if use_json else _TextFormatter())
    logger = logging.getLogger("ktrdr_worker")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
