"""Market-data imports: validate and normalise an uploaded CSV, store it, catalogue it.

Validation, normalisation and the gap report come from ktrdr-core (standard library only),
so the backend checks every file without a numeric library. What is stored is the canonical
CSV (``timestamp,open,high,low,close,volume``, UTC bar opens), content-addressed: the same
data imported twice is one file, and an import identical to the newest version adds none.

A version whose symbol names its exchange (``--exchange``, or the symbol's setting) is also
checked against that exchange's official sessions: a ``gap_report`` operation queued in the
same transaction, run by a worker (the check needs pandas), stored on the version when it
completes (:func:`store_exact_report`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ktrdr_api import catalog
from ktrdr_api.artifacts import ArtifactStore
from ktrdr_api.models import Dataset, Operation
from ktrdr_api.price_views import price_view
from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import ArtifactKind, DatasetView, GapReportInputs, SymbolView
from ktrdr_core.timeframes import Timeframe
from ktrdr_core.version import installed_distributions

MAX_LISTED_GAPS = 200  # unexpected holes listed in a gap report; all are counted

AddOperation = Callable[[Session, Any], Operation]
"""``OperationStore.add``: creates an operation inside the caller's transaction."""


class DataInvalid(KtrdrError):
    """The uploaded file broke validation rules (HTTP 422); ``details`` lists them by line."""

    def __init__(self, message: str, details: dict[str, Any]):
        super().__init__(message)
        self.details = details


class ConcurrentImport(KtrdrError):
    """Another import of the same symbol and timeframe committed first (HTTP 409)."""


def import_csv(
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    *,
    symbol: str,
    timeframe: Timeframe,
    staged: Path,
    source_name: str | None,
    now: datetime,
    exchange: str | None,
    add_operation: AddOperation,
) -> tuple[DatasetView, bool]:
    """Validate ``staged`` (a CSV file) and catalogue it as the next version.

    ``exchange``: an exchange code, which becomes the symbol's setting; None uses the
    symbol's setting. With either, the version's exact gap report is queued
    (``add_operation``). Returns the dataset's view and whether a new version was created
    (False when the normalised content equals the newest version's). Raises DataInvalid
    naming each broken rule with its line.
    """
    checked = check_csv(staged, timeframe, source_name or f"{symbol} {timeframe}")
    try:
        with sessions.begin() as session:
            if exchange is not None:
                catalog.set_symbol_exchange(session, symbol, exchange, now)
            return catalogue_csv(
                session,
                store,
                checked,
                symbol=symbol,
                timeframe=timeframe,
                source_name=source_name,
                now=now,
                exchange=exchange or catalog.symbol_exchange(session, symbol),
                add_operation=add_operation,
            )
    except IntegrityError:
        raise ConcurrentImport(
            f"another import of {symbol} {timeframe} finished at the same moment; send it again"
        ) from None


def check_csv(source: Path, timeframe: Timeframe, label: str) -> Any:
    """Validate an OHLCV CSV file; returns the ``ValidationResult`` (with bars) or raises
    DataInvalid naming each broken rule with its line (``label`` names the data)."""
    from ktrdr_core.market_data import validate_ohlcv_csv

    result = validate_ohlcv_csv(source, timeframe)
    if not result.ok:
        shown = "\n".join(f"  {issue}" for issue in result.issues[:20])
        more = result.error_count - min(len(result.issues), 20)
        tail = f"\n  … and {more} more" if more > 0 else ""
        raise DataInvalid(
            f"{label}: {result.error_count} error(s) in OHLCV data\n{shown}{tail}",
            {
                "error_count": result.error_count,
                "error_counts": result.error_counts,
                "issues": [issue.to_dict() for issue in result.issues],
            },
        )
    if not result.timestamps:
        raise DataInvalid(f"{label}: the file has a header but no bars", {"issues": []})
    return result


