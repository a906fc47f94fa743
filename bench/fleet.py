"""A simulated fleet against real API processes on a real PostgreSQL.

``ktrdr-api serve --processes P`` (token auth on) on a PostgreSQL started here; W simulated
workers (tests/support/fleet.py: asyncio clients speaking the real protocol — register,
long-poll claim, a heartbeat with progress, complete with a small result — doing no work)
spread over C load-generator processes (``--clients``; by default one per 125 workers, at
most 4: one asyncio thread drives about that many before its own lag shows in the figures);
backtests created over HTTP (POST /backtests) at a steady rate from this process.

First the sustainable rate of one process is measured (200 workers, operations submitted as
fast as they complete, a backlog kept); every run then offers 80 % of it, for 100, 200 and
500 workers on 1 and 2 processes. Per run it prints:

- ops/s: completed operations per second, first creation to last completion;
- claim p50 / p99 (ms): from the operation's ``created_at`` (the backend's clock, stamped
  before the insert) to the worker holding the parsed claim (the same machine's clock);
- heartbeat p99 (ms): the round trip of a heartbeat with progress;
- PG conns: most PostgreSQL connections open at once (sampled every 0.5 s);
- API CPU-s/op: CPU seconds of every API process (the supervisor and its children, from
  /proc) per completed operation, creations included;
- double claims: attempts that held an operation while the attempt before them still did,
  from the attempt records (a requeue after a lost lease is not one);
- lost leases: attempts whose lease ran out (a claim or heartbeat answered too late for the
  worker: the sign of an API process past saturation);
- then, for each resource, the share of its capacity used (API processes: CPU over wall
  time per process, at most one core each; PostgreSQL: CPU over wall time of its server
  processes; the load generator: its busiest process, of one core, asyncio being one thread;
  the machine: all its cores), and the first to saturate: the highest.

Targets: 200 workers on 2 processes, claim p99 ≤ 100 ms; 0 double claims at every size;
API CPU-s/op with 2 processes ≤ 1.2 × with 1 (the cost of coordination). Throughput is
printed, not judged: the API processes, PostgreSQL and this generator share the machine.

    .venv/bin/python bench/fleet.py                 # 100/200/500 workers × 1/2 processes
    .venv/bin/python bench/fleet.py --quick         # a small run that checks the bench works
    .venv/bin/python bench/fleet.py --workers 200 --processes 2 --ops 10000 --rate 60

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test helpers (tests/support), shared with every bench

import backend  # noqa: E402  (bench/backend.py: server, PostgreSQL, seeded model)
import httpx  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from tests.support.fleet import SimWorker, http_client, report_artifact  # noqa: E402
from tests.support.postgres import start_postgres  # noqa: E402
from tests.support.stack import ApiServer  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
LEASE_S = 60.0  # long: a heartbeat starved on a saturated machine must not requeue anything
P99_TARGET_MS = 100.0
CPU_RATIO_TARGET = 1.2


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (from /proc; a pid gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            queue += [int(child) for child in task.read_text().split()]
    return found


@dataclass
class Run:
    workers: int
    processes: int
    ops: int
    rate: float | None  # offered per second; None: a backlog kept (the calibration)
    clients: int = 1  # load-generator processes the fleet is spread over
    completed: int = 0
    api_cpu_s: float = 0.0
    wall_s: float = 0.0
    claim_ms: tuple[float, float] = (0.0, 0.0)
    heartbeat_p99_ms: float = 0.0
    pg_connections: int = 0
    api_cpu_per_op: float = 0.0
    double_claims: int = 0
    lost_leases: int = 0
    shares: dict[str, float] | None = None

    @property
    def ops_per_s(self) -> float:
        return self.completed / self.wall_s if self.wall_s else 0.0


class Stack:
    """PostgreSQL plus a seeded model (once), and the API at a given process count."""

    def __init__(self, work: Path):
        self.work = work
        self.pg = start_postgres(work / "pg")
        self.api: ApiServer | None = None
        self.database = 0

    def start(self, processes: int) -> tuple[ApiServer, str, str, str]:
        """A fresh database, the API on it; (api, database URL, model id, report sha)."""
        self.database += 1
        url = self.pg.create_database(f"fleet{self.database}")
        self.api = backend.start_api(
            self.work / f"home{self.database}",
            url,
            lease_seconds=LEASE_S,
            extra_env={"KTRDR_API_PROCESSES": str(processes)},
        )
        model_id = backend.seed_model(self.api, self.work)
        with self.api.client() as client:
            report = report_artifact(client)
        return self.api, url, model_id, report

    def stop_api(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None

    def close(self) -> None:
        self.stop_api()
        self.pg.ctl("stop")
        shutil.rmtree(self.pg.data_dir.parent, ignore_errors=True)


def _client_process(url: str, report: str, worker_ids: list[str], stop: Any,
                    results: Any) -> None:  # fmt: skip
    """One load-generator process (spawned): its share of the fleet until ``stop`` is set,
    then what its workers saw, put on ``results``."""
    results.put(asyncio.run(_client_fleet(url, report, worker_ids, stop)))


async def _client_fleet(url: str, report: str, worker_ids: list[str], stop: Any) -> dict:
    done = asyncio.Event()
    async with http_client(url, backend.TOKEN, len(worker_ids) * 2 + 4) as http:
        fleet = [SimWorker(worker_id, http, report) for worker_id in worker_ids]
        tasks = [asyncio.create_task(w.run(done)) for w in fleet]
        while not stop.is_set():
            await asyncio.sleep(0.1)
        done.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "claimed_at": {op: at for w in fleet for op, at in w.claimed_at.items()},
        "completed": sum(len(w.completed) for w in fleet),
        "heartbeat_s": [s for w in fleet for s in w.heartbeat_s],
    }


def drive(run: Run, api: ApiServer, url: str, model_id: str, report: str,
          postmaster: int) -> Run:  # fmt: skip
    """Create ``run.ops`` backtests at ``run.rate`` per second against ``run.workers``
    simulated workers spread over ``run.clients`` processes; fill in the figures."""
    ctx = mp.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    ids = [f"sim-{n:04d}" for n in range(run.workers)]
    clients = [
        ctx.Process(
            target=_client_process,
            args=(api.url, report, ids[n :: run.clients], stop, results),
            daemon=True,
        )
        for n in range(run.clients)
    ]
    for client in clients:
        client.start()
    try:
        asyncio.run(_measure(run, api, url, model_id, [c.pid for c in clients], postmaster))
        stop.set()
        seen = [results.get(timeout=120) for _ in clients]
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=30)
            if client.is_alive():
                client.kill()
    _tally(run, url, seen)
    return run


async def _measure(run: Run, api: ApiServer, url: str, model_id: str, clients: list[int],
                   postmaster: int) -> None:  # fmt: skip
    """Offer the operations and wait until every one has ended; timings and CPU shares."""
    engine = create_engine(url)

    def count(sql: str) -> int:
        with engine.connect() as connection:
            return int(connection.execute(text(sql)).scalar() or 0)

    # Completed, or failed after lost leases: nothing left to wait for.
    ended_sql = (
        "SELECT count(*) FROM operations WHERE kind = 'backtest' "
        "AND state IN ('completed', 'failed', 'cancelled')"
    )
    while count("SELECT count(*) FROM workers") < run.workers:
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # every worker into its first long poll
    peak = 0
    cpu_api = cpu_seconds(descendants(api.process.pid))
    cpu_pg = cpu_seconds(descendants(postmaster))
    cpu_clients = {pid: cpu_seconds([pid]) for pid in clients}
    cpu_me = time.process_time()
    created = 0
    body = {"model_id": model_id}
    stop = asyncio.Event()
    started = time.monotonic()

    async def sample() -> None:
        nonlocal peak
        database = url.rsplit("/", 1)[1]
        while not stop.is_set():
            peak = max(peak, count(f"SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                   f"'{database}'"))  # fmt: skip
            await asyncio.sleep(0.5)

    async with http_client(api.url, backend.TOKEN, 32) as http:
        sampler = asyncio.create_task(sample())

        async def create_one() -> None:
            # A kept-alive connection the server closed as it was reused (its keep-alive
            # timeout) fails before the request was read: sent again on a new one.
            for _ in range(3):
                try:
                    answer = await http.post("/backtests", json=body)
                    break
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    continue
            answer.raise_for_status()

        pending: set[asyncio.Task] = set()
        ended, looked = 0, 0.0
        while created < run.ops:
            if run.rate is None:  # calibration: keep a backlog of one operation per worker
                if time.monotonic() - looked > 0.1:
                    ended, looked = count(ended_sql), time.monotonic()
                if created - ended >= run.workers:
                    await asyncio.sleep(0.01)
                    continue
            else:
                due = started + created / run.rate
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
            task = asyncio.create_task(create_one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            created += 1
        await asyncio.gather(*pending)
        while count(ended_sql) < run.ops:
            await asyncio.sleep(0.2)
        run.wall_s = time.monotonic() - started
        stop.set()
        await asyncio.gather(sampler, return_exceptions=True)
    used_api = cpu_seconds(descendants(api.process.pid)) - cpu_api
    used_pg = cpu_seconds(descendants(postmaster)) - cpu_pg
    used_clients = [cpu_seconds([pid]) - cpu_clients[pid] for pid in clients]
    used_me = time.process_time() - cpu_me
    engine.dispose()
    run.pg_connections = peak
    run.api_cpu_s = used_api
    cores = os.cpu_count() or 1
    run.shares = {
        "API processes": used_api / run.wall_s / min(run.processes, cores),
        "PostgreSQL": used_pg / run.wall_s / cores,
        # Each generator process is one asyncio thread: its busiest one, of one core.
        "load generator": max([used_me, *used_clients]) / run.wall_s,
        "machine": (used_api + used_pg + used_me + sum(used_clients)) / run.wall_s / cores,
    }


def _tally(run: Run, url: str, seen: list[dict]) -> None:
    """Claim latency, heartbeats and double claims, from the backend's records and what the
    client processes' workers saw."""
    claimed_at: dict[str, float] = {}
    for part in seen:
        claimed_at.update(part["claimed_at"])
    run.completed = sum(part["completed"] for part in seen)
    run.api_cpu_per_op = run.api_cpu_s / run.completed if run.completed else 0.0
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, created_at, attempts FROM operations WHERE kind = 'backtest'")
        ).all()
    engine.dispose()
    latencies = sorted(
        (claimed_at[op] - created.timestamp()) * 1e3
        for op, created, _ in rows
        if op in claimed_at and isinstance(created, datetime)
    )
    run.claim_ms = (backend.percentile(latencies, 0.5), backend.percentile(latencies, 0.99))
    # Two attempts holding one operation at once; a requeue after a lost lease is not one.
    run.double_claims = sum(_overlaps(attempts) for _, _, attempts in rows)
    run.lost_leases = sum(
        a.get("outcome") == "lease_expired" for _, _, attempts in rows for a in attempts
    )
    beats = [s * 1e3 for part in seen for s in part["heartbeat_s"]]
    run.heartbeat_p99_ms = backend.percentile(beats, 0.99)


