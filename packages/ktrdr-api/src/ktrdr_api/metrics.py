"""Prometheus metrics, kept and written by ``prometheus_client`` (text exposition 0.0.4).

What an operator watches, read fresh from the database at each scrape:

- ``ktrdr_queue_depth{kind}``: operations waiting for a worker (pending);
- ``ktrdr_operations{kind,state}``: operations by kind and state;
- ``ktrdr_workers{kind,status}``: workers by kind and status (idle, busy, offline);
- ``ktrdr_workers_waiting{kind}``: workers long-polling for work right now;

and counted by this process since it started:

- ``ktrdr_operation_transitions_total{kind,event,state}``: committed state changes (claims,
  completions, lease expiries, requeues, …);
- ``ktrdr_auth_failures_total{reason}``: requests refused for a missing or invalid token
  (401) or a role or worker scope that does not cover them (403);
- ``ktrdr_http_request_duration_seconds{method,route,status}``: a latency histogram per
  route template (``/api/v1/operations/{operation_id}``, so ids never become labels).

Each app has its own registry. In one process, counters and the histogram live in memory.
With several processes behind one port (``ktrdr-api serve --processes N``), a scrape lands on
any one of them, so they use prometheus_client's multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR``
(set by ``serve`` before any process imports the library) names a folder where each process
writes its counts to files of its own, and every scrape sums the files of all processes, dead
ones included, so a counter never goes back when a process is replaced. The gauges come from
the database and are the same whichever process answers. Replicas on several hosts each
expose their own host's processes; Prometheus scrapes each replica.
"""

from __future__ import annotations

import os
import time
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from sqlalchemy import func, select

from ktrdr_api import workers
from ktrdr_api.lifecycle import Transition
from ktrdr_api.models import Operation, Worker
from ktrdr_api.store import OperationStore
from ktrdr_core.protocol import OperationKind, OperationState, WorkerStatus

# No ``*_created`` series (the time each labelled child was first seen): nobody reads them and
# they would double the exposition. The switch is the library's and process-wide; this backend
# is its only user in the process.
disable_created_metrics()

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""What ``generate_latest`` writes; the library's ``CONTENT_TYPE_LATEST`` names 1.0.0."""

LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds in seconds; up to 60 s because a claim is a long poll of up to a minute."""

AUTH_FAILURE_REASONS = ("missing", "invalid", "role", "scope")

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own variable: where processes sharing a port keep their counts."""

UNMATCHED_ROUTE = "(unmatched)"
"""Route label of a request no route answered (404, or refused before routing: 401, 426)."""


class DatabaseGauges:
    """The gauges read at scrape time: operations from the database (one query), workers
    from the database, long polls too (``polling_until``: every process's)."""

    def __init__(self, operations: OperationStore):
        self.operations = operations

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        ops = self.operations
        now = ops.clock()
        lease = ops.lease.total_seconds()
        with ops.sessions() as session:
            rows = session.execute(
                select(Operation.kind, Operation.state, func.count()).group_by(
                    Operation.kind, Operation.state
                )
            )
            by_state = Tally({(kind, state): count for kind, state, count in rows})
            rows = session.scalars(select(Worker)).all()
        by_status = Tally(
            (row.kind, workers.status(row, now=now, lease_seconds=lease)) for row in rows
        )
        polling = Tally(row.kind for row in rows if workers.polling(row, now))
        queue, operations, registered, long_polling = self._families()
        for kind in (k.value for k in OperationKind):
            queue.add_metric([kind], by_state[(kind, OperationState.PENDING.value)])
            for state in OperationState:
                operations.add_metric([kind, state.value], by_state[(kind, state.value)])
            for status in WorkerStatus:
                registered.add_metric([kind, status.value], by_status[(kind, status)])
            long_polling.add_metric([kind], polling[kind])
        yield from (queue, operations, registered, long_polling)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "ktrdr_queue_depth",
                "Operations waiting for a worker (pending), per kind.",
                labels=["kind"],
            ),
            GaugeMetricFamily(
                "ktrdr_operations", "Operations per kind and state.", labels=["kind", "state"]
            ),
            GaugeMetricFamily(
                "ktrdr_workers",
                "Registered workers per kind and status (idle, busy, offline).",
                labels=["kind", "status"],
            ),
            GaugeMetricFamily(
                "ktrdr_workers_waiting",
                "Workers long-polling for work right now (on any API process), per kind.",
                labels=["kind"],
            ),
        )


class Metrics:
    """One app's registry: the database gauges, the transition counter and the latency
    histogram; lives on the Backend."""

    def __init__(self, operations: OperationStore):
        self.registry = CollectorRegistry()
        self.registry.register(DatabaseGauges(operations))
        shared = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
        if shared:
            from prometheus_client.multiprocess import MultiProcessCollector

            # The counters below write to files in ``shared`` (the library chose its value
            # class at import, from the same variable); the scrape reads every process's.
            MultiProcessCollector(self.registry, path=shared)
        own = None if shared else self.registry
        self.transitions = Counter(
            "ktrdr_operation_transitions",
            "Committed operation state changes since this process started.",
            ["kind", "event", "state"],
            registry=own,
        )
        self.latency = Histogram(
            "ktrdr_http_request_duration_seconds",
            "Time from request received to response sent, per route template.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS_S,
            registry=own,
        )
        self.auth_failures = Counter(
            "ktrdr_auth_failures",
            "Requests refused since this process started: missing or invalid (unknown, "
            "revoked) token (401), a role or worker scope that does not cover it (403).",
            ["reason"],
            registry=own,
        )
        for reason in AUTH_FAILURE_REASONS:  # every series present from the start, at 0
            self.auth_failures.labels(reason)

    def count_transition(self, transition: Transition) -> None:
        """``Operations.on_transition``: one committed state change."""
        self.transitions.labels(
            transition.kind, str(transition.event), transition.target.value
        ).inc()

    def count_auth_failure(self, reason: str) -> None:
        """``Access.count_failure``: one refused request."""
        self.auth_failures.labels(reason).inc()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route, str(status)).observe(seconds)

    def render(self) -> bytes:
        """The whole exposition, in the text format ``CONTENT_TYPE`` names."""
        return generate_latest(self.registry)


class RequestTimer:
    """ASGI middleware observing every HTTP request's duration into ``metrics``.

    Outermost, so refused requests (401, 426) are counted too; the route is the template
    the router matched, read from the scope after the request was handled.
    """

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before responding

        async def timed_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.metrics.observe_request(
                scope["method"], route_template(scope), status, time.perf_counter() - started
            )


def route_template(scope: dict[str, Any]) -> str:
    """The template of the route that answered (``/api/v1/operations/{operation_id}``).

    The router leaves the matched route in the scope. Depending on the FastAPI version its
    ``path`` carries the prefix it was included under or not; without it, the prefix is the
    literal head of the request path in front of what the route's pattern matches.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if template is None:
        return UNMATCHED_ROUTE
    pattern = getattr(route, "path_regex", None)
    path = scope["path"]
    if pattern is None or pattern.match(path):
        return template
    cut = path.find("/", 1)
    while cut != -1:
        if pattern.match(path[cut:]):
            return path[:cut] + template
        cut = path.find("/", cut + 1)
    return template
