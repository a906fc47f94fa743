"""The `ktrdr` command as a real process, the way a user runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.processes import BIN, process_env

KTRDR = str(BIN / "ktrdr")


def run_ktrdr(
    *args: str, home: Path, cwd: Path, timeout: float = 180, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """`ktrdr ARGS` as a real process in `cwd`, on KTRDR_HOME `home`; never raises on a
    non-zero exit."""
    return subprocess.run(
        [KTRDR, *args],
        env=process_env(extra_env, home=home),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