def catalogue_csv(
    session: Session,
    store: ArtifactStore,
    result: Any,
    *,
    symbol: str,
    timeframe: Timeframe,
    source_name: str | None,
    now: datetime,
    exchange: str | None,
    add_operation: AddOperation,
    warnings: tuple[str, ...] = (),
) -> tuple[DatasetView, bool]:
    """Store the canonical CSV of a checked file (``check_csv``) and catalogue it as the next
    version of ``symbol`` ``timeframe`` inside ``session``'s transaction (the caller commits).

    ``exchange``: the exchange the version trades on; its exact gap report is queued (also
    for an unchanged upload whose newest version named another one, or none). ``warnings``
    join the file's own notes. Returns the view and whether a version was added (False:
    identical to the newest). A concurrent import of the same series surfaces as
    IntegrityError at commit or flush.
    """
    from ktrdr_core.market_data.gaps import gap_report

    gaps = gap_report(result.timestamps, timeframe, max_listed=MAX_LISTED_GAPS).to_dict()
    stored = store.put_bytes(result.canonical_csv().encode("utf-8"))
    first, last = result.first, result.last
    assert first is not None and last is not None  # check_csv refuses a file without bars
    latest = catalog.latest_dataset(session, symbol, timeframe.value)
    if latest is not None and latest.checksum == stored.sha256:
        if exchange is not None and latest.exchange != exchange:
            check_against_exchange(session, latest, exchange, add_operation)
        return catalog.dataset_view(session, latest, unchanged=True), False
    catalog.record_artifact(session, stored.sha256, ArtifactKind.DATA, stored.size, now)
    version = latest.version + 1 if latest is not None else 1
    row = Dataset(
        symbol=symbol,
        timeframe=timeframe.value,
        version=version,
        checksum=stored.sha256,
        rows=len(result.timestamps),
        first_at=first,
        last_at=last,
        gap_report=gaps,
        warnings=[*result.notes, *warnings],
        source_name=source_name,
        created_at=now,
    )
    session.add(row)
    session.flush()
    catalog.add_references(
        session, [stored.sha256], catalog.dataset_referrer(symbol, timeframe.value, version)
    )
    price_view(store, stored.sha256, row.rows)  # the dashboard's price chart, made once
    if exchange is not None:
        check_against_exchange(session, row, exchange, add_operation)
    return catalog.dataset_view(session, row), True


def check_against_exchange(
    session: Session, row: Dataset, exchange: str | None, add_operation: AddOperation
) -> Operation | None:
    """Name ``row``'s exchange and queue its exact gap report (returned); None clears the
    exchange and any report made against the old one."""
    row.exchange = exchange
    row.exact_gap_report = None
    row.exact_report_operation_id = None
    session.flush()
    if exchange is None:
        return None
    # No artifact reference: a pending check must not keep its data from being deleted
    # (deleting cancels it instead, see routes/data.py).
    op = add_operation(
        session, GapReportInputs(data=[catalog.data_ref(row)], versions=installed_distributions())
    )
    row.exact_report_operation_id = op.id
    session.flush()
    return op


def name_exchange(
    sessions: sessionmaker[Session],
    *,
    symbol: str,
    exchange: str | None,
    now: datetime,
    add_operation: AddOperation,
) -> SymbolView:
    """Set (or, with None, clear) a symbol's exchange. The newest version of each of its
    timeframes follows: checked against the new exchange (a report queued for each), or,
    when cleared, back to the heuristic report alone. Older versions keep theirs."""
    with sessions.begin() as session:
        setting = catalog.set_symbol_exchange(session, symbol, exchange, now)
        queued = []
        for row in catalog.datasets(session, symbol=symbol):
            if row.exchange == exchange and (
                exchange is None or _checked_or_checking(session, row)
            ):
                continue  # already as asked: a finished or live check is not repeated
            op = check_against_exchange(session, row, exchange, add_operation)
            if op is not None:
                queued.append(op.id)
        return SymbolView(
            symbol=symbol, exchange=setting.exchange, updated_at=setting.updated_at, queued=queued
        )


def _checked_or_checking(session: Session, row: Dataset) -> bool:
    if row.exact_gap_report is not None:
        return True
    op = session.get(Operation, row.exact_report_operation_id or "")
    return op is not None and op.state in ("pending", "running")


def store_exact_report(session: Session, op: Any, result: Any) -> None:
    """A completed ``gap_report`` operation's report goes beside its dataset version, unless
    the version is gone or was re-checked since (then the operation's result alone keeps it)."""
    inputs = GapReportInputs.model_validate(op.inputs)
    ref = inputs.dataset
    row = session.scalars(
        select(Dataset).where(
            Dataset.symbol == ref.symbol,
            Dataset.timeframe == ref.timeframe.value,
            Dataset.version == ref.version,
        )
    ).first()
    if row is not None and row.exact_report_operation_id == op.id:
        row.exact_gap_report = result.report.model_dump(mode="json")
        session.flush()


