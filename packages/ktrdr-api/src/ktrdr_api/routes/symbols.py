"""Symbols' settings: the exchange a symbol trades on.

A symbol's exchange is used by every import and fetch of it that names none, and the newest
version of each of its timeframes is checked against that exchange's official sessions.
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from ktrdr_api import datasets
from ktrdr_api.auth import requires
from ktrdr_api.catalog import NotFound
from ktrdr_api.deps import BackendDep, SessionDep, SymbolDep
from ktrdr_api.models import SymbolSetting
from ktrdr_core.access import Role
from ktrdr_core.protocol import SymbolSettings, SymbolView

router = APIRouter(prefix="/symbols", tags=["data"])


def _view(row: SymbolSetting) -> SymbolView:
    return SymbolView(symbol=row.symbol, exchange=row.exchange, updated_at=row.updated_at)


@router.get("", dependencies=[requires(Role.READER)])
def list_symbols(session: SessionDep) -> list[SymbolView]:
    """Every symbol with a setting, by name."""
    rows = session.scalars(select(SymbolSetting).order_by(SymbolSetting.symbol))
    return [_view(row) for row in rows]


@router.get("/{symbol}", responses={404: {}}, dependencies=[requires(Role.READER)])
def show(symbol: SymbolDep, session: SessionDep) -> SymbolView:
    """One symbol's settings."""
    row = session.get(SymbolSetting, symbol)
    if row is None:
        raise NotFound(
            f"{symbol} has no settings: name its exchange with `ktrdr data exchange {symbol} "
            "XNYS` (or --exchange on an import or fetch)"
        )
    return _view(row)


@router.put(
    "/{symbol}",
    responses={422: {"description": "an unknown exchange"}},
    dependencies=[requires(Role.RESEARCHER)],
)
def update(symbol: SymbolDep, settings: SymbolSettings, backend: BackendDep) -> SymbolView:
    """Set the symbol's exchange (null clears it); ``queued`` lists the exact gap reports
    this queued for the newest version of each of its timeframes."""
    return datasets.name_exchange(
        backend.sessions,
        symbol=symbol,
        exchange=settings.exchange,
        now=backend.operations.clock(),
        add_operation=backend.operations.add,
    )
