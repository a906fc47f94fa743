"""Fixtures for the `ktrdr` tests: the command as a real process, and a local stack per module.

A local stack runs in a slot of its own (ports 8000 + slot) under a temporary KTRDR_HOME,
so these tests never touch slot 0 or a developer's ~/.ktrdr, and two modules never share
a slot. Every stack is taken down by its fixture, whatever the tests did.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import run_ktrdr
from tests.support.ports import LOCAL_STACK_BASE_PORT, free_slot


@dataclass
class LocalStack:
    """A `ktrdr local up --slot N` stack: where it lives and how to run `ktrdr` beside it."""

    slot: int
    home: Path
    work: Path
    up: subprocess.CompletedProcess[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{LOCAL_STACK_BASE_PORT + self.slot}"

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