def delete_datasets(
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    *,
    symbol: str,
    timeframe: Timeframe,
    version: int | None,
    force: bool,
) -> list[DatasetView]:
    """Delete one version, or every version when ``version`` is None.

    Raises catalog.InUse, naming the users, when a model or a live operation uses the data
    and ``force`` is False. A file is removed from the store once nothing refers to it.
    """
    with sessions.begin() as session:
        if version is None:
            rows = catalog.datasets(
                session, symbol=symbol, timeframe=timeframe.value, all_versions=True
            )
            if not rows:
                catalog.dataset(session, symbol, timeframe.value, None)  # raises NotFound
        else:
            rows = [catalog.dataset(session, symbol, timeframe.value, version)]
        if not force:
            blockers = sorted(
                {b for row in rows for b in catalog.blocking_users(session, row.checksum)}
            )
            if blockers:
                raise catalog.InUse(
                    f"{symbol} {timeframe} is used by {', '.join(blockers)}; "
                    "delete with --force to remove it anyway"
                )
        views = [catalog.dataset_view(session, row) for row in rows]
        files = []
        for row in rows:
            referrer = catalog.dataset_referrer(row.symbol, row.timeframe, row.version)
            catalog.drop_references(session, referrer)
            session.delete(row)
            session.flush()
            files.append(row.checksum)
        # A forced delete takes the data out of the catalogue; the file itself stays while a
        # model or live operation still uses it, so nothing made from it breaks.
        unused = [sha for sha in dict.fromkeys(files) if catalog.release_artifact(session, sha)]
    for sha in unused:
        store.delete(sha)
    return views


def catalogue_fetch(
    session: Session,
    op: Any,
    result: Any,
    now: datetime,
    *,
    store: ArtifactStore,
    add_operation: AddOperation,
) -> dict[str, Any]:
    """Catalogue the CSV a data-fetch operation uploaded as the next dataset version, inside
    the completion's transaction. Returns what the operation's result records about it.

    The version's exchange: the one the fetch was asked for (or the symbol's setting then),
    else the one the provider reports, which then becomes the symbol's setting when it has
    none; a provider that disagrees with the one used is noted on the version.

    Raises DataInvalid when the file breaks a rule, or when another version of the series was
    catalogued since the fetch began (its bars were merged into an older version: fetch again).
    """
    from ktrdr_core.protocol import DataFetchInputs

    inputs = DataFetchInputs.model_validate(op.inputs)
    symbol, timeframe = inputs.symbol, inputs.timeframe
    source = f"{inputs.provider}:{symbol} {timeframe} {inputs.mode}"
    latest = catalog.latest_dataset(session, symbol, timeframe.value)
    merged_into = inputs.stored.version if inputs.stored else None
    if (latest.version if latest else None) != merged_into:
        raise DataInvalid(
            f"{symbol} {timeframe} changed while {op.id} ran (version "
            f"{latest.version if latest else 'none'} now, {merged_into or 'none'} when it "
            "began): its bars were merged into an older version; fetch again",
            {},
        )
    checked = check_csv(store.path(result.data_sha256), timeframe, f"{source} ({op.id})")
    exchange, notes = inputs.exchange, ()
    if exchange is None and result.exchange is not None:
        exchange = result.exchange
        if catalog.symbol_exchange(session, symbol) is None:
            catalog.set_symbol_exchange(session, symbol, exchange, now)
    elif exchange is not None and result.exchange not in (None, exchange):
        notes = (
            f"{inputs.provider} says {symbol} trades on {result.exchange}; its sessions are "
            f"checked against {exchange}, the exchange asked for (or the symbol's setting)",
        )
    try:
        view, created = catalogue_csv(
            session,
            store,
            checked,
            symbol=symbol,
            timeframe=timeframe,
            source_name=source,
            now=now,
            exchange=exchange,
            add_operation=add_operation,
            warnings=notes,
        )
    except IntegrityError:
        raise DataInvalid(
            f"another import of {symbol} {timeframe} finished at the same moment; fetch again", {}
        ) from None
    return {
        "symbol": view.symbol,
        "timeframe": view.timeframe.value,
        "version": view.version,
        "checksum": view.checksum,
        "rows": view.rows,
        "first": view.first.isoformat(),
        "last": view.last.isoformat(),
        "created": created,
        "source_name": view.source_name,
        "unexpected_gaps": (view.gap_report or {}).get("unexpected_total", 0),
        "exchange": view.exchange,
        "exact_report_operation_id": (
            view.exact_report.operation_id if view.exact_report is not None else None
        ),
    }
