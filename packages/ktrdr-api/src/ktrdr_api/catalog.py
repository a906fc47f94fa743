"""Database records of what the artifact store holds, who uses it, and what it means.

- ``artifacts``: one row per stored file (sha256, kind, size).
- ``artifact_refs``: "this referrer uses that file" (``operation:op_…``, ``model:mdl_…``,
  ``dataset:AAPL/1h@2``), so nothing in use is deleted without ``force``.
- ``datasets``: versions of the OHLCV file per symbol and timeframe, each with the exchange
  it is checked against and that check's exact gap report.
- ``symbols``: each symbol's exchange, for the imports and fetches that name none.
- ``models``: trained bundles and the operation that made them.

Functions take an open session and leave committing to the caller, so a catalogue change
and the state change it belongs to commit together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, undefer

from ktrdr_api.models import Artifact, ArtifactRef, Dataset, Model, Operation, SymbolSetting
from ktrdr_core.bundles import BundleManifest
from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import (
    ArtifactKind,
    ArtifactView,
    DataRef,
    DatasetView,
    ExactReportStatus,
    ModelView,
    OperationState,
    TrainingInputs,
)


class CatalogError(KtrdrError):
    pass


class NotFound(CatalogError):
    """No such dataset, model or artifact (HTTP 404)."""


class InUse(CatalogError):
    """Deleting would break something that uses it; ``force`` overrides (HTTP 409)."""


class ExactReportPending(CatalogError):
    """The data names an exchange whose exact gap report is not there yet (HTTP 409)."""


# --- artifacts -----------------------------------------------------------------------


def artifact(session: Session, sha256: str) -> Artifact | None:
    return session.get(Artifact, sha256)


def record_artifact(
    session: Session, sha256: str, kind: ArtifactKind, size: int, now: datetime
) -> Artifact:
    """Catalogue a stored file; an existing row (same content uploaded again) is kept."""
    row = session.get(Artifact, sha256)
    if row is None:
        row = Artifact(sha256=sha256, kind=kind.value, size=size, created_at=now)
        session.add(row)
        session.flush()
    return row


def artifact_view(session: Session, row: Artifact) -> ArtifactView:
    return ArtifactView(
        sha256=row.sha256,
        kind=ArtifactKind(row.kind),
        size=row.size,
        created_at=row.created_at,
        references=referrers_of(session, row.sha256),
    )


def add_references(
    session: Session, shas: Iterable[str], referrer: str, *, new_referrer: bool = False
) -> None:
    """Record that ``referrer`` uses each artifact in ``shas`` (idempotent).

    ``new_referrer``: the referrer was created in this transaction, so it refers to nothing
    yet and the look-up is skipped (operations are created on the claim-latency path).
    """
    wanted = list(dict.fromkeys(shas))
    if not wanted:
        return
    known: set[str] = set()
    if not new_referrer:
        known = set(
            session.scalars(
                select(ArtifactRef.sha256).where(
                    ArtifactRef.referrer == referrer, ArtifactRef.sha256.in_(wanted)
                )
            )
        )
    missing = [sha for sha in wanted if sha not in known]
    session.add_all(ArtifactRef(sha256=sha, referrer=referrer) for sha in missing)
    session.flush()


def referrers_of(session: Session, sha256: str) -> list[str]:
    return list(
        session.scalars(
            select(ArtifactRef.referrer)
            .where(ArtifactRef.sha256 == sha256)
            .order_by(ArtifactRef.referrer)
        )
    )


def references_of(session: Session, referrer: str) -> list[str]:
    """The artifacts ``referrer`` uses."""
    return list(session.scalars(select(ArtifactRef.sha256).where(ArtifactRef.referrer == referrer)))


def drop_references(session: Session, referrer: str) -> None:
    session.execute(delete(ArtifactRef).where(ArtifactRef.referrer == referrer))


def blocking_users(session: Session, sha256: str) -> list[str]:
    """Referrers that keep a file from being deleted without force: models, and operations
    still pending or running. Finished operations only record what they used."""
    blockers = []
    for referrer in referrers_of(session, sha256):
        kind, _, ident = referrer.partition(":")
        if kind == "dataset":
            continue
        if kind == "operation":
            state = session.scalar(select(Operation.state).where(Operation.id == ident))
            if state not in (OperationState.PENDING, OperationState.RUNNING):
                continue
        blockers.append(referrer)
    return blockers


def release_artifact(session: Session, sha256: str) -> bool:
    """Forget an artifact once its catalogue entry is gone, unless still in use.

    In use: a dataset version or model catalogues it, or a blocking user (above) refers to
    it. Otherwise its row and the historical references of finished operations are deleted
    and True is returned: the caller deletes the file after committing.
    """
    if blocking_users(session, sha256):
        return False
    catalogued = session.scalar(
        select(func.count()).select_from(Dataset).where(Dataset.checksum == sha256)
    ) or session.scalar(
        select(func.count()).select_from(Model).where(Model.bundle_sha256 == sha256)
    )
    if catalogued:
        return False
    session.execute(delete(ArtifactRef).where(ArtifactRef.sha256 == sha256))
    row = session.get(Artifact, sha256)
    if row is not None:
        session.delete(row)
    session.flush()
    return True


# --- datasets ------------------------------------------------------------------------


def dataset_referrer(symbol: str, timeframe: str, version: int) -> str:
    return f"dataset:{symbol}/{timeframe}@{version}"


def latest_dataset(session: Session, symbol: str, timeframe: str) -> Dataset | None:
    return session.scalars(
        select(Dataset)
        .where(Dataset.symbol == symbol, Dataset.timeframe == timeframe)
        .order_by(Dataset.version.desc())
        .limit(1)
    ).first()


def dataset(session: Session, symbol: str, timeframe: str, version: int | None) -> Dataset:
    """One version (the newest when ``version`` is None); NotFound names what is missing."""
    if version is None:
        row = latest_dataset(session, symbol, timeframe)
    else:
        row = session.scalars(
            select(Dataset).where(
                Dataset.symbol == symbol, Dataset.timeframe == timeframe, Dataset.version == version
            )
        ).first()
    if row is None:
        which = f" version {version}" if version is not None else ""
        raise NotFound(
            f"no data for {symbol} {timeframe}{which}: import it with "
            f"`ktrdr data import {symbol} {timeframe} FILE`"
        )
    return row


def datasets(
    session: Session,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    all_versions: bool = False,
) -> list[Dataset]:
    query = select(Dataset).order_by(Dataset.symbol, Dataset.timeframe, Dataset.version.desc())
    if symbol is not None:
        query = query.where(Dataset.symbol == symbol)
    if timeframe is not None:
        query = query.where(Dataset.timeframe == timeframe)
    rows = list(session.scalars(query))
    if all_versions:
        return rows
    newest: dict[tuple[str, str], Dataset] = {}
    for row in rows:
        newest.setdefault((row.symbol, row.timeframe), row)
    return list(newest.values())


def data_ref(row: Dataset) -> DataRef:
    return DataRef(
        symbol=row.symbol,
        timeframe=row.timeframe,
        version=row.version,
        checksum=row.checksum,
        rows=row.rows,
        first=row.first_at,
        last=row.last_at,
        exchange=row.exchange,
    )


def exchange_bars(session: Session, ref: DataRef) -> int | None:
    """The bars the sessions of ``ref``'s exchange hold from its first to its last bar, from
    its exact gap report; None when it names no exchange.

    Raises ExactReportPending when it names one whose report has not completed: what depends
    on the exchange's calendar waits for it rather than silently guessing another.
    """
    if ref.exchange is None:
        return None
    row = dataset(session, ref.symbol, ref.timeframe.value, ref.version)
    report = row.exact_gap_report
    if report is None:
        status = _report_status(session, row)
        how = (
            f"operation {status.operation_id} is {status.state}"
            + (f" ({status.error})" if status.error else "")
            if status
            else "none is queued"
        )
        raise ExactReportPending(
            f"{ref.symbol} {ref.timeframe} v{ref.version} trades on {ref.exchange}, whose exact "
            f"gap report is not made yet ({how}); wait for it (`ktrdr data show {ref.symbol} "
            f"{ref.timeframe}`), or name the exchange again to queue it: `ktrdr data exchange "
            f"{ref.symbol} {ref.exchange}`"
        )
    return int(report["expected_bars"])


def _report_status(session: Session, row: Dataset) -> ExactReportStatus | None:
    if row.exact_report_operation_id is None:
        return None
    op = session.get(Operation, row.exact_report_operation_id)
    if op is None:
        return None
    return ExactReportStatus(operation_id=op.id, state=OperationState(op.state), error=op.error)


def symbol_exchange(session: Session, symbol: str) -> str | None:
    """The symbol's exchange setting (None: none named)."""
    row = session.get(SymbolSetting, symbol)
    return row.exchange if row is not None else None


