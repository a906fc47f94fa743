"""A real headless Chromium for the dashboard's tests and bench: Debian's ``chromium`` (apt-get
installs it when missing, as tests/support/docker.py installs docker), driven by Playwright
for Python launching that binary (no browser download: none is reachable here).

``browser()`` yields a Playwright Browser; ``BrowserUnavailable`` says why none could start.
``browser_or_skip()`` turns that into a skip, or a failure under CI=true; ``Page`` is one tab on
the dashboard for the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.ci import unavailable

CHROMIUM = Path("/usr/bin/chromium")
# Where the browser tests save their screenshots, a folder per test module.
SCREENSHOTS = Path(os.environ.get("KTRDR_TEST_OUTPUT", Path(__file__).parents[2] / "test-output"))
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


@contextmanager
def browser_or_skip() -> Iterator[Any]:
    """``browser()`` for a test module: skipped when none can start (failed under CI=true)."""
    try:
        with browser() as launched:
            yield launched
    except BrowserUnavailable as exc:
        unavailable(str(exc))


class Page:
    """One browser tab on the dashboard at ``base`` (a backend's URL), recording console
    errors and uncaught exceptions; screenshots go to ``shots``."""

    def __init__(self, chromium: Any, base: str, shots: Path, *, timeout_ms: int = 60_000):
        self.context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(timeout_ms)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.base = base
        self.shots = shots

    def login(self, token: str) -> None:
        self.page.goto(self.base + "/")
        self.page.fill("#token", token)
        self.page.click("#login button[type=submit]")

    def go(self, route: str, ready: str) -> None:
        """Open ``#/route`` and wait for ``ready`` (a CSS selector) to be shown."""
        self.page.evaluate("route => { location.hash = route; }", f"#/{route}")
        self.page.wait_for_selector(ready)

    def shot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def cells(self, selector: str) -> list[list[str]]:
        return self.page.eval_on_selector_all(
            f"{selector} tbody tr",
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))",
        )

    def close(self) -> None:
        self.context.close()


def shown_number(value: Any) -> str:
    """What the dashboard shows for a number (charts.js: fmt; JSON has one number type, so a
    whole float reads as an integer there)."""
    if value is None:
        return "—"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4f}"
