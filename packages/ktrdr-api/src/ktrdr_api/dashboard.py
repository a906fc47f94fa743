"""The research dashboard: the static web UI served at ``/``, its security headers, and the
self-contained HTML reports.

The UI is plain ES modules and CSS under ``ktrdr_api/ui`` (package data; no build step), with
TradingView's lightweight-charts vendored under ``ui/vendor`` (see ``vendor/VENDOR.json``).
Its files hold no data, so they are served without a token (like ``/api/v1/health``); every
number the page shows comes from the API, with the token the page asks for once.

A report (``/api/v1/backtests/{id}/report.html``) is one HTML file that opens offline: the
chart library, the page's chart code and the series are inlined, and the scripts are allowed
by their hashes in the Content-Security-Policy, so no other script may run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

UI_DIR = Path(str(files("ktrdr_api") / "ui"))
UI_PREFIX = "/ui/"
"""Where the UI's files are served (``/`` answers ``index.html``)."""

LIBRARY = UI_DIR / "vendor" / "lightweight-charts.standalone.production.js"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""Only same-origin scripts, no inline script, no plugin, no framing. Inline styles are
allowed: the chart library sizes its canvases with them (styles run no code)."""

SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def is_ui_path(path: str) -> bool:
    """Whether ``path`` is one of the UI's static files (answered without a token)."""
    return path == "/" or path.startswith(UI_PREFIX)


class SecurityHeaders:
    """Add the Content-Security-Policy and its companions to every response that does not
    set its own (a report sets one naming its inline scripts' hashes)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


@cache
def _module_as_script(name: str) -> str:
    """A UI module with its ``export`` keywords removed, to be inlined in a report (a
    report's inline code imports nothing: it opens from a file)."""
    text = (UI_DIR / name).read_text(encoding="utf-8")
    return re.sub(r"^export ", "", text, flags=re.MULTILINE)


def _json_for_script(document: Any) -> str:
    # In a <script type="application/json">, "<" must not start "</script>": escape it.
    return (
        json.dumps(document, separators=(",", ":"))
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def _digest(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def report_html(kind: str, title: str, series: Any) -> tuple[str, str]:
    """The self-contained report of a backtest or walk-forward (``kind``) drawing ``series``
    (its page's series document): the HTML and the Content-Security-Policy that allows
    exactly its inline scripts."""
    library = LIBRARY.read_text(encoding="utf-8")
    code = _module_as_script("charts.js") + f"\nrenderReport({json.dumps(kind)});\n"
    style = (UI_DIR / "style.css").read_text(encoding="utf-8")
    policy = (
        f"default-src 'none'; script-src {_digest(library)} {_digest(code)}; "
        "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
    )
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">'
        f"<style>{style}</style></head>\n<body>\n"
        '<main id="view" class="report"></main>\n'
        f'<script type="application/json" id="ktrdr-series">{_json_for_script(series)}</script>\n'
        f"<script>{library}</script>\n<script>{code}</script>\n"
        '<footer class="attribution">Charts by TradingView Lightweight Charts™ '
        "(Apache-2.0), https://www.tradingview.com/</footer>\n</body></html>\n"
    )
    return page, policy
