"""A local ktrdr stack: the API and one training and one backtest worker as processes.

Each slot is isolated: its own home folder (database, artifacts, logs) and ports,
so several sandboxes run side by side. Slot 0 lives in KTRDR_HOME (default
~/.ktrdr); slot N in KTRDR_HOME/slots/N with the API on port 8000 + N.
The processes are started from their console scripts, never imported.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ktrdr_core.settings import Settings

BASE_PORT = 8000
STATE_FILE = "local-stack.json"
SERVICES = ("api", "training-worker", "backtest-worker")
INSTALL_HINT = "pip install ktrdr-api ktrdr-worker"


class StackError(Exception):
    """The local stack cannot be started, reached or stopped; the message says why."""


@dataclass
class Stack:
    slot: int
    home: Path
    port: int
    pids: dict[str, int] = field(default_factory=dict)
    # Given to the API at start and reported by its /health: tells our backend from another
    # one answering on the same port.
    instance_id: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def alive(self) -> dict[str, bool]:
        return {name: _alive(pid) for name, pid in self.pids.items()}

    def save(self) -> None:
        data = asdict(self) | {"home": str(self.home)}
        (self.home / STATE_FILE).write_text(json.dumps(data, indent=2))


def base_home() -> Path:
    return Settings.from_env().home


def stack_for(slot: int) -> Stack:
    """The slot's stack as last recorded (pids empty when never started)."""
    if slot < 0 or slot > 99:
        raise StackError(f"slot must be between 0 and 99, got {slot}")
    home = base_home() if slot == 0 else base_home() / "slots" / str(slot)
    state = home / STATE_FILE
    if state.exists():
        data = json.loads(state.read_text())
        pids = {k: int(v) for k, v in data["pids"].items()}
        return Stack(slot, home, data["port"], pids, data.get("instance_id", ""))
    return Stack(slot, home, BASE_PORT + slot)


def all_stacks() -> list[Stack]:
    """Every slot that has been started at least once."""
    found = [stack_for(0)] if (base_home() / STATE_FILE).exists() else []
    slots = base_home() / "slots"
    if slots.is_dir():
        found += [
            stack_for(int(p.name))
            for p in sorted(slots.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0)
            if p.name.isdigit() and (p / STATE_FILE).exists()
        ]
    return found


def _executable(name: str) -> str:
    # Beside this interpreter first: the workspace venv and pip installs put them there.
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise StackError(f"`{name}` is not installed beside the ktrdr CLI; run: {INSTALL_HINT}")
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
        return status != "Z"
    except OSError:
        return True


def healthy(url: str, timeout: float = 1.0) -> bool:
    return answering_instance(url, timeout) is not None


def answering_instance(url: str, timeout: float = 1.0) -> str | None:
    """The instance id of the healthy ktrdr backend at ``url`` ("" for one too old to say),
    or None when nothing healthy answers there."""
    import httpx

    try:
        response = httpx.get(f"{url}/api/v1/health", timeout=timeout)
        if response.status_code != 200:
            return None
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return str(body.get("instance") or "") if isinstance(body, dict) else ""


def ours(stack: Stack) -> bool:
    """The API answering on the stack's port is the one this stack started."""
    return bool(stack.instance_id) and answering_instance(stack.url) == stack.instance_id


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_taken(stack: Stack) -> StackError:
    spare = next((n for n in range(stack.slot + 1, 100) if _port_free(BASE_PORT + n)), None)
    hint = f"; use another slot: ktrdr local up --slot {spare}" if spare is not None else ""
    return StackError(
        f"port {stack.port} (slot {stack.slot}) is held by another process"
        f"{' (another ktrdr backend)' if healthy(stack.url) else ''}{hint}"
    )


