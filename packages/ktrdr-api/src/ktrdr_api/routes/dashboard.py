"""The dashboard's static files: ``/`` answers the page, ``/ui/...`` its modules, style and
the vendored chart library (see ``ktrdr_api.dashboard``). Open without a token: they hold no
data, and the page asks for the token before it reads the API."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from ktrdr_api.dashboard import UI_DIR, UI_PREFIX


def install(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/ui/``."""

    page = (UI_DIR / "index.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        # Whether to ask for a token before the first call (none is asked of a backend with
        # auth off). no-cache: a new backend version's page is picked up on the next load.
        auth = "token" if request.app.state.access.enabled else "off"
        return HTMLResponse(page.replace("{auth}", auth), headers={"Cache-Control": "no-cache"})

    app.mount(UI_PREFIX.rstrip("/"), StaticFiles(directory=UI_DIR), name="ui")
