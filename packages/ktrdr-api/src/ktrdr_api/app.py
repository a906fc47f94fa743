"""The FastAPI application factory."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from ktrdr_api.db import make_engine
from ktrdr_api.migrations import upgrade
from ktrdr_api.routes import system
from ktrdr_core.settings import Settings
from ktrdr_core.version import __version__


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for `settings` (default: from the environment).

    The database schema is migrated to the newest revision at start-up, so a
    fresh KTRDR_HOME needs no set-up.
    """
    settings = settings or Settings.from_env()
    engine = make_engine(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        upgrade(engine)
        yield
        engine.dispose()

    app = FastAPI(
        title="ktrdr",
        version=__version__,
        docs_url="/api/v1/docs",
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.include_router(system.router, prefix="/api/v1")
    return app
