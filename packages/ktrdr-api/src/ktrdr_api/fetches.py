"""Data fetches: check a fetch request against what is stored and turn it into inputs.

The fetching itself runs on a worker (``ktrdr_worker.service.fetch_runner``); its result is
catalogued as a dataset version by ``datasets.catalogue_fetch`` when the operation completes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from ktrdr_api import catalog
from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import DataFetchInputs, DataFetchRequest, FetchMode


class FetchRefused(KtrdrError):
    """The fetch cannot run on what is stored, or asks for the future (HTTP 422)."""


def _utc(value: datetime | None) -> datetime | None:
    # A time without a zone means UTC, as everywhere in ktrdr.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def fetch_inputs(
    session: Session, request: DataFetchRequest, *, now: datetime, versions: dict[str, str]
) -> DataFetchInputs:
    """The operation inputs for ``request``; FetchRefused says why it cannot run.

    The exchange asked for becomes the symbol's setting (in ``session``'s transaction);
    without one, the inputs carry the symbol's setting."""
    symbol, tf, mode = request.symbol, request.timeframe, request.mode
    start, end = _utc(request.start), _utc(request.end)
    what = f"{request.provider} {symbol} {tf} {mode}"
    if start is not None and start >= now:
        raise FetchRefused(f"{what}: start {start:%Y-%m-%dT%H:%M:%SZ} is in the future")
    latest = catalog.latest_dataset(session, symbol, tf.value)
    if mode is not FetchMode.FULL and latest is None:
        raise FetchRefused(
            f"{what}: nothing stored for {symbol} {tf} to {mode}; fetch a range first: "
            f"ktrdr data fetch {symbol} {tf} --provider {request.provider} --start YYYY-MM-DD"
        )
    if latest is not None:
        first = _utc(latest.first_at)
        if mode is FetchMode.BACKFILL and start is not None and first and start >= first:
            raise FetchRefused(
                f"{what}: start {start:%Y-%m-%dT%H:%M:%SZ} is not before the first stored bar "
                f"({first:%Y-%m-%dT%H:%M:%SZ}, version {latest.version}): nothing to backfill"
            )
        # With an exchange, the worker plans a repair from its sessions: the heuristic report's
        # "holidays" may be holes, so only an exact report saying "none" refuses.
        report = latest.exact_gap_report if latest.exchange else latest.gap_report
        known = report is not None or not latest.exchange
        if mode is FetchMode.REPAIR and known and not (report or {}).get("unexpected_total"):
            raise FetchRefused(
                f"{what}: version {latest.version} has no unexpected gaps: nothing to repair"
            )
    exchange = request.exchange
    if exchange is not None:
        catalog.set_symbol_exchange(session, symbol, exchange, now)
    else:
        exchange = catalog.symbol_exchange(session, symbol)
    return DataFetchInputs(
        provider=request.provider,
        symbol=symbol,
        timeframe=tf,
        mode=mode,
        start=start,
        end=end,
        stored=catalog.data_ref(latest) if latest is not None else None,
        exchange=exchange,
        versions=versions,
    )
