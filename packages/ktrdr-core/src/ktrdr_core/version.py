"""Package and protocol versions.

All four distributions move in lockstep, so one version number describes an
installation. The protocol version changes only when the HTTP contract between
backend, workers and CLI does; the backend rejects peers that speak another.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Iterable
from importlib import metadata

PROTOCOL_VERSION = 2
DISTRIBUTIONS = ("ktrdr-core", "ktrdr-api", "ktrdr-worker", "ktrdr-cli")
# What decides a computed result (a trained model, a backtest): recorded with each one.
COMPUTING_DISTRIBUTIONS = ("ktrdr-core", "ktrdr-worker", "torch", "numpy", "pandas", "scikit-learn")

__version__ = metadata.version("ktrdr-core")


def distribution_versions(names: Iterable[str], *, python: bool = False) -> dict[str, str]:
    """Map each of ``names`` that is installed to its version; with ``python``, the
    interpreter's version too (key ``python``). Names not installed are left out."""
    found = {"python": platform.python_version()} if python else {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@functools.cache
def _ktrdr_distributions() -> tuple[tuple[str, str], ...]:
    return tuple(distribution_versions(DISTRIBUTIONS).items())


def installed_distributions() -> dict[str, str]:
    """Map each ktrdr distribution installed beside this one to its version.

    Read once per process: package metadata costs milliseconds, every operation records it,
    and an upgrade restarts the process anyway.
    """
    return dict(_ktrdr_distributions())


def computing_versions() -> dict[str, str]:
    """The interpreter's version (key ``python``) and each of ``COMPUTING_DISTRIBUTIONS``
    installed here: what a worker records with a result and reports when it registers."""
    return distribution_versions(COMPUTING_DISTRIBUTIONS, python=True)
