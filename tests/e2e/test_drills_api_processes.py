"""Fault drill: one of two API processes is SIGKILLed while workers long-poll through both.

``ktrdr-api serve --processes 2`` on a real PostgreSQL; eight simulated workers
(tests/support/fleet.py: the real protocol over HTTP, each on connections of its own) are
registered, four holding an operation (held by the test, heartbeat after heartbeat) and four
long-polling. The kernel decides which process accepts each connection (on an idle machine
one process may take them all), so the process holding the most of the workers' connections
is killed: those workers at least must carry on through the other. Then more operations
arrive and the held ones are let go.

Every worker carries on through the surviving process (or the one uvicorn starts in the dead
one's place), re-registering if it must; every operation completes exactly once, with one
attempt; /metrics counts the same claims whichever process answers the scrape, the dead
one's included. The time each worker took to be answered again after the kill is printed
(the target is 3 s), not asserted: nothing here depends on the machine's speed, each step
waits for a state it can see.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from ktrdr_core.protocol import AttemptOutcome, OperationState
from tests.support.bundles import seed_model
from tests.support.fleet import SimWorker, http_client, report_artifact
from tests.support.stack import ApiServer

pytestmark = pytest.mark.slow  # two API processes, eight workers, sixteen operations

TOKEN = "drill-secret"
WORKERS, HELD, LATER = 8, 4, 12


@pytest.fixture
def api(postgres_server, tmp_path):
    url = postgres_server.create_database("ktrdr_drill_processes")
    server = ApiServer(
        tmp_path / "home",
        lease_seconds=10,
        database_url=url,
        token=TOKEN,
        extra_env={"KTRDR_API_PROCESSES": "2"},
    ).start()
    yield server, url
    server.stop()


def api_processes(server: ApiServer) -> list[int]:
    """The pids of the processes serving (uvicorn's children), not its helpers."""
    pids = []
    for task in Path(f"/proc/{server.process.pid}/task").glob("*/children"):
        for pid in map(int, task.read_text().split()):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
                pids.append(pid)
    return pids


def connections_by_process(port: int, pids: list[int]) -> dict[int, int]:
    """How many established connections to ``port`` each of ``pids`` holds (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # ESTABLISHED
                inodes.add(fields[9])
    counts = {}
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held += 1
        counts[pid] = held
    return counts


async def until(condition, what: str, limit_s: float = 60.0):  # type: ignore[no-untyped-def]
    """Poll ``condition`` until truthy (returned); a bounded wait, never a timing check."""
    deadline = time.monotonic() + limit_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {limit_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)
    return value


def claims_counted(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("ktrdr_operation_transitions_total{") and 'event="claim"' in line
    )


async def drill(server: ApiServer, url: str, model_id: str, report: str) -> dict:
    engine = create_engine(url)

    def listening() -> bool:
        with engine.connect() as connection:
            return connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN ktrdr'")
            ).scalar() == 2  # fmt: skip

    await until(listening, "both API processes listening", 60)
    hold, stop = asyncio.Event(), asyncio.Event()
    clients = [http_client(server.url, TOKEN, 2) for _ in range(WORKERS)]
    fleet = [
        SimWorker(f"drill-{n}", client, report, poll_s=2.0, hold=hold, beat_every_s=0.3)
        for n, client in enumerate(clients)
    ]
    tasks = [asyncio.create_task(worker.run(stop)) for worker in fleet]
    creator = http_client(server.url, TOKEN, 2)
    try:
        await until(lambda: all(w.registrations for w in fleet), "every worker registered")
        created = []
        for _ in range(HELD):
            answer = await creator.post("/backtests", json={"model_id": model_id})
            assert answer.status_code == 201, answer.text
            created.append(answer.json()["operation_id"])
        await until(lambda: sum(w.holding is not None for w in fleet) == HELD,
                    f"{HELD} workers holding an operation")  # fmt: skip

        def two_processes() -> list[int] | None:
            pids = api_processes(server)
            return pids if len(pids) == 2 else None

        pids = await until(two_processes, "two API processes")

        def connected() -> dict[int, int] | None:
            counts = connections_by_process(server.port, pids)
            return counts if any(counts.values()) else None

        spread = await until(connected, "worker connections on the API processes")
        victim = max(spread, key=spread.get)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        # The creator's kept-alive connection may have been the dead process's: a user's next
        # command opens a new one.
        await creator.aclose()
        creator = http_client(server.url, TOKEN, 2)
        for _ in range(LATER):
            answer = await creator.post("/backtests", json={"model_id": model_id})
            assert answer.status_code == 201, answer.text
            created.append(answer.json()["operation_id"])
        hold.set()
        await until(lambda: sum(len(w.completed) for w in fleet) >= len(created),
                    "every operation completed", 120)  # fmt: skip
        await until(lambda: all(w.answered_at and w.answered_at[-1] > killed_at for w in fleet),
                    "every worker answered after the kill", 60)  # fmt: skip
        scrapes = []
        for _ in range(6):  # new connections: either process may answer
            async with httpx.AsyncClient(headers=creator.headers) as fresh:
                scrapes.append((await fresh.get(f"{server.url}/metrics")).text)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in [*clients, creator]:
            await client.aclose()
        engine.dispose()
    return {
        "created": created,
        "fleet": fleet,
        "spread": spread,
        "victim": victim,
        "recovery_s": {
            w.worker_id: min(t for t in w.answered_at if t > killed_at) - killed_at for w in fleet
        },
        "scrapes": scrapes,
    }


def test_killing_one_of_two_api_processes_loses_and_repeats_nothing(api, tmp_path):
    server, url = api
    model_id = seed_model(server, tmp_path)
    with server.client() as client:
        report = report_artifact(client)
    result = asyncio.run(drill(server, url, model_id, report))
    created, fleet = result["created"], result["fleet"]

    # Nothing lost, nothing run twice: each operation completed once, by one attempt.
    completions = Counter(op for worker in fleet for op in worker.completed)
    assert sorted(completions) == sorted(created)
    assert set(completions.values()) == {1}
    assert [op for worker in fleet for op in worker.dropped] == []
    with server.client() as client:
        for op_id in created:
            view = client.get_operation(op_id)
            assert view.state == OperationState.COMPLETED, view
            [attempt] = view.reproducibility.attempts
            assert attempt.outcome == AttemptOutcome.COMPLETED
    # The counts of every process, the killed one's included, whichever process answers.
    assert {claims_counted(scrape) for scrape in result["scrapes"]} == {float(len(created))}

    recovery = result["recovery_s"]
    print(
        f"\nconnections per API process before the kill: {result['spread']} "
        f"(killed {result['victim']}); answered again after the kill: "
        f"worst {max(recovery.values()):.2f} s (target 3 s), "
        f"re-registrations {sum(w.registrations - 1 for w in fleet)}"
    )