def set_symbol_exchange(
    session: Session, symbol: str, exchange: str | None, now: datetime
) -> SymbolSetting:
    """Record the symbol's exchange (None clears it); returns the row."""
    row = session.get(SymbolSetting, symbol)
    if row is None:
        row = SymbolSetting(symbol=symbol, exchange=exchange, updated_at=now)
        session.add(row)
    elif row.exchange != exchange:
        row.exchange = exchange
        row.updated_at = now
    session.flush()
    return row


def users_of(session: Session, sha256: str) -> list[str]:
    """Referrers of a file other than the dataset entries that catalogue it."""
    return [r for r in referrers_of(session, sha256) if not r.startswith("dataset:")]


def dataset_view(session: Session, row: Dataset, *, unchanged: bool = False) -> DatasetView:
    stored = session.get(Artifact, row.checksum)
    return DatasetView(
        symbol=row.symbol,
        timeframe=row.timeframe,
        version=row.version,
        checksum=row.checksum,
        rows=row.rows,
        first=row.first_at,
        last=row.last_at,
        size=stored.size if stored else 0,
        created_at=row.created_at,
        source_name=row.source_name,
        warnings=list(row.warnings or []),
        gap_report=row.gap_report,
        exchange=row.exchange,
        exact_gap_report=row.exact_gap_report,
        exact_report=_report_status(session, row),
        references=users_of(session, row.checksum),
        unchanged=unchanged,
    )


