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
        return Stack(slot, home, data["port"], {k: int(v) for k, v in data["pids"].items()})
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
    import httpx

    try:
        return httpx.get(f"{url}/api/v1/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def up(slot: int = 0, wait_s: float = 60.0) -> Stack:
    """Start the slot's API and two workers (if not already running); wait until healthy."""
    stack = stack_for(slot)
    if stack.pids and all(stack.alive().values()) and healthy(stack.url):
        return stack
    down(slot, quiet=True)
    commands = {
        "api": [_executable("ktrdr-api"), "serve"],
        "training-worker": [_executable("ktrdr-worker"), "training"],
        "backtest-worker": [_executable("ktrdr-worker"), "backtest"],
    }
    stack.home.mkdir(parents=True, exist_ok=True)
    stack.logs.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        KTRDR_HOME=str(stack.home),
        KTRDR_API_HOST="127.0.0.1",
        KTRDR_API_PORT=str(stack.port),
        KTRDR_API_URL=stack.url,
        KTRDR_WORKER_CACHE=str(stack.home / "worker-cache"),
    )
    env.pop("KTRDR_DATABASE_URL", None)  # local stacks use the embedded SQLite file
    stack.pids = {}
    for name, command in commands.items():
        log = (stack.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        stack.pids[name] = process.pid
    stack.save()
    _wait_ready(stack, wait_s)
    return stack


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
        if healthy(stack.url):
            try:
                with KtrdrClient(stack.url, token=os.environ.get("KTRDR_API_TOKEN", "")) as api:
                    kinds = {str(w.kind) for w in api.list_workers() if str(w.status) != "offline"}
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
