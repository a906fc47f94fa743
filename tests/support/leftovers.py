"""The end-of-run check: a test run leaves nothing behind.

At the start of the run (``LeftoverWatch.start``) the run gets an id, set in this process's
environment as PYTEST_KTRDR_RUN, so that every process the run starts (and everything those
start, detached or not) inherits it; the real ``~/.ktrdr`` is listed (paths, sizes, mtimes),
and whether 127.0.0.1:8000 (a developer's slot 0) is free is noted.

At the end (``LeftoverWatch.findings``, after every fixture's teardown) the run fails when:

- a process still runs that carries this run's id in its environment, or descends from the
  test process, or is a PostgreSQL server the run started (one started through `runuser`
  runs as another user, whatever its environment);
- the real ``~/.ktrdr`` (or the KTRDR_HOME of the caller's shell) changed;
- 127.0.0.1:8000 is held now but was free at the start.

The processes found are then stopped (SIGTERM, then SIGKILL), by pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import LOCAL_STACK_BASE_PORT, port_free
from tests.support.postgres import running_servers

RUN_MARKER = "PYTEST_KTRDR_RUN"  # not KTRDR_*: process_env drops those from every child
GRACE_S = 2.0  # processes stopped by the last teardown get this long to be gone
# Helper processes of Python's multiprocessing that end with the test process itself.
IGNORED_COMMANDS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")

Listing = dict[str, tuple[str, int, int]]  # relative path -> (kind, size, mtime ns)


# Processes started on purpose to outlive the run (and what they start): not leftovers.
OUTLIVING: set[int] = set()


def outliving_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) without the run's id: for a service the tests start
    on purpose to outlive the run (a Docker daemon shared by runs, like a system service);
    pass its pid to ``outlives_the_run`` once started."""
    env = dict(os.environ if env is None else env)
    env.pop(RUN_MARKER, None)
    return env


def outlives_the_run(pid: int) -> None:
    OUTLIVING.add(pid)


def listing(folder: Path) -> Listing | None:
    """Every entry under ``folder`` with its size and mtime; None when it does not exist."""
    if not folder.is_dir():
        return None
    found: Listing = {}
    for parent, dirs, files in os.walk(folder):
        for name in dirs:  # a folder's own mtime moves with its entries, listed themselves
            found[str(Path(parent, name).relative_to(folder))] = ("dir", 0, 0)
        for name in files:
            path = Path(parent, name)
            try:
                stat = path.lstat()
            except OSError:
                continue
            found[str(path.relative_to(folder))] = ("file", stat.st_size, stat.st_mtime_ns)
    return found


def listing_changes(before: Listing | None, after: Listing | None, *, live: bool) -> list[str]:
    """What changed between two listings. ``live``: a stack was already running at the start
    (port 8000 held), so its logs, database journal and in-place writes are not counted."""
    if before is None and after is None:
        return []
    if before is None:
        return ["created (it did not exist at the start)"]
    if after is None:
        return ["removed (it existed at the start)"]

    def counted(path: str) -> bool:
        if not live:
            return True
        return not (path.split(os.sep)[0] == "logs" or path.endswith(("-wal", "-shm", "-journal")))

    added = sorted(p for p in after.keys() - before.keys() if counted(p))
    removed = sorted(p for p in before.keys() - after.keys() if counted(p))
    changed = (
        [] if live else sorted(p for p in before.keys() & after.keys() if before[p] != after[p])
    )
    lines = [f"added   {p}" for p in added] + [f"removed {p}" for p in removed]
    lines += [f"changed {p}" for p in changed]
    return lines[:20] + ([f"... and {len(lines) - 20} more"] if len(lines) > 20 else [])


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


def _carries(pid: int, needle: bytes) -> bool:
    try:
        return needle in b"\0" + Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or another user's process we may not read
        return False


def listeners(port: int) -> list[int]:
    """Processes with a TCP socket listening on ``port`` (any address), from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                    pids.append(int(entry))
                    break
            except OSError:
                continue
    return sorted(pids)


@dataclass
class LeftoverWatch:
    run_id: str
    pid: int
    ktrdr_homes: dict[Path, Listing | None] = field(default_factory=dict)
    port_8000_free: bool = True

    @classmethod
    def start(cls, ktrdr_homes: list[Path]) -> LeftoverWatch:
        """Mark this run in the environment and take the snapshots (before HOME moves)."""
        watch = cls(run_id=uuid.uuid4().hex, pid=os.getpid())
        os.environ[RUN_MARKER] = watch.run_id
        for home in dict.fromkeys(ktrdr_homes):
            watch.ktrdr_homes[home] = listing(home)
        watch.port_8000_free = port_free(LOCAL_STACK_BASE_PORT)
        return watch

    def processes(self) -> dict[int, str]:
        """pid -> command line of every live process this run started."""
        table = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (found := _stat(int(entry))) is not None:
                table[int(entry)] = found
        descendants: set[int] = set()
        frontier = {self.pid}
        while frontier:
            frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier}
            frontier -= descendants | OUTLIVING
            descendants |= frontier
        needle = f"\0{RUN_MARKER}={self.run_id}\0".encode()
        found = {}
        for pid, (_, state) in table.items():
            if pid == self.pid or state == "Z":  # zombies hold nothing but a table entry
                continue
            if pid in descendants or _carries(pid, needle):
                command = command_line(pid)
                if not any(ignored in command for ignored in IGNORED_COMMANDS):
                    found[pid] = command
        for data_dir, pid in running_servers():
            found.setdefault(pid, f"{command_line(pid)} (PostgreSQL in {data_dir})")
        return found

    def findings(self) -> tuple[list[str], dict[int, str]]:
        """What the run left behind, as report lines, and the processes among it."""
        deadline = time.monotonic() + GRACE_S
        while (alive := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        lines = [
            f"process {pid} still running: {command}" for pid, command in sorted(alive.items())
        ]
        live = not self.port_8000_free
        for home, before in self.ktrdr_homes.items():
            for change in listing_changes(before, listing(home), live=live):
                lines.append(f"{home} {change}")
        if self.port_8000_free and not port_free(LOCAL_STACK_BASE_PORT):
            held_by = ", ".join(
                f"{pid} ({command_line(pid)})" for pid in listeners(LOCAL_STACK_BASE_PORT)
            )
            lines.append(
                f"127.0.0.1:{LOCAL_STACK_BASE_PORT} was free at the start and is held now"
                + (f" by {held_by}" if held_by else "")
            )
        return lines, alive


def stop(processes: dict[int, str], wait_s: float = 5.0) -> None:
    """SIGTERM each process by pid, then SIGKILL what is still there after ``wait_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes:
            with contextlib.suppress(OSError):  # gone already
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if all((s := _stat(pid)) is None or s[1] == "Z" for pid in processes):
                return
            time.sleep(0.1)
