"""Loopback ports for the processes the tests start: never 8000 (a developer's slot 0)."""

from __future__ import annotations

import random
import socket

import pytest

LOCAL_STACK_BASE_PORT = 8000  # `ktrdr local up --slot N` listens on 8000 + N
TEST_SLOTS = range(40, 100)  # slot 0 is the developer's; low slots are what people try first


def free_port() -> int:
    """A port the kernel says is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_free(port: int) -> bool:
    """Nothing is bound to 127.0.0.1:``port`` (connections lingering in TIME_WAIT aside)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_slot() -> int:
    """A `ktrdr local` slot whose API port is free now (a random start, so parallel runs
    rarely meet); skips the test when every test slot is taken."""
    start = random.randrange(len(TEST_SLOTS))
    for index in range(len(TEST_SLOTS)):
        slot = TEST_SLOTS[(start + index) % len(TEST_SLOTS)]
        if port_free(LOCAL_STACK_BASE_PORT + slot):
            return slot
    pytest.skip(
        f"no free port in {LOCAL_STACK_BASE_PORT}+{TEST_SLOTS.start}.."
        f"{LOCAL_STACK_BASE_PORT}+{TEST_SLOTS.stop - 1} for a local stack"
    )
    raise AssertionError("unreachable")
