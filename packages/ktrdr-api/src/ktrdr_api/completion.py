"""What completing an operation of each kind adds to its result, inside the completion's
transaction: a training's bundle becomes a catalogued model, a data fetch's file the next
dataset version, an exact gap report part of its dataset version. ``create_app`` registers
one hook per kind on ``Operations``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ktrdr_api import catalog, datasets
from ktrdr_api.artifacts import ArtifactStore
from ktrdr_api.models import Operation
from ktrdr_core.bundles import BundleManifest

CompletionHook = Callable[[Session, Operation, Any, datetime], dict[str, Any]]
"""``hook(session, op, result, now)`` → fields the stored result gains. ``result`` is the
worker's result model; raising a KtrdrError refuses the completion and changes nothing."""


def catalogue_model(read_bundle: Callable[[str], BundleManifest]) -> CompletionHook:
    """A training's hook: its bundle becomes a model, named by the result's ``model_id`` so a
    researcher backtests it next, and the result keeps the bundle's size (``bundle_bytes``:
    what deleting the model frees, known after it is gone). ``read_bundle(sha256)``
    validates the stored bundle."""

    def hook(session: Session, op: Operation, result: Any, now: datetime) -> dict[str, Any]:
        model = catalog.create_model(
            session, op, result.bundle_sha256, read_bundle=read_bundle, now=now
        )
        stored = catalog.artifact(session, result.bundle_sha256)
        return {"model_id": model.id, "bundle_bytes": stored.size if stored else None}

    return hook


def ingest_dataset(store: ArtifactStore, add_operation: datasets.AddOperation) -> CompletionHook:
    """A data fetch's hook: its CSV becomes the series' next dataset version in the same
    transaction, so a half-finished fetch never leaves a version behind; a version with an
    exchange gets its exact gap report queued there too (``add_operation``)."""

    def hook(session: Session, op: Operation, result: Any, now: datetime) -> dict[str, Any]:
        return {
            "dataset": datasets.catalogue_fetch(
                session, op, result, now, store=store, add_operation=add_operation
            )
        }

    return hook


def store_exact_report() -> CompletionHook:
    """An exact gap report's hook: the report is stored beside its dataset version."""

    def hook(session: Session, op: Operation, result: Any, now: datetime) -> dict[str, Any]:
        datasets.store_exact_report(session, op, result)
        return {}

    return hook
