"""Exchange codes: which markets ktrdr knows the official trading sessions of.

A dataset may name its exchange (``ktrdr data import AAPL 1d prices.csv --exchange XNYS``);
a worker then checks its bars against that exchange's sessions (``ktrdr_worker.sessions``,
built on the ``exchange_calendars`` library). The backend and the CLI cannot import that
library (it needs pandas), so the codes it knows are listed here as plain data, and a test
(tests/worker/test_sessions.py) keeps the two lists equal at the locked library version.

Codes are ISO 10383 market identifiers (``XNYS``, ``XLON``, ``XHKG``) plus three calendars
of markets without one: ``24/7`` (crypto), ``24/5`` (spot FX, Monday to Friday around the
clock) and ``us_futures`` (CME Globex's US futures hours). Common names (``NYSE``,
``NASDAQ``, ``LSE``) are accepted as aliases and stored as the code they stand for.
"""

from __future__ import annotations

import difflib

from ktrdr_core.errors import KtrdrError

__all__ = ["EXCHANGES", "EXCHANGE_ALIASES", "UnknownExchange", "exchange_code"]

EXCHANGES: tuple[str, ...] = (
    "24/5", "24/7", "AIXK", "ASEX", "BVMF", "CMES", "IEPA", "XAMS", "XASX", "XBDA", "XBEL",
    "XBKK", "XBOG", "XBOM", "XBRA", "XBRU", "XBSE", "XBUD", "XBUE", "XCBF", "XCSE", "XCYS",
    "XDUB", "XDUS", "XEEE", "XETR", "XEUR", "XFRA", "XHAM", "XHEL", "XHKG", "XICE", "XIDX",
    "XIST", "XJSE", "XKAR", "XKLS", "XKRX", "XLIM", "XLIS", "XLIT", "XLJU", "XLON", "XLUX",
    "XMAD", "XMEX", "XMIL", "XMOS", "XNYS", "XNZE", "XOSL", "XPAR", "XPHS", "XPRA", "XRIS",
    "XSAU", "XSES", "XSGO", "XSHG", "XSTO", "XSTU", "XSWX", "XTAE", "XTAI", "XTAL", "XTKS",
    "XTSE", "XWAR", "XWBO", "XZAG", "us_futures",
)  # fmt: skip
"""Every calendar of exchange_calendars 4.13, by its name there."""

EXCHANGE_ALIASES: dict[str, str] = {
    "ARCX": "XNYS", "ASX": "XASX", "BATS": "XNYS", "BMF": "BVMF", "BSE": "XBOM",
    "BVB": "XBSE", "CBOT": "CMES", "CFE": "XCBF", "CME": "CMES", "COMEX": "CMES",
    "FWB": "XFRA", "HKEX": "XHKG", "ICE": "IEPA", "ICEUS": "IEPA", "JKT": "XIDX",
    "JPX": "XTKS", "LSE": "XLON", "LUXSE": "XLUX", "NASDAQ": "XNYS", "NYFE": "IEPA",
    "NYMEX": "CMES", "NYSE": "XNYS", "OOTC": "XNYS", "OSE": "XOSL", "SIX": "XSWX",
    "SSE": "XSHG", "TASE": "XTAE", "TSX": "XTSE", "XASE": "XNYS", "XNAS": "XNYS",
    "XTSX": "XTSE",
}  # fmt: skip
"""exchange_calendars' aliases: another name -> the calendar whose sessions it shares (US
equity venues all trade NYSE's sessions, so ``NASDAQ`` is ``XNYS``)."""

_BY_UPPER = {code.upper(): code for code in EXCHANGES} | {
    alias.upper(): code for alias, code in EXCHANGE_ALIASES.items()
}


class UnknownExchange(KtrdrError, ValueError):
    """A code that names no exchange whose sessions ktrdr knows; the message lists the close
    matches."""


def exchange_code(text: str) -> str:
    """The exchange code ``text`` names, in its stored spelling: ``xnys`` -> ``XNYS``,
    ``NASDAQ`` -> ``XNYS`` (an alias), ``24/7`` -> ``24/7``.

    Raises :class:`UnknownExchange` naming the close matches (``XNYZ`` -> did you mean XNYS,
    XNZE?) and where to find every code.
    """
    key = text.strip().upper()
    code = _BY_UPPER.get(key)
    if code is not None:
        return code
    close = difflib.get_close_matches(key, list(_BY_UPPER), n=5, cutoff=0.5)
    shown = list(dict.fromkeys(_spelt(name) for name in close))
    hint = f"did you mean {', '.join(shown)}? " if shown else ""
    raise UnknownExchange(
        f"unknown exchange {text!r}: {hint}Exchanges are ISO 10383 codes such as XNYS (New "
        f"York), XLON (London), XHKG (Hong Kong), or 24/7 (crypto) and 24/5 (FX); "
        f"`ktrdr data exchanges` lists all {len(EXCHANGES)}"
    )


def _spelt(upper: str) -> str:
    """A code or alias as it is written (``US_FUTURES`` -> ``us_futures``), an alias with
    the code it stands for."""
    if upper in EXCHANGE_ALIASES:
        return f"{upper} (= {EXCHANGE_ALIASES[upper]})"
    return _BY_UPPER[upper]