def up(slot: int = 0, wait_s: float = 60.0) -> Stack:
    """Start the slot's API, check that the API answering is the one just started, then start
    two workers and wait until they are registered. Raises StackError naming the port (and a
    free slot) when another process holds the slot's port."""
    import secrets

    stack = stack_for(slot)
    if stack.pids and all(stack.alive().values()) and ours(stack):
        return stack
    down(slot, quiet=True)
    if not _port_free(stack.port):
        raise _port_taken(stack)
    stack.home.mkdir(parents=True, exist_ok=True)
    stack.logs.mkdir(exist_ok=True)
    stack.instance_id = f"local-{slot}-{secrets.token_hex(6)}"
    env = dict(os.environ)
    env.update(
        KTRDR_HOME=str(stack.home),
        KTRDR_API_HOST="127.0.0.1",
        KTRDR_API_PORT=str(stack.port),
        KTRDR_API_URL=stack.url,
        KTRDR_WORKER_CACHE=str(stack.home / "worker-cache"),
        KTRDR_INSTANCE_ID=stack.instance_id,
    )
    env.pop("KTRDR_DATABASE_URL", None)  # local stacks use the embedded SQLite file
    stack.pids = {}
    _start(stack, "api", [_executable("ktrdr-api"), "serve"], env)
    stack.save()
    _wait_for_our_api(stack, wait_s)
    # Only once the API is known to be ours: workers never register with someone else's.
    _start(stack, "training-worker", [_executable("ktrdr-worker"), "training"], env)
    _start(stack, "backtest-worker", [_executable("ktrdr-worker"), "backtest"], env)
    stack.save()
    _wait_ready(stack, wait_s)
    return stack


def _start(stack: Stack, name: str, command: list[str], env: dict[str, str]) -> None:
    log = (stack.logs / f"{name}.log").open("ab")
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    stack.pids[name] = process.pid


def _wait_for_our_api(stack: Stack, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        answering = answering_instance(stack.url)
        if answering == stack.instance_id:
            return
        if not _alive(stack.pids["api"]) or answering is not None:
            # Ours died (the port went to someone else first) or another backend answers.
            down(stack.slot, quiet=True)
            log = stack.logs / "api.log"
            if not _port_free(stack.port) or "address already in use" in _tail(log).lower():
                raise _port_taken(stack)
            raise StackError(f"the API exited during start-up; see {log}")
        time.sleep(0.1)
    down(stack.slot, quiet=True)
    raise StackError(
        f"the API of slot {stack.slot} did not answer on port {stack.port} within {wait_s:.0f} s;"
        f" see {stack.logs}/api.log"
    )


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _wait_ready(stack: Stack, wait_s: float) -> None:
    from ktrdr_core.client import KtrdrClient
    from ktrdr_core.errors import ApiError

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        dead = [name for name, ok in stack.alive().items() if not ok]
        if dead:
            raise StackError(
                f"{', '.join(dead)} exited during start-up; see {stack.logs}/{dead[0]}.log"
            )
        if ours(stack):
            try:
                with KtrdrClient(stack.url, token=os.environ.get("KTRDR_API_TOKEN", "")) as api:
                    kinds = {
                        str(w.kind) for w in api.list_workers() if str(w.status) in ("idle", "busy")
                    }
            except ApiError:
                kinds = set()
            if {"training", "backtest"} <= kinds:
                return
        time.sleep(0.2)
    raise StackError(
        f"the stack in slot {stack.slot} was not ready after {wait_s:.0f} s; "
        f"see the logs in {stack.logs}"
    )


def down(slot: int = 0, *, quiet: bool = False, wait_s: float = 15.0) -> list[str]:
    """Stop the slot's processes (SIGTERM, then SIGKILL after `wait_s`); return what stopped."""
    stack = stack_for(slot)
    stopped = []
    for name, pid in stack.pids.items():
        if _alive(pid):
            _signal(pid, signal.SIGTERM)
            stopped.append(name)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(_alive(pid) for pid in stack.pids.values()):
        time.sleep(0.1)
    for pid in stack.pids.values():
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    if stack.pids:
        stack.pids = {}
        stack.save()
    return stopped


def _signal(pid: int, signum: int) -> None:
    """Signal the process group each service was started in (it and anything it spawned)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass
