"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from ktrdr_api import completion, errors, model_bundles
from ktrdr_api.artifacts import ArtifactStore
from ktrdr_api.auth import REFUSALS, Access, BodyLimit, ProtocolCheck, TokenAuth
from ktrdr_api.coordination import (
    ENDED,
    PENDING,
    WALKFORWARD,
    Duty,
    Listener,
    announce_on_commit,
    parse_pending,
)
from ktrdr_api.dashboard import SecurityHeaders
from ktrdr_api.db import SCHEMA_REVISION, is_postgresql, make_engine, schema_revision
from ktrdr_api.deps import Backend
from ktrdr_api.dispatch import Dispatcher
from ktrdr_api.ids import utcnow
from ktrdr_api.lifecycle import Transition
from ktrdr_api.metrics import Metrics, RequestTimer
from ktrdr_api.operations import Operations
from ktrdr_api.routes import (
    access as access_routes,
)
from ktrdr_api.routes import (
    artifacts,
    backtests,
    data,
    models,
    operations,
    runs,
    strategies,
    symbols,
    system,
    training,
    tunes,
    walkforwards,
    workers,
)
from ktrdr_api.routes import dashboard as dashboard_routes
from ktrdr_api.routes import metrics as metrics_route
from ktrdr_api.tokens import Tokens, server_key
from ktrdr_api.tunes import StudyWatch, TuneKeeper, Tunes
from ktrdr_api.walkforward import Orchestrator
from ktrdr_core.protocol import SERVED_BY, OperationKind
from ktrdr_core.settings import Settings
from ktrdr_core.version import __version__

log = logging.getLogger("ktrdr_api")