def _overlaps(attempts: list[dict]) -> int:
    """Attempts claimed before the one before them ended (the attempt records' own clock)."""
    count = 0
    for before, after in itertools.pairwise(attempts):
        ended = before.get("ended_at")
        if ended is None or datetime.fromisoformat(after["claimed_at"]) < datetime.fromisoformat(
            ended
        ):
            count += 1
    return count


def measure(stack: Stack, run: Run) -> Run:
    api, url, model_id, report = stack.start(run.processes)
    postmaster = int((stack.pg.data_dir / "postmaster.pid").read_text().split()[0])
    try:
        return drive(run, api, url, model_id, report, postmaster)
    finally:
        stack.stop_api()


def row(run: Run) -> str:
    """The run's line of the table."""
    assert run.shares is not None
    name, share = max(run.shares.items(), key=lambda item: item[1])
    return (f"{run.workers:>7} | {run.processes:>5} | {run.completed:>6} | "
            f"{run.ops_per_s:>6.1f} | {run.claim_ms[0]:>7.1f}ms | {run.claim_ms[1]:>7.1f}ms | "
            f"{run.heartbeat_p99_ms:>5.1f}ms | {run.pg_connections:>8} | "
            f"{run.api_cpu_per_op * 1e3:>10.2f}ms | {run.double_claims:>6} | "
            f"{run.lost_leases:>11} | {name} {share:.0%}")  # fmt: skip


