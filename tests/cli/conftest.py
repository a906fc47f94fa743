"""Fixtures for the `ktrdr` tests: the command as a real process, and a local stack per module.

A local stack runs in a slot of its own (ports 8000 + slot) under a temporary KTRDR_HOME,
so these tests never touch slot 0 or a developer's ~/.ktrdr, and two modules never share
a slot. Every stack is taken down by its fixture, whatever the tests did.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

KTRDR = str(Path(sys.executable).parent / "ktrdr")
SLOTS = range(40, 100)  # slot 0 is the developer's; low slots are what people try first


def process_env(home: Path, **extra: str) -> dict[str, str]:
    """A child's environment: its own KTRDR_HOME, no KTRDR_* from the caller's shell, and
    bytecode cached outside the tree (this machine sets PYTHONDONTWRITEBYTECODE, which would
    make every worker compile torch anew)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTRDR_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "ktrdr-test-pycache")
    env["KTRDR_HOME"] = str(home)
    env.update(extra)
    return env


def run_ktrdr(
    *args: str, home: Path, cwd: Path, timeout: float = 180, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """`ktrdr ARGS` as a real process in `cwd`; never raises on a non-zero exit."""
    return subprocess.run(
        [KTRDR, *args],
        env=process_env(home, **extra_env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_slot() -> int:
    """A slot whose API port is free now (a random start, so parallel runs rarely meet)."""
    start = random.randrange(len(SLOTS))
    for index in range(len(SLOTS)):
        slot = SLOTS[(start + index) % len(SLOTS)]
        if _port_free(8000 + slot):
            return slot
    pytest.skip(f"no free port in 8000+{SLOTS.start}..8000+{SLOTS.stop - 1} for a local stack")
    raise AssertionError("unreachable")


@dataclass
class LocalStack:
    """A `ktrdr local up --slot N` stack: where it lives and how to run `ktrdr` beside it."""

    slot: int
    home: Path
    work: Path
    up: subprocess.CompletedProcess[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{8000 + self.slot}"

    @property
    def slot_home(self) -> Path:
        return self.home / "slots" / str(self.slot)

    def ktrdr(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return run_ktrdr(*args, home=self.home, cwd=self.work, timeout=timeout)

    def logs(self) -> str:
        parts = []
        for log in sorted((self.slot_home / "logs").glob("*.log")):
            parts.append(f"--- {log.name} ---\n{log.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory) -> LocalStack:
    """One real stack (API, training and backtest worker) for the whole test module."""
    home = tmp_path_factory.mktemp("ktrdr-home")
    work = tmp_path_factory.mktemp("work")
    slot = free_slot()
    try:
        up = run_ktrdr("local", "up", "--slot", str(slot), home=home, cwd=work)
        stack = LocalStack(slot, home, work, up)
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}\n{stack.logs()}"
        yield stack
    finally:
        run_ktrdr("local", "down", "--slot", str(slot), home=home, cwd=work, timeout=60)
