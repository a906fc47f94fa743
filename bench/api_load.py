"""API load: status reads and operation submissions from a second process, SQLite and PostgreSQL.

A real ``ktrdr-api serve`` (token auth on) per database; a child process drives it over
keep-alive connections (stdlib ``http.client``, so the server is what is measured) for a fixed
duration per mix:

- reads: ``GET /api/v1/operations/{id}`` over a set of pending backtests, with the bootstrap
  token (one constant-time comparison);
- reads/reader: the same with a ``reader`` token made by ``POST /tokens`` (a keyed hash and a
  look-up of the token table per request: what a created token costs);
- submissions: ``POST /api/v1/backtests`` for an imported model (no worker claims them, so
  each one is a validated insert of a pending operation plus its dispatch notification).

Prints requests/s and p50 / p99 latency (ms) per (mix, database); a non-2xx answer counts as
an error and makes the exit status 1. Set-up helpers (server, PostgreSQL, seeded model) are
bench/backend.py's.

    .venv/bin/python bench/api_load.py [--duration 10] [--threads 4] [--skip postgresql]

Timings depend on what else runs on the machine (2 shared cores here): compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

# bench/ is on sys.path when a bench runs as a script: its helpers (and the test helpers
# it loads) are shared, not copied.
import backend

from ktrdr_core.access import Role


def _drive(port: int, mix: str, targets: list[str], token: str, threads: int, warmup_s: float,
           duration_s: float, results: Any) -> None:  # fmt: skip
    """Child process: ``threads`` keep-alive connections sending ``mix`` requests with
    ``token``; latencies (seconds) of the requests that started inside the measured window."""
    import http.client
    import threading

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    begin = time.monotonic() + warmup_s
    end = begin + duration_s
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    codes: dict[int, int] = {}

    def loop(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = index
        while (start := time.monotonic()) < end:
            if mix.startswith("reads"):
                connection.request("GET", targets[i % len(targets)], headers=headers)
            else:
                body = json.dumps({"model_id": targets[0]})
                connection.request("POST", "/api/v1/backtests", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            took = time.monotonic() - start
            i += 1
            if start >= begin:
                latencies[index].append(took)
                if not 200 <= response.status < 300:
                    errors[index] += 1
                    codes[response.status] = codes.get(response.status, 0) + 1
        connection.close()

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(([t for per in latencies for t in per], sum(errors), codes))


def measure(label: str, work: Path, database_url: str | None, duration_s: float,
            threads: int) -> list[dict[str, Any]]:  # fmt: skip
    api = backend.start_api(work / "home", database_url)
    ctx = mp.get_context("spawn")
    rows = []
    try:
        model_id = backend.seed_model(api, work)
        with api.client() as client:
            pending = [client.start_backtest(model_id).operation_id for _ in range(20)]
            reader = client.create_token("bench-reader", Role.READER).secret
        reads = [f"/api/v1/operations/{op}" for op in pending]
        mixes = {
            "reads": (reads, backend.TOKEN),
            "reads/reader": (reads, reader),
            "submissions": ([model_id], backend.TOKEN),
        }
        for mix, (targets, token) in mixes.items():
            results = ctx.Queue()
            child = ctx.Process(
                target=_drive,
                args=(api.port, mix, targets, token, threads, 1.0, duration_s, results),
                daemon=True,
            )
            child.start()
            latencies, errors, codes = results.get(timeout=duration_s + 120)
            child.join()
            rows.append(
                {
                    "mix": mix,
                    "database": label,
                    "requests": len(latencies),
                    "rps": len(latencies) / duration_s,
                    "p50_ms": backend.percentile(latencies, 0.50) * 1e3,
                    "p99_ms": backend.percentile(latencies, 0.99) * 1e3,
                    "errors": errors,
                    "codes": codes,
                }
            )
    finally:
        api.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per mix")
    parser.add_argument("--threads", type=int, default=4, help="connections in the client")
    parser.add_argument("--skip", default="", help="comma-separated: sqlite,postgresql")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    rows: list[dict[str, Any]] = []
    if "sqlite" not in skip:
        with backend.folder("load-sqlite") as work:
            rows += measure("SQLite", work, None, args.duration, args.threads)
    if "postgresql" not in skip:
        with backend.folder("load-pg") as work:
            url, stop_pg = backend.postgres_url(work)
            try:
                rows += measure("PostgreSQL", work, url, args.duration, args.threads)
            finally:
                stop_pg()

    print(f"\n{'mix':<12} | {'database':<10} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} | "
          f"{'requests':>8} | errors")  # fmt: skip
    print(f"{'-' * 12}-|-{'-' * 10}-|-{'-' * 7}-|-{'-' * 7}-|-{'-' * 7}-|-{'-' * 8}-|-------")
    for r in sorted(rows, key=lambda r: (r["mix"], r["database"] != "SQLite")):
        codes = f" {r['codes']}" if r["codes"] else ""
        print(f"{r['mix']:<12} | {r['database']:<10} | {r['rps']:>7.0f} | {r['p50_ms']:>7.1f} | "
              f"{r['p99_ms']:>7.1f} | {r['requests']:>8} | {r['errors']}{codes}")  # fmt: skip
    print(f"\n{args.threads} connections from one client process, {args.duration:.0f} s per mix "
          f"after 1 s warm-up; machine: {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