ROUTERS = (
    system,
    workers,
    operations,
    data,
    symbols,
    artifacts,
    strategies,
    training,
    backtests,
    walkforwards,
    tunes,
    models,
    runs,
    access_routes,
)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], datetime] = utcnow,
    sweep_interval_s: float | None = None,
) -> FastAPI:
    """Build the app for ``settings`` (default: from the environment).

    The database schema is migrated to the newest revision at start-up, so a fresh
    KTRDR_HOME needs no set-up. ``clock`` (aware UTC ``datetime``) and ``sweep_interval_s``
    (seconds between lease-expiry sweeps; default a quarter lease, at most 1 s) are there
    for tests.
    """
    settings = settings or Settings.from_env()
    engine = make_engine(settings)
    sessions = sessionmaker(engine, expire_on_commit=False)
    store = ArtifactStore(settings.home / "artifacts")
    ops = Operations(
        sessions,
        lease_seconds=settings.lease_seconds,
        max_attempts=settings.max_attempts,
        clock=clock,
    )
    ops.completion_hooks = {
        OperationKind.TRAINING: completion.catalogue_model(
            lambda sha: model_bundles.read_model_bundle(store.path(sha), sha)
        ),
        OperationKind.DATA_FETCH: completion.ingest_dataset(store, ops.add),
        OperationKind.GAP_REPORT: completion.store_exact_report(),
    }
    dispatcher = Dispatcher(ops)
    metrics = Metrics(ops)
    walkforwards = Orchestrator(ops, sessions)
    tunes = Tunes(ops, walkforwards, store)
    listener: Listener | None = None
    if is_postgresql(engine):
        # Every process, this one included, hears of new work through PostgreSQL.
        announce_on_commit(sessions, Orchestrator.concerns, dispatcher.addressee)
        listener = Listener(
            engine,
            lambda topic: _deliver(topic, dispatcher, walkforwards, tunes.watch),
            reconnected=lambda: _missed_wakeups(dispatcher, walkforwards, tunes.watch),
        )
    else:
        ops.on_pending = dispatcher.notify
    duties = [Duty(engine, "lease-sweep"), Duty(engine, "walkforward")]
    # Every process runs the study keeper: its pass only asks to cancel what is not yet
    # asked (idempotent), and the process that took a study's cancel acts on it at once.
    studies = TuneKeeper(ops)
    access = Access(
        bootstrap=settings.api_token,
        tokens=Tokens(server_key(settings)),
        sessions=sessions,
        clock=clock,
        count_failure=metrics.count_auth_failure,
    )
    backend = Backend(
        settings=settings,
        sessions=sessions,
        operations=ops,
        dispatcher=dispatcher,
        store=store,
        metrics=metrics,
        walkforwards=walkforwards,
        tunes=tunes,
    )

    def on_transition(transition: Transition) -> None:
        metrics.count_transition(transition)
        walkforwards.notice(transition)
        studies.notice(transition)
        tunes.watch.notice(transition)

    ops.on_transition = on_transition
    interval = sweep_interval_s or min(1.0, settings.lease_seconds / 4)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        if schema_revision(engine) != SCHEMA_REVISION:
            # alembic costs a noticeable share of start-up: imported only when migrating.
            from ktrdr_api.migrations import upgrade

            upgrade(engine)
        store.clear_temporary()
        dispatcher.attach(asyncio.get_running_loop())
        if listener is not None:
            listener.start()
        tasks = [
            asyncio.create_task(_sweep_leases(ops, interval, duties[0])),
            asyncio.create_task(walkforwards.run(duties[1])),
            asyncio.create_task(studies.run()),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if listener is not None:
                listener.stop()
            for duty in duties:
                duty.release()
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
    app.state.instance_id = settings.instance_id or secrets.token_hex(8)
    app.state.engine = engine
    app.state.backend = backend
    app.state.listener = listener  # None on SQLite
    app.state.access = access
    for module in ROUTERS:
        app.include_router(module.router, prefix="/api/v1", responses=REFUSALS)
    app.include_router(metrics_route.router, responses=REFUSALS)  # where Prometheus looks
    dashboard_routes.install(app)  # the web UI at /, its files under /ui/
    errors.install(app)
    app.add_middleware(ProtocolCheck)
    app.add_middleware(BodyLimit)
    # Added after the others, so it runs before them: nothing else sees an unauthenticated
    # request. With auth off (no KTRDR_API_TOKEN) it lets every caller in as an admin.
    app.add_middleware(TokenAuth, access=access)
    # The Content-Security-Policy on every answer, refusals included.
    app.add_middleware(SecurityHeaders)
    # Outermost: times every request, refused ones included.
    app.add_middleware(RequestTimer, metrics=metrics)
    return app


def serve_app() -> FastAPI:
    """The app of one of ``ktrdr-api serve --processes N``'s processes (uvicorn's factory,
    called in each): logging as ``serve`` sets it, settings from the environment."""
    from ktrdr_api.logs import configure_logging

    configure_logging()
    # No line per request, as with one process: uvicorn silences its access log when it
    # builds its configuration, which happened in the parent, not in this process.
    logging.getLogger("uvicorn.access").propagate = False
    return create_app()


def _deliver(
    topic: str, dispatcher: Dispatcher, walkforwards: Orchestrator, watch: StudyWatch
) -> None:
    """A wake-up from PostgreSQL (see ktrdr_api.coordination): new work, a walk-forward to
    look at, or a child that ended (a study's driver may wait for it)."""
    if topic.startswith(PENDING):
        dispatcher.notify(*parse_pending(topic))
    elif topic == WALKFORWARD:
        walkforwards.wake()
    elif topic.startswith(ENDED):
        watch.notify(topic.removeprefix(ENDED))


def _missed_wakeups(dispatcher: Dispatcher, walkforwards: Orchestrator, watch: StudyWatch) -> None:
    """The wake-up connection was lost for a while: whatever it missed, look now."""
    for kind in OperationKind:
        if SERVED_BY[kind] is not None:
            dispatcher.notify(kind)
    walkforwards.wake()
    watch.notify_all()


async def _sweep_leases(ops: Operations, interval_s: float, duty: Duty) -> None:
    """Every ``interval_s`` seconds, while this process holds the lease-sweep ``duty``,
    requeue or fail operations whose lease ran out (each change is logged by the state
    machine; one operation that cannot be handled is failed on its own by
    ``expire_leases``)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            if not await asyncio.to_thread(duty.held):
                continue
            await asyncio.to_thread(ops.expire_leases)
        except SQLAlchemyError as exc:
            # The database may be restarting; the next sweep tries again.
            log.warning("lease sweep failed: %s", str(exc).splitlines()[0])
        except Exception:
            # A bug must not end the sweep: no lease would ever expire again.
            log.exception("lease sweep failed; the next one tries again")
