"""The end-of-run check of tests/conftest.py (tests/support/leftovers.py) fails a run that
leaves a process running or changes the real ~/.ktrdr, naming what was left: shown on a tiny
run of its own, with the repository's conftest loaded as a plugin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.support.leftovers import command_line
from tests.support.workspace import ROOT

LEAKY_TESTS = """
import os
import subprocess
from pathlib import Path


def test_leaves_a_detached_process_running():
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    Path(os.environ["LEFTOVER_PID_FILE"]).write_text(str(sleeper.pid))


def test_writes_into_the_real_ktrdr_home():
    assert Path.home() != Path(os.environ["LEFTOVER_REAL_HOME"])  # HOME moved for the run
    (Path(os.environ["LEFTOVER_REAL_HOME"]) / ".ktrdr" / "stray.txt").write_text("left")
"""


def test_a_run_that_leaves_things_behind_fails_naming_them(tmp_path):
    real_home = tmp_path / "home"
    (real_home / ".ktrdr").mkdir(parents=True)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_leaky.py").write_text(LEAKY_TESTS)
    pid_file = tmp_path / "sleeper.pid"
    env = {k: v for k, v in os.environ.items() if k != "KTRDR_HOME"}
    env |= {
        "HOME": str(real_home),
        "PYTHONPATH": str(ROOT),
        "LEFTOVER_PID_FILE": str(pid_file),
        "LEFTOVER_REAL_HOME": str(real_home),
    }
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
             "-q", "test_leaky.py"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        if pid is not None and command_line(pid) == "sleep 60":  # should the check not have
            os.kill(pid, signal.SIGKILL)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "2 passed" in run.stdout, output
    assert "the test run left things behind" in run.stdout, output
    assert f"process {pid} still running: sleep 60" in run.stdout, output
    assert f"{real_home / '.ktrdr'} added   stray.txt" in run.stdout, output
    assert command_line(pid) != "sleep 60", "the check did not stop the process it reported"
