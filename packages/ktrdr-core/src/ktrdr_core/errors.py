"""Errors shared across ktrdr: each says what went wrong and where."""

from __future__ import annotations

from typing import Any


class KtrdrError(Exception):
    """Base of every error ktrdr raises on purpose."""


class RequestError(KtrdrError, ValueError):
    """A request the client refuses to send (an empty id, say); the message names the value."""


class ApiError(KtrdrError):
    """The backend answered with an error status, or could not be reached.

    ``body`` is the backend's JSON answer when there was one: besides ``detail`` it may list
    ``issues`` (by line or key path) or ``missing`` data.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        body: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.url = url
        self.body = body

    def __str__(self) -> str:
        where = f" ({self.url})" if self.url else ""
        code = f"HTTP {self.status}: " if self.status is not None else ""
        return f"{code}{self.args[0]}{where}"
