"""A simulated fleet: asyncio workers speaking the real worker protocol over HTTP, doing no work.

Each :class:`SimWorker` registers as a backtest worker, long-polls ``claim``, sends heartbeats
with progress, and completes with a small result (a report artifact uploaded once, for the
whole fleet, by :func:`report_artifact`). Around each call it keeps what a fleet run is judged
by: when each claim arrived (wall clock, to set against the operation's ``created_at``), each
heartbeat's round trip, which operations it completed, and every answer it got.

After a lost connection (an API process killed, say) it retries as ``ktrdr-worker`` does:
capped exponential backoff from 50 ms to 1 s; a 404 (not registered, the backend lost its
record) makes it register again; a 409 on a completion (the operation moved on) makes it drop
the operation. A ``hold`` event, when given, keeps a claimed operation running, heartbeat by
heartbeat, until the caller sets it: the drills hold operations across a fault that way.

Shared by bench/fleet.py (the fleet at scale) and tests/e2e/test_drills_api_processes.py
(a process killed under it).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ktrdr_core.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from ktrdr_worker.service.config import POLL_SECONDS

REPORT = b'{"simulated": true}'
"""The result every simulated backtest completes with (uploaded once as an artifact)."""


def report_artifact(client) -> str:  # type: ignore[no-untyped-def]
    """Upload :data:`REPORT` through ``client`` (a KtrdrClient); returns its sha256."""
    from ktrdr_core.protocol import ArtifactKind

    path = Path.cwd() / "simulated-report.json"
    path.write_bytes(REPORT)
    try:
        return client.upload_artifact(path, ArtifactKind.REPORT).sha256
    finally:
        path.unlink(missing_ok=True)


def http_client(base_url: str, token: str, connections: int) -> httpx.AsyncClient:
    """One client for the whole fleet: keep-alive connections, enough for every worker's long
    poll and heartbeat at once; no read timeout shorter than a long poll."""
    headers = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(
        base_url=f"{base_url}/api/v1",
        headers=headers,
        timeout=httpx.Timeout(120.0, connect=10.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


@dataclass
class SimWorker:
    """One simulated backtest worker (see the module docstring)."""

    worker_id: str
    http: httpx.AsyncClient
    report_sha256: str
    poll_s: float = POLL_SECONDS  # as ktrdr-worker's default
    heartbeats: int = 1  # per operation, before completing
    beat_every_s: float = 0.5  # while held
    hold: asyncio.Event | None = None
    claimed_at: dict[str, float] = field(default_factory=dict)  # op -> wall time of the answer
    completed: list[str] = field(default_factory=list)
    heartbeat_s: list[float] = field(default_factory=list)  # round trips
    answered_at: list[float] = field(default_factory=list)  # monotonic time of each 2xx
    registrations: int = 0
    dropped: list[str] = field(default_factory=list)  # ops given up on a 409
    holding: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set (the current long poll is left to end by itself)."""
        await self._call("POST", "", self._registration(), register=True)
        while not stop.is_set():
            answer = await self._call(
                "POST", f"/{self.worker_id}/claim", {"timeout_s": self.poll_s}
            )
            if answer is None or answer.status_code == 204:
                continue
            offer = answer.json()
            op_id, attempt = offer["operation_id"], offer["attempt"]
            self.claimed_at[op_id] = time.time()
            self.holding = op_id
            await self._work(op_id, attempt)
            self.holding = None

    async def _work(self, op_id: str, attempt: int) -> None:
        beats = 0
        while beats < self.heartbeats or (self.hold is not None and not self.hold.is_set()):
            if beats >= self.heartbeats:
                await asyncio.sleep(self.beat_every_s)
            body = {
                "operation_id": op_id,
                "attempt": attempt,
                "progress": {"percent": 50.0, "message": f"simulated, beat {beats + 1}"},
            }
            started = time.perf_counter()
            answer = await self._call("POST", f"/{self.worker_id}/heartbeat", body)
            if answer is None:
                return
            self.heartbeat_s.append(time.perf_counter() - started)
            if answer.status_code == 409:
                self.dropped.append(op_id)
                return
            beats += 1
        result = {"kind": "backtest", "report_sha256": self.report_sha256, "summary": {}}
        answer = await self._call(
            "POST",
            f"/{self.worker_id}/operations/{op_id}/complete",
            {"attempt": attempt, "result": result},
        )
        if answer is not None and answer.status_code == 200:
            self.completed.append(op_id)
        elif answer is not None and answer.status_code == 409:
            self.dropped.append(op_id)

    def _registration(self) -> dict:
        return {
            "worker_id": self.worker_id,
            "kind": "backtest",
            "capabilities": {"device": "cpu", "cpu_count": 1},
            "host": "simulated",
        }

    async def _call(self, method: str, path: str, body: dict, *, register: bool = False):  # type: ignore[no-untyped-def]
        """The answer (2xx, 204 or 409), retrying lost connections and 5xx with backoff and
        registering again on a 404; None when the worker must give the step up (4xx)."""
        delay = 0.05
        while True:
            try:
                answer = await self.http.request(method, f"/workers{path}", json=body)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code < 500:
                if answer.status_code == 404 and not register:
                    await self._call("POST", "", self._registration(), register=True)
                    continue
                if answer.status_code in (200, 204):
                    self.answered_at.append(time.monotonic())
                    if register:
                        self.registrations += 1
                    return answer
                if answer.status_code == 409:
                    return answer
                raise AssertionError(
                    f"{self.worker_id}: {method} {path} answered {answer.status_code}: "
                    f"{answer.text}"
                )
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
