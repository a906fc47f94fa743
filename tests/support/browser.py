"""A real headless Chromium for the dashboard's tests and bench: Debian's ``chromium`` (apt-get
installs it when missing, as tests/support/docker.py installs docker), driven by Playwright
for Python launching that binary (no browser download: none is reachable here).

``browser()`` yields a Playwright Browser; ``BrowserUnavailable`` says why none could start
(tests turn it into a skip, or a failure under CI=true, with ``tests.support.ci``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
APT_PACKAGES = ("chromium", "chromium-driver")
# Headless in a closed network: no GPU, no sandbox (root in CI), and none of the background
# connections Chromium opens to Google's hosts at start-up.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class BrowserUnavailable(RuntimeError):
    """No Chromium could be installed or started; the message says why."""


def ensure_chromium() -> Path:
    """The Chromium binary, apt-get installing Debian's package when it is missing."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0:
        raise BrowserUnavailable(f"{CHROMIUM} missing and not root to apt-get chromium")
    if shutil.which("apt-get") is None:
        raise BrowserUnavailable(f"{CHROMIUM} missing and no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update"], ["apt-get", "install", "-y", *APT_PACKAGES]):
        result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            raise BrowserUnavailable(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    if not CHROMIUM.exists():
        raise BrowserUnavailable(f"apt-get installed chromium but {CHROMIUM} is missing")
    return CHROMIUM


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (each launch gets a fresh, empty profile folder from Playwright)."""
    from playwright.sync_api import Error, sync_playwright

    binary = ensure_chromium()
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=str(binary), headless=True, args=FLAGS
            )
        except Error as exc:
            raise BrowserUnavailable(f"{binary} did not start: {exc}") from exc
        try:
            yield launched
        finally:
            launched.close()
