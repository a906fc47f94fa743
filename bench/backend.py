"""Backend numbers: cold start, claim latency, re-attach after a restart, status reads.

Real processes throughout (`ktrdr-api serve` with token auth on, `ktrdr-worker`, clients in
child processes), on loopback. Prints a table and exits 1 when a target is missed.

- cold start: ``import ktrdr_api.app`` + ``create_app()`` in a fresh interpreter against
  ``python -c "import fastapi, sqlalchemy.orm"``, both measured here (median of N, bytecode
  cached for both), ratio ≤ 1.5×; the app must load no numpy / pandas / torch / sklearn.
- claim latency: a client long-polling ``claim`` in a loop (as a worker does) in a child
  process; the parent creates a backtest operation (POST /backtests) while it idles.
  Latency = from the operation's creation (its ``created_at``, stamped by the backend before
  the insert, so the insert and commit count) to the claimer holding the parsed claim, on
  the same clock. p50 ≤ 20 ms, p99 ≤ 100 ms, on SQLite and PostgreSQL. Also shown, without
  a target: from the moment the parent sent the creation request (adds the whole create
  call: parsing, model and data look-ups, the response).
- re-attach: the API and 3 real ``ktrdr-worker`` processes; the API is SIGKILLed and started
  again; time from the kill until all 3 workers have registered again (their
  ``registered_at`` moved), worst of several restarts ≤ 3 s.
- status reads: GET /operations/{id} from a child process (threads on keep-alive
  connections), while 3 workers, in another child process, heartbeat their running
  operations with progress 10 times a second each (a real worker sends one every
  lease / 3 = 10 s); SQLite; ≥ 500 requests/s.

    .venv/bin/python bench/backend.py [--quick] [--skip cold,claim,reattach,status]

Timings depend on what else runs on the machine: rerun before trusting a miss.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TOKEN = "bench-secret-token"
NUMERIC = ("numpy", "pandas", "torch", "sklearn")

sys.path.insert(0, str(ROOT))  # the test helpers (tests/support), shared with every bench

from ktrdr_core.client import KtrdrClient  # noqa: E402
from ktrdr_core.errors import ApiError  # noqa: E402
from ktrdr_core.protocol import (  # noqa: E402
    OperationKind,
    Progress,
    WorkerCapabilities,
    WorkerRegistration,
)
from tests.support.bundles import seed_model  # noqa: E402  (the benches seed through it)
from tests.support.postgres import start_postgres  # noqa: E402
from tests.support.processes import process_env  # noqa: E402
from tests.support.stack import ApiServer, WorkerProcess  # noqa: E402


@dataclass
class Row:
    measure: str
    value: str
    target: str
    ok: bool
    note: str = ""


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


# --- cold start ----------------------------------------------------------------------------

REFERENCE_CODE = "import fastapi, sqlalchemy.orm"
APP_CODE = f"""
import sys
from ktrdr_core.settings import Settings
from ktrdr_api.app import create_app
create_app(Settings.from_env())
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({NUMERIC!r}))
if loaded:
    sys.exit(f"numeric modules loaded by the backend: {{loaded}}")
