"""JSON answers written straight from a protocol model.

A route that returns a pydantic model lets FastAPI validate it again against the response
model and then serialise it; for a model the route has just built from the database, that
second validation is pure cost (about a third of a status read). Routes on the hot paths
(status reads, heartbeats, claims) return ``model_response(view)`` instead and declare
``response_model`` for the OpenAPI schema.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import Response


class JsonModel(Protocol):
    """Anything that serialises itself as pydantic models do."""

    def model_dump_json(self) -> str: ...


class ModelResponse(Response):
    media_type = "application/json"


def model_response(model: JsonModel, status_code: int = 200) -> ModelResponse:
    """``model`` serialised as JSON (by pydantic, as FastAPI would) in a response."""
    return ModelResponse(model.model_dump_json(), status_code=status_code)