# --- models --------------------------------------------------------------------------


def model(session: Session, model_id: str) -> Model:
    row = session.get(Model, model_id)
    if row is None:
        raise NotFound(f"no model {model_id!r}: `ktrdr models list` shows what there is")
    return row


def models(session: Session) -> list[Model]:
    """Newest first, each with its bundle.json (one query)."""
    query = select(Model).options(undefer(Model.bundle_metadata))
    return list(session.scalars(query.order_by(Model.created_at.desc(), Model.id)))


def model_view(session: Session, row: Model) -> ModelView:
    stored = session.get(Artifact, row.bundle_sha256)
    return ModelView(
        model_id=row.id,
        name=row.name,
        bundle_sha256=row.bundle_sha256,
        size=stored.size if stored else 0,
        created_at=row.created_at,
        training_operation_id=row.training_operation_id,
        strategy_hash=row.strategy_hash,
        data=[DataRef.model_validate(d) for d in row.data],
        metadata=row.bundle_metadata,
        references=[
            r
            for r in referrers_of(session, row.bundle_sha256)
            if r not in (f"model:{row.id}", f"operation:{row.training_operation_id}")
        ],
    )


def _metadata(manifest: BundleManifest) -> dict[str, Any]:
    # bundle.json as written (aliases included), so a listing shows what the file holds.
    return manifest.model_dump(mode="json", by_alias=True)


def model_id_for(bundle_sha256: str) -> str:
    """A model's id, from its bundle's content: the same file always gets the same id (a
    re-import after a delete restores it; two imports at once collide on the primary key
    instead of making two rows), and two trainings, whose bundles differ, get two."""
    return f"mdl_{bundle_sha256[:12]}"


def create_model(
    session: Session,
    op: Operation,
    bundle_sha256: str,
    *,
    read_bundle: Callable[[str], BundleManifest],
    now: datetime,
) -> Model:
    """Catalogue the bundle a training operation produced.

    ``read_bundle(sha)`` returns the bundle's validated manifest; it raises BundleError when
    the file is not a readable bundle, which refuses the completion (HTTP 422).
    """
    inputs = TrainingInputs.model_validate(op.inputs)
    manifest = read_bundle(bundle_sha256)
    row = Model(
        id=model_id_for(bundle_sha256),
        name=inputs.strategy_name,
        bundle_sha256=bundle_sha256,
        training_operation_id=op.id,
        strategy_hash=inputs.strategy_hash,
        data=[d.model_dump(mode="json") for d in inputs.data],
        bundle_metadata=_metadata(manifest),
        created_at=now,
    )
    session.add(row)
    session.flush()
    add_references(session, [bundle_sha256, *(d.checksum for d in inputs.data)], f"model:{row.id}")
    return row


def model_with_bundle(session: Session, bundle_sha256: str) -> Model | None:
    """The oldest model catalogued for this bundle file, if any."""
    return session.scalars(
        select(Model)
        .where(Model.bundle_sha256 == bundle_sha256)
        .order_by(Model.created_at, Model.id)
        .limit(1)
    ).first()


def import_model(
    session: Session,
    bundle_sha256: str,
    manifest: BundleManifest,
    data: list[dict[str, Any]],
    *,
    now: datetime,
) -> Model:
    """Catalogue a bundle trained elsewhere (its artifact row must exist already).

    ``data`` comes from :func:`ktrdr_api.model_bundles.imported_data`; nothing here refers
    to that data, so no reference guards it. A backtest of the model uses the newest data of
    the same symbols and timeframe catalogued here, as for any model.
    """
    row = Model(
        id=model_id_for(bundle_sha256),
        name=manifest.strategy.name,
        bundle_sha256=bundle_sha256,
        training_operation_id=None,
        strategy_hash=manifest.strategy.hash,
        data=data,
        bundle_metadata=_metadata(manifest),
        created_at=now,
    )
    session.add(row)
    session.flush()
    add_references(session, [bundle_sha256], f"model:{row.id}")
    return row