"""


def _run_s(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"cold-start probe failed:\n{result.stderr}")
    return elapsed


def cold_start(runs: int, home: Path) -> list[Row]:
    env = process_env({"KTRDR_HOME": str(home), "KTRDR_API_TOKEN": TOKEN})
    for code in (REFERENCE_CODE, APP_CODE):  # warm the bytecode cache and the page cache
        _run_s(code, env)
    reference, app = [], []
    for _ in range(runs):  # interleaved, so a burst of load hits both alike
        reference.append(_run_s(REFERENCE_CODE, env))
        app.append(_run_s(APP_CODE, env))
    ref_s, app_s = statistics.median(reference), statistics.median(app)
    ratio = app_s / ref_s
    return [
        Row("cold start: import fastapi, sqlalchemy.orm", f"{ref_s:.3f} s", "reference", True,
            f"median of {runs}"),
        Row("cold start: import + create_app (token on)", f"{app_s:.3f} s", "", True,
            f"median of {runs}; no {'/'.join(NUMERIC)} loaded"),
        Row("cold start: ratio", f"{ratio:.2f}×", "≤ 1.5×", ratio <= 1.5),
    ]  # fmt: skip


# --- shared set-up -------------------------------------------------------------------------


def start_api(home: Path, database_url: str | None = None, **options: Any) -> Any:
    return ApiServer(home, database_url=database_url, token=TOKEN, **options).start()


def _registration(worker_id: str) -> WorkerRegistration:
    return WorkerRegistration(
        worker_id=worker_id,
        kind=OperationKind.BACKTEST,
        capabilities=WorkerCapabilities(cpu_count=1),
        host="bench",
    )


# --- claim latency -------------------------------------------------------------------------


def _claimer(url: str, ready: Any, received: Any, stop: Any) -> None:
    """Child process: a worker's idle loop — long-poll, take the operation, report it, end
    it (fail: cheap), poll again."""
    with KtrdrClient(url, token=TOKEN) as client:
        client.register_worker(_registration("bench-claimer"))
        while not stop.is_set():
            ready.put(time.monotonic())
            offer = client.claim("bench-claimer", timeout_s=10)
            if offer is None:
                continue
            received.put((offer.operation_id, time.monotonic(), time.time()))
            client.fail_operation("bench-claimer", offer.operation_id, offer.attempt, "bench")


def claim_latency(label: str, work: Path, samples: int, database_url: str | None) -> list[Row]:
    api = start_api(work / "home", database_url)
    ctx = mp.get_context("spawn")
    ready, received, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_claimer, args=(api.url, ready, received, stop), daemon=True)
    try:
        model_id = seed_model(api, work)
        child.start()
        from_created, from_sent = [], []
        with api.client() as client:
            for i in range(samples + 5):
                ready.get(timeout=60)
                time.sleep(0.08)  # the claim is parked in its long poll by now: the worker idles
                sent = time.monotonic()
                op = client.start_backtest(model_id)
                op_id, got, got_wall = received.get(timeout=30)
                assert op_id == op.operation_id, (op_id, op.operation_id)
                if i >= 5:  # the first few warm up connections and caches
                    from_created.append(got_wall - op.created_at.timestamp())
                    from_sent.append(got - sent)
        stop.set()
    finally:
        child.kill()
        child.join()
        api.stop()
    p50, p99 = percentile(from_created, 0.50) * 1e3, percentile(from_created, 0.99) * 1e3
    s50, s99 = percentile(from_sent, 0.50) * 1e3, percentile(from_sent, 0.99) * 1e3
    return [
        Row(f"claim latency p50, {label}", f"{p50:.1f} ms", "≤ 20 ms", p50 <= 20,
            f"{samples} operations, from creation to claimed"),
        Row(f"claim latency p99, {label}", f"{p99:.1f} ms", "≤ 100 ms", p99 <= 100),
        Row(f"  with the create call, p50 / p99, {label}", f"{s50:.0f} / {s99:.0f} ms", "—",
            True, "from POST /backtests sent (no target)"),
    ]  # fmt: skip


# --- re-attach -----------------------------------------------------------------------------


def reattach(work: Path, restarts: int) -> list[Row]:
    api = start_api(work / "home")
    kinds = ("training", "training", "backtest")
    workers = [
        WorkerProcess(kind, api, work / "workers", worker_id=f"bench-{kind}-{i}")
        for i, kind in enumerate(kinds)
    ]
    times = []
    try:
        for worker in workers:
            worker.wait_registered(limit_s=300)  # they import torch first
        with api.client() as client:
            for _ in range(restarts):
                before = {w.worker_id: w.registered_at for w in client.list_workers()}
                api.kill()
                killed = time.monotonic()
                api.start()
                while True:
                    try:
                        now = {w.worker_id: w.registered_at for w in client.list_workers()}
                    except ApiError:
                        now = {}
                    if all(now.get(w.worker_id, before[w.worker_id]) > before[w.worker_id]
                           for w in workers):  # fmt: skip
                        break
                    if time.monotonic() - killed > 60:
                        raise SystemExit("workers did not re-register within 60 s")
                    time.sleep(0.01)
                times.append(time.monotonic() - killed)
                time.sleep(1.0)  # let everything settle into its long poll again
    finally:
        for worker in workers:
            worker.stop()
        api.stop()
    worst = max(times)
    detail = ", ".join(f"{t:.2f}" for t in times)
    return [
        Row("re-attach: SIGKILL + start → 3 workers registered", f"{worst:.2f} s", "≤ 3 s",
            worst <= 3.0, f"worst of {restarts} restarts ({detail} s)"),
    ]  # fmt: skip


# --- status reads --------------------------------------------------------------------------


def _heartbeaters(url: str, count: int, interval_s: float, started: Any, stop: Any,
                  beats: Any) -> None:  # fmt: skip
    """Child process: ``count`` workers, each holding a running operation and sending a
    heartbeat with progress every ``interval_s`` seconds."""

    def one(index: int) -> None:
        worker_id = f"bench-heartbeat-{index}"
        sent = 0
        with KtrdrClient(url, token=TOKEN) as client:
            client.register_worker(_registration(worker_id))
            offer = client.claim(worker_id, timeout_s=10)
            assert offer is not None, f"{worker_id} got no operation"
            started.put(offer.operation_id)
            step = 0
            while not stop.is_set():
                step += 1
                progress = Progress(percent=step % 100, step=step, message=f"bar {step}")
                client.heartbeat(worker_id, offer.operation_id, offer.attempt, progress=progress)
                sent += 1
                time.sleep(interval_s)
        beats.put(sent)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _reader(host: str, port: int, paths: list[str], threads: int, warmup_s: float,
            duration_s: float, results: Any) -> None:  # fmt: skip
    """Child process: ``threads`` keep-alive connections (stdlib http.client: a lean client,
    so the server, not the load generator, is what is measured) reading ``paths`` in turn;
    counts the 200s answered in the measured window."""
    import http.client

    begin = time.monotonic() + warmup_s
    end = begin + duration_s
    counts = [0] * threads
    errors = [0] * threads
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def loop(index: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=10)
        i = index
        while (now := time.monotonic()) < end:
            connection.request("GET", paths[i % len(paths)], headers=headers)
            response = connection.getresponse()
            response.read()
            i += 1
            if now >= begin:
                if response.status == 200:
                    counts[index] += 1
                else:
                    errors[index] += 1
        connection.close()

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((sum(counts), sum(errors)))


def status_reads(work: Path, duration_s: float, threads: int) -> list[Row]:
    api = start_api(work / "home")
    ctx = mp.get_context("spawn")
    started, stop, beats, results = ctx.Queue(), ctx.Event(), ctx.Queue(), ctx.Queue()
    heartbeaters = ctx.Process(
        target=_heartbeaters, args=(api.url, 3, 0.1, started, stop, beats), daemon=True
    )
    try:
        model_id = seed_model(api, work)
        with api.client() as client:
            for _ in range(3):
                client.start_backtest(model_id)
            pending = [client.start_backtest(model_id).operation_id for _ in range(5)]
        heartbeaters.start()
        running = [started.get(timeout=60) for _ in range(3)]
        paths = [f"/api/v1/operations/{op}" for op in running + pending]
        reader = ctx.Process(
            target=_reader,
            args=("127.0.0.1", api.port, paths, threads, 1.0, duration_s, results),
            daemon=True,
        )
        reader.start()
        ok, failed = results.get(timeout=duration_s + 60)
        reader.join()
        stop.set()
        sent = sum(beats.get(timeout=30) for _ in range(3))
        heartbeaters.join()
    finally:
        heartbeaters.kill()
        api.stop()
    rate = ok / duration_s
    return [
        Row("status reads, SQLite, 3 workers heartbeating", f"{rate:.0f} req/s", "≥ 500 req/s",
            rate >= 500 and failed == 0,
            f"{threads} connections, {duration_s:.0f} s; {failed} errors; {sent} heartbeats"),
    ]  # fmt: skip


# --- main ----------------------------------------------------------------------------------


@contextlib.contextmanager
def folder(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"ktrdr-bench-{name}-") as path:
        yield Path(path)


def postgres_url(base: Path) -> tuple[str, Callable[[], None]]:
    try:
        server = start_postgres(base)
    except BaseException as exc:  # services skips (pytest's Skipped) when it cannot start
        raise SystemExit(f"PostgreSQL could not be started: {exc}") from None
    return server.create_database("ktrdr_bench"), lambda: server.ctl("stop")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--skip", default="", help="comma-separated: cold,claim,reattach,status")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    quick = args.quick

    rows: list[Row] = []
    phases: list[tuple[str, float]] = []

    def phase(name: str, run: Callable[[], list[Row]]) -> None:
        if name.split()[0] in skip:
            return
        started = time.perf_counter()
        rows.extend(run())
        phases.append((name, time.perf_counter() - started))

    with folder("cold") as work:
        phase("cold start", lambda: cold_start(3 if quick else 9, work))
    with folder("claim-sqlite") as work:
        phase("claim sqlite", lambda: claim_latency("SQLite", work, 20 if quick else 150, None))
    if "claim" not in skip:
        with folder("claim-pg") as work:
            url, stop_pg = postgres_url(work)
            try:
                phase(
                    "claim postgresql",
                    lambda: claim_latency("PostgreSQL", work, 20 if quick else 150, url),
                )
            finally:
                stop_pg()  # fmt: skip
    with folder("reattach") as work:
        phase("reattach", lambda: reattach(work, 2 if quick else 3))
    with folder("status") as work:
        phase("status reads", lambda: status_reads(work, 3.0 if quick else 10.0, threads=4))

    width = max(len(r.measure) for r in rows)
    print(f"\n{'measure':<{width}} | {'value':>12} | {'target':>11} | result | note")
    print(f"{'-' * width}-|-{'-' * 12}-|-{'-' * 11}-|--------|-----")
    for r in rows:
        result = "ok" if r.ok else "MISSED"
        print(f"{r.measure:<{width}} | {r.value:>12} | {r.target:>11} | {result:<6} | {r.note}")
    print("\nphases: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in phases))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
