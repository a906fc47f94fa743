"""Stored model bundles, read as the backend needs them: the manifest checked against its
schema and the weights against the checksum it records (before a model is catalogued), and
the data a bundle trained elsewhere names (before it is imported); and the one way a model
is deleted (`ktrdr models delete`, a study keeping only its best trials' bundles)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from ktrdr_api import catalog
from ktrdr_api.artifacts import ArtifactStore
from ktrdr_core.bundles import BundleError, BundleManifest, check_weights, read_manifest
from ktrdr_core.protocol import DataRef, ModelView, normalise_symbol

IMPORTED_DATA_VERSION = 0
"""``DataRef.version`` of the data an imported model names: it was not catalogued here."""

_HASH_CHUNK = 1024 * 1024


def read_model_bundle(path: Path, sha256: str) -> BundleManifest:
    """The validated ``bundle.json`` of the stored bundle ``sha256`` at ``path``.

    The manifest is checked against its schema in ktrdr-core and the weights member against
    the sha256 and size it records, streamed (never held whole), and its safetensors header
    against the format. Raises
    BundleError saying what is wrong; the message names the bundle by its checksum, not by
    the server's file path.
    """
    where = f"model bundle {sha256[:12]}"
    try:
        manifest = read_manifest(path)
        weights = manifest.weights
        digest = hashlib.sha256()
        size = 0
        with zipfile.ZipFile(path) as archive:
            try:
                member = archive.open(weights.file)
            except KeyError:
                raise BundleError(
                    f"{path}: bundle.json names weights {weights.file!r}, which the zip lacks"
                ) from None
            with member:
                while chunk := member.read(_HASH_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                if digest.hexdigest() == weights.sha256:
                    # A seekable zip member: only the safetensors header is read again.
                    member.seek(0)
                    check_weights(member, f"{where}: {weights.file}", size=size)
    except BundleError as exc:
        raise BundleError(str(exc).replace(str(path), where)) from None
    except (zipfile.BadZipFile, OSError) as exc:
        # A member that does not inflate (truncated, corrupt) after the manifest read fine.
        raise BundleError(f"{where}: unreadable zip member ({exc})") from None
    if digest.hexdigest() != weights.sha256 or size != weights.bytes:
        raise BundleError(
            f"{where}: {weights.file} does not match bundle.json (sha256 "
            f"{digest.hexdigest()[:12]}…, {size} bytes vs {weights.sha256[:12]}…, "
            f"{weights.bytes} bytes): the bundle is corrupt or was altered"
        )
    return manifest


def _imported_symbol(symbol: str, bundle_sha256: str) -> str:
    try:
        return normalise_symbol(symbol)
    except ValueError as exc:
        raise BundleError(
            f"model bundle {bundle_sha256[:12]}: bundle.json data names symbol {symbol!r}: {exc}"
        ) from None


def imported_data(manifest: BundleManifest, bundle_sha256: str) -> list[dict[str, Any]]:
    """The data a bundle trained elsewhere names, as ``DataRef`` records (JSON form).

    Recorded as the manifest says (symbol, timeframe, the manifest's checksum, rows, range)
    with version ``IMPORTED_DATA_VERSION``: this backend may not hold that data. Raises
    BundleError when a symbol or timeframe is not a valid name.
    """
    try:
        return [
            DataRef(
                symbol=_imported_symbol(record.symbol, bundle_sha256),
                timeframe=record.timeframe,
                version=IMPORTED_DATA_VERSION,
                checksum=record.checksum,
                rows=record.rows,
                first=record.first,
                last=record.last,
            ).model_dump(mode="json")
            for record in manifest.data
        ]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BundleError(
            f"model bundle {bundle_sha256[:12]}: bundle.json data is invalid at "
            f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        ) from None


def delete_model(
    sessions: sessionmaker[Session], store: ArtifactStore, model_id: str, *, force: bool = False
) -> ModelView:
    """Delete model ``model_id`` (catalog.NotFound when there is none): its row and
    references in one transaction, then the files nobody uses any more — its bundle, and the
    data it was trained on once no dataset version catalogues it. Raises catalog.InUse naming
    the pending or running operations that use its bundle, unless ``force``. Returns the
    model as it was."""
    with sessions.begin() as session:
        row = catalog.model(session, model_id)
        view = catalog.model_view(session, row)
        referrer = f"model:{row.id}"
        blockers = [b for b in catalog.blocking_users(session, row.bundle_sha256) if b != referrer]
        if blockers and not force:
            raise catalog.InUse(
                f"model {row.id} is used by {', '.join(blockers)}; "
                "delete with --force to remove it anyway"
            )
        used = catalog.references_of(session, referrer)
        catalog.drop_references(session, referrer)
        session.delete(row)
        session.flush()
        # The bundle and the data it was trained on go when nothing else uses them; data
        # files stay while their dataset versions are catalogued.
        unused = [sha for sha in used if catalog.release_artifact(session, sha)]
    for sha in unused:
        store.delete(sha)
    return view