def clients_for(workers: int, asked: int | None) -> int:
    """Load-generator processes for a fleet of ``workers``: ``asked``, or one per 125."""
    return asked or min(4, -(-workers // 125))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20/40 workers, 300 operations")
    parser.add_argument("--workers", type=int, nargs="*", help="fleet sizes (100 200 500)")
    parser.add_argument("--processes", type=int, nargs="*", help="API processes (1 2)")
    parser.add_argument("--ops", type=int, help="operations per run (10000)")
    parser.add_argument("--rate", type=float, help="offered ops/s (default: 80 %% of measured)")
    parser.add_argument("--clients", type=int, help="load-generator processes (W / 125, ≤ 4)")
    args = parser.parse_args()
    sizes = args.workers or ([20, 40] if args.quick else [100, 200, 500])
    counts = args.processes or [1, 2]
    ops = args.ops or (300 if args.quick else 10_000)

    with backend.folder("fleet") as work:
        stack = Stack(work)
        try:
            rate = args.rate
            if rate is None:
                workers = max(sizes[:2])
                calibration = measure(
                    stack, Run(workers, 1, ops // 5, None, clients_for(workers, args.clients))
                )
                rate = 0.8 * calibration.ops_per_s
                print(f"one process sustains {calibration.ops_per_s:.0f} ops/s with "
                      f"{calibration.workers} workers (backlog kept, {calibration.ops} ops); "
                      f"offering 80 %: {rate:.0f} ops/s", flush=True)  # fmt: skip
            runs = []
            for workers in sizes:
                for processes in counts:
                    clients = clients_for(workers, args.clients)
                    run = measure(stack, Run(workers, processes, ops, rate, clients))
                    runs.append(run)
                    print(f"  done: {row(run)}", flush=True)
        finally:
            stack.close()

    print(f"\n{'workers':>7} | {'procs':>5} | {'ops':>6} | {'ops/s':>6} | {'claim p50':>9} | "
          f"{'claim p99':>9} | {'hb p99':>7} | {'PG conns':>8} | {'API CPU-s/op':>12} | "
          f"{'double':>6} | {'lost leases':>11} | first to saturate")  # fmt: skip
    for run in runs:
        print(row(run))
    print("\nshare of capacity per run: "
          + "; ".join(f"{r.workers}w/{r.processes}p: "
                      + ", ".join(f"{k} {v:.0%}" for k, v in (r.shares or {}).items())
                      for r in runs))  # fmt: skip

    ok = True
    checks = []
    for run in runs:
        if run.double_claims:
            ok = False
            checks.append(f"MISS {run.workers}w/{run.processes}p: {run.double_claims} doubles")
    by = {(r.workers, r.processes): r for r in runs}
    reference = 200 if 200 in sizes else sizes[min(1, len(sizes) - 1)]
    if (two := by.get((reference, 2))) is not None:
        hit = two.claim_ms[1] <= P99_TARGET_MS
        ok &= hit
        checks.append(f"{'PASS' if hit else 'MISS'} {reference} workers on 2 processes: claim p99 "
                      f"{two.claim_ms[1]:.1f} ms (target ≤ {P99_TARGET_MS:.0f} ms)")  # fmt: skip
    for workers in sizes:
        one, two = by.get((workers, 1)), by.get((workers, 2))
        if one and two:
            ratio = two.api_cpu_per_op / one.api_cpu_per_op
            hit = ratio <= CPU_RATIO_TARGET
            ok &= hit
            verdict = "PASS" if hit else "MISS"
            checks.append(f"{verdict} {workers} workers: API CPU-s/op, 2 processes / 1 = "
                          f"{ratio:.2f} (target ≤ {CPU_RATIO_TARGET})")  # fmt: skip
    print("\n" + "\n".join(checks))
    load = os.getloadavg()[0]
    print(f"\nmachine: {os.cpu_count()} cores shared by the API processes, PostgreSQL and this "
          f"generator; load average {load:.2f} at the end. Rerun on an idle machine before "
          "trusting a miss.")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
