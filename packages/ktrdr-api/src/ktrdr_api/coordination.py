"""Past one API process: PostgreSQL as the coordinator, nothing home-made.

- **Wake-ups**: a transaction that makes an operation claimable (or that a walk-forward pass
  should look at) sends ``NOTIFY ktrdr, '<topic>'`` before it commits; PostgreSQL delivers it
  at the commit, to every process that listens, this one included (:class:`Listener`, one
  psycopg connection per process in a thread of its own). A rolled-back change announces
  nothing.
- **Duties** (lease sweeping, walk-forward passes): each process runs the loop, but only the
  holder of the duty's advisory lock does the work (:class:`Duty`). The lock belongs to a
  connection: when the leader dies, PostgreSQL drops its connection and the lock with it, and
  the next process to try (each tries once per period) takes over.
- **Migrations** run under an advisory lock too (:func:`ktrdr_api.db.advisory_lock`), so
  that N processes starting together migrate once.

On SQLite (one process by construction: ``ktrdr-api serve`` refuses more) wake-ups stay in
the process and every duty is this process's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import Connection, Engine, event, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ktrdr_api.db import is_postgresql, lock_key
from ktrdr_api.lifecycle import Transition
from ktrdr_api.store import noted
from ktrdr_core.protocol import OperationState

log = logging.getLogger("ktrdr_api.coordination")

CHANNEL = "ktrdr"
"""The one NOTIFY channel; payloads are topics: ``pending:<kind>`` (every process wakes a
waiter), ``pending:<kind>@<process>`` (only that process does: see :func:`topics_of`),
``walkforward`` or ``ended:<operation id>`` (a child of that operation ended: a study's
driver waits on it)."""

WALKFORWARD = "walkforward"
PENDING = "pending:"
ENDED = "ended:"
_AT = "@"


def pending_topic(kind: str, addressee: str | None = None) -> str:
    return PENDING + kind + (_AT + addressee if addressee else "")


def parse_pending(topic: str) -> tuple[str, str | None]:
    """(kind, addressee or None) of a ``pending:`` topic."""
    kind, _, addressee = topic.removeprefix(PENDING).partition(_AT)
    return kind, addressee or None


def announce_on_commit(
    sessions: sessionmaker[Session],
    concerns_walkforwards: Callable[[Transition], bool],
    addressee: Callable[[str], str | None],
) -> None:
    """Make every transaction of ``sessions`` NOTIFY the topics of the transitions it noted
    (:func:`topics_of`). Sent inside the transaction, so delivered only if it commits."""

    @event.listens_for(sessions, "before_commit")
    def _announce(session: Session) -> None:
        topics = set(topics_of(noted(session), concerns_walkforwards, addressee))
        for topic in sorted(topics):
            session.execute(text("SELECT pg_notify(:channel, :topic)"),
                            {"channel": CHANNEL, "topic": topic})  # fmt: skip


def topics_of(
    transitions: Iterable[Transition],
    concerns_walkforwards: Callable[[Transition], bool],
    addressee: Callable[[str], str | None],
) -> Iterator[str]:
    """``pending:<kind>`` for operations made claimable, ``walkforward`` for a transition
    that ``concerns_walkforwards``, ``ended:<parent>`` for a child that ended.

    A single new operation of a kind is addressed to the process ``addressee(kind)`` names
    (this one, when a waiter here would take it): the other processes then leave their
    waiters asleep instead of each running a claim that finds the operation taken, which is
    most of what a second API process costs per operation. Should that waiter be woken by
    something else before the notification arrives, the periodic re-check finds the
    operation (within ``dispatch.RECHECK_S``). Several of a kind at once go to every process.
    """
    pending = Counter(t.kind for t in transitions if t.target == OperationState.PENDING)
    for kind, count in pending.items():
        yield pending_topic(kind, addressee(kind) if count == 1 else None)
    for transition in transitions:
        if concerns_walkforwards(transition):
            yield WALKFORWARD
        if transition.ended_child_of:
            yield ENDED + transition.ended_child_of


class Listener:
    """``LISTEN ktrdr`` on a psycopg connection of its own, in a daemon thread; each
    notification's topic goes to ``deliver`` (called in that thread). After a lost connection
    (the database restarting) it reconnects every ``retry_s`` seconds and calls
    ``reconnected``: notifications sent meanwhile are lost, so the caller looks again."""

    def __init__(
        self,
        engine: Engine,
        deliver: Callable[[str], None],
        *,
        reconnected: Callable[[], None] = lambda: None,
        retry_s: float = 1.0,
    ):
        self.engine = engine
        self.deliver = deliver
        self.reconnected = reconnected
        self.retry_s = retry_s
        self.listening = threading.Event()  # set while LISTEN is in force
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ktrdr-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _connect(self):  # type: ignore[no-untyped-def]
        import psycopg

        # The engine's own URL and options, as the driver takes them.
        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        connection = psycopg.connect(*cargs, **cparams, autocommit=True)
        connection.execute(f"LISTEN {CHANNEL}")
        return connection

    def _run(self) -> None:
        import psycopg

        lost = False
        while not self._stop.is_set():
            try:
                with self._connect() as connection:
                    self.listening.set()
                    if lost:
                        log.info("listening for wake-ups again")
                        self.reconnected()
                        lost = False
                    while not self._stop.is_set():
                        for notify in connection.notifies(timeout=0.5):
                            self.deliver(notify.payload)
            except psycopg.Error as exc:
                self.listening.clear()
                if not lost:
                    log.warning(
                        "lost the wake-up connection (%s); retrying every %.0f s",
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                        self.retry_s,
                    )
                lost = True
                self._stop.wait(self.retry_s)
            except Exception:
                # A bug in a delivery must not end the wake-ups for good.
                log.exception("wake-up delivery failed; listening on")
        self.listening.clear()


class Duty:
    """One background duty (``name``) that one process at a time performs.

    :meth:`held` (blocking; call it from a thread) says whether this process holds the duty's
    advisory lock now, trying to take it when it does not. The lock lives on a connection
    kept for the purpose, in autocommit (no transaction stays open). On SQLite it is always
    held."""

    def __init__(self, engine: Engine, name: str):
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self._connection: Connection | None = None
        self._leading = False

    def held(self) -> bool:
        if not is_postgresql(self.engine):
            return True
        try:
            if self._connection is None:
                self._connection = self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
            if self._leading:
                self._connection.execute(select(1))  # still connected, so still ours
            else:
                self._leading = bool(
                    self._connection.execute(select(func.pg_try_advisory_lock(self.key))).scalar()
                )
                if self._leading:
                    log.info("%s: this process (pid %d) leads it now", self.name, os.getpid())
        except SQLAlchemyError as exc:
            if self._leading:
                log.warning("%s: lost the lead (%s)", self.name, str(exc).splitlines()[0])
            self.release(broken=True)
        return self._leading

    def release(self, *, broken: bool = False) -> None:
        """Give the duty up (closing its connection drops the lock)."""
        connection, self._connection, self._leading = self._connection, None, False
        if connection is None:
            return
        with contextlib.suppress(SQLAlchemyError):
            if broken:
                connection.invalidate()
            connection.close()
