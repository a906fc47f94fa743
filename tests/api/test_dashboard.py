"""The dashboard as the backend serves it: its files open without a token and hold no inline
script, every answer carries a same-origin-scripts Content-Security-Policy, the vendored chart
library is the one VENDOR.json names, and a report inlines only what its policy allows."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from ktrdr_api.app import create_app
from ktrdr_api.dashboard import LIBRARY, UI_DIR, report_html
from tests.support.api import API

ADMIN = "dashboard-admin-token"


class _Scripts(HTMLParser):
    """Each <script>: its attributes and its inline text."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.handlers: list[str] = []
        self._open: dict[str, str | None] | None = None

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self._open = dict(attrs)
            self.scripts.append((self._open, ""))

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._open is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag == "script":
            self._open = None


@pytest.fixture
def secured(settings, clock):
    app = create_app(settings.model_copy(update={"api_token": ADMIN}), clock=clock)
    with TestClient(app) as client:
        yield client


def test_the_vendored_library_is_the_one_vendor_json_names():
    vendor = json.loads((UI_DIR / "vendor" / "VENDOR.json").read_text())
    assert LIBRARY.name == vendor["file"]
    assert hashlib.sha256(LIBRARY.read_bytes()).hexdigest() == vendor["sha256"]
    assert f"Lightweight Charts™ v{vendor['version']}" in LIBRARY.read_text()[:300]
    assert "Apache License" in (UI_DIR / "vendor" / "LICENSE").read_text()


def test_the_page_opens_without_a_token_and_runs_no_inline_script(secured):
    page = secured.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    scripts = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    assert scripts.strip() == "script-src 'self'"  # no inline script, no other origin
    assert page.headers["x-content-type-options"] == "nosniff"
    parsed = _Scripts()
    parsed.feed(page.text)
    assert parsed.scripts and all(
        attrs.get("src") and not text.strip() for attrs, text in parsed.scripts
    )
    assert parsed.handlers == []
    for attrs, _ in parsed.scripts:
        asset = secured.get(attrs["src"])
        assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    # The API behind it still wants the token, and says so with the same policy.
    refused = secured.get(f"{API}/operations")
    assert (
        refused.status_code == 401
        and "script-src 'self'" in refused.headers["content-security-policy"]
    )


def test_the_ui_never_writes_html_from_data():
    for path in UI_DIR.glob("*.js"):
        text = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{path.name} uses {sink}"
        # The token goes in a header only: never into a URL or the console.
        assert not re.search(r"[?&]token=|console\.\w+\([^)]*[Tt]oken", text), path.name


def test_me_names_the_role_a_reader_token_has(secured):
    admin = {"Authorization": f"Bearer {ADMIN}"}
    made = secured.post(f"{API}/tokens", json={"name": "viewer", "role": "reader"}, headers=admin)
    reader = {"Authorization": f"Bearer {made.json()['secret']}"}
    assert secured.get(f"{API}/me", headers=reader).json() == {"name": "viewer", "role": "reader"}
    assert secured.get(f"{API}/me", headers=admin).json()["role"] == "admin"


def test_a_refused_token_is_not_logged(secured, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "not-a-real-token-8f1c2"
    response = secured.get(f"{API}/me", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 401
    assert "refused GET /api/v1/me" in caplog.text and secret not in caplog.text


def test_a_report_inlines_exactly_the_scripts_its_policy_allows():
    hostile = "</script><script>alert(1)</script>"
    series = {"strategy_name": hostile, "symbols": {}, "portfolio": None}
    page, policy = report_html("backtest", f"report of {hostile}", series)
    parsed = _Scripts()
    parsed.feed(page)
    executable = [text for attrs, text in parsed.scripts if attrs.get("type") != "application/json"]
    assert len(executable) == 2  # the library, then the page's chart code
    for text in executable:
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy.split("style-src")[0]
    # The name went in as data: no third script, and it reads back intact.
    [data] = [text for attrs, text in parsed.scripts if attrs.get("type") == "application/json"]
    assert json.loads(data)["strategy_name"] == hostile
    assert "<title>report of &lt;/script&gt;" in page
