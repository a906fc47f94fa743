"""Prometheus metrics, written in the text exposition format (version 0.0.4) by hand.

What an operator watches, read fresh from the database at each scrape:

- ``ktrdr_queue_depth{kind}``: operations waiting for a worker (pending);
- ``ktrdr_operations{kind,state}``: operations by kind and state;
- ``ktrdr_workers{kind,status}``: workers by kind and status (idle, busy, offline);
- ``ktrdr_workers_waiting{kind}``: workers long-polling for work right now;

and counted by this process since it started:

- ``ktrdr_operation_transitions_total{kind,event,state}``: committed state changes (claims,
  completions, lease expiries, requeues, …);
- ``ktrdr_http_request_duration_seconds{method,route,status}``: a latency histogram per
  route template (``/api/v1/operations/{operation_id}``, so ids never become labels).

Counters and the histogram live in memory: several API processes each expose their own, as
Prometheus expects. No client library: the format is a few lines of text.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import func, select

from ktrdr_api import workers
from ktrdr_api.dispatch import Dispatcher
from ktrdr_api.lifecycle import Transition
from ktrdr_api.models import Operation, Worker
from ktrdr_api.store import OperationStore
from ktrdr_core.protocol import OperationKind, OperationState, WorkerStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds in seconds; up to 60 s because a claim is a long poll of up to a minute."""

UNMATCHED_ROUTE = "(unmatched)"
"""Route label of a request no route answered (404, or refused before routing: 401, 426)."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Mapping[str, str]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{key}="{_escape(str(value))}"' for key, value in pairs.items()) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if isinstance(value, float) else str(value)


class LatencyHistogram:
    """Request durations per (method, route, status); thread-safe."""

    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS_S):
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[str, str, str], list[Any]] = {}
        self._lock = threading.Lock()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        index = bisect.bisect_left(self.buckets, seconds)  # == len(buckets): only +Inf
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = [[0] * (len(self.buckets) + 1), 0.0, 0]
            series[0][index] += 1
            series[1] += seconds
            series[2] += 1

    def render(self, name: str) -> Iterator[str]:
        with self._lock:
            snapshot = {key: (list(c), total, n) for key, (c, total, n) in self._series.items()}
        yield f"# HELP {name} Time from request received to response sent, per route template."
        yield f"# TYPE {name} histogram"
        for (method, route, status), (counts, total, n) in sorted(snapshot.items()):
            labels = {"method": method, "route": route, "status": status}
            cumulative = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                cumulative += count
                yield f"{name}_bucket{_labels(labels | {'le': _number(bound)})} {cumulative}"
            yield f"{name}_sum{_labels(labels)} {_number(total)}"
            yield f"{name}_count{_labels(labels)} {n}"


class Counter:
    """A labelled counter; thread-safe."""

    def __init__(self, label_names: tuple[str, ...]):
        self.label_names = label_names
        self._values: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0) + 1

    def items(self) -> list[tuple[tuple[str, ...], int]]:
        with self._lock:
            return sorted(self._values.items())


class Metrics:
    """What this process counts; lives on the Backend."""

    def __init__(self) -> None:
        self.latency = LatencyHistogram()
        self.transitions = Counter(("kind", "event", "state"))

    def count_transition(self, transition: Transition) -> None:
        """``Operations.on_transition``: one committed state change."""
        self.transitions.inc(transition.kind, str(transition.event), transition.target.value)


class RequestTimer:
    """ASGI middleware observing every HTTP request's duration into ``metrics.latency``.

    Outermost, so refused requests (401, 426) are counted too; the route is the template
    the router matched, read from the scope after the request was handled.
    """

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.latency = metrics.latency

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
            self.latency.observe(
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


def _gauge(name: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples]
    return lines


def render(metrics: Metrics, operations: OperationStore, dispatcher: Dispatcher) -> str:
    """The whole exposition: database gauges (one query each) and this process's counters."""
    ops = operations
    now = ops.clock()
    waiting = dispatcher.waiting()
    waiting_ids = {worker_id for worker_id, _, _ in waiting}
    kinds = [k.value for k in OperationKind]
    with ops.sessions() as session:
        by_state = {
            (kind, state): count
            for kind, state, count in session.execute(
                select(Operation.kind, Operation.state, func.count()).group_by(
                    Operation.kind, Operation.state
                )
            )
        }
        worker_counts: dict[tuple[str, str], int] = {}
        for row in session.scalars(select(Worker)):
            status = workers.status(
                row, now=now, waiting=waiting_ids, lease_seconds=ops.lease.total_seconds()
            )
            key = (row.kind, status.value)
            worker_counts[key] = worker_counts.get(key, 0) + 1

    lines = _gauge(
        "ktrdr_queue_depth",
        "Operations waiting for a worker (pending), per kind.",
        (({"kind": k}, by_state.get((k, OperationState.PENDING.value), 0)) for k in kinds),
    )
    lines += _gauge(
        "ktrdr_operations",
        "Operations per kind and state.",
        (
            ({"kind": k, "state": s.value}, by_state.get((k, s.value), 0))
            for k in kinds
            for s in OperationState
        ),
    )
    lines += _gauge(
        "ktrdr_workers",
        "Registered workers per kind and status (idle, busy, offline).",
        (
            ({"kind": k, "status": s.value}, worker_counts.get((k, s.value), 0))
            for k in kinds
            for s in WorkerStatus
        ),
    )
    lines += _gauge(
        "ktrdr_workers_waiting",
        "Workers long-polling this process for work right now, per kind.",
        (({"kind": k}, sum(1 for _, kind, _ in waiting if kind == k)) for k in kinds),
    )
    name = "ktrdr_operation_transitions_total"
    lines += [
        f"# HELP {name} Committed operation state changes since this process started.",
        f"# TYPE {name} counter",
    ]
    lines += [
        f"{name}{_labels(dict(zip(metrics.transitions.label_names, key, strict=True)))} {value}"
        for key, value in metrics.transitions.items()
    ]
    lines += metrics.latency.render("ktrdr_http_request_duration_seconds")
    return "\n".join(lines) + "\n"
