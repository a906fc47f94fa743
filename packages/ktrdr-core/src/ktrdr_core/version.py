"""Package and protocol versions.

All four distributions move in lockstep, so one version number describes an
installation. The protocol version changes only when the HTTP contract between
backend, workers and CLI does; the backend rejects peers that speak another.
"""

from __future__ import annotations

from importlib import metadata

PROTOCOL_VERSION = 1
DISTRIBUTIONS = ("ktrdr-core", "ktrdr-api", "ktrdr-worker", "ktrdr-cli")

__version__ = metadata.version("ktrdr-core")


def installed_distributions() -> dict[str, str]:
    """Map each ktrdr distribution installed beside this one to its version."""
    found: dict[str, str] = {}
    for name in DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
