"""bench/fleet.py itself works: a small fleet, spread over 2 load-generator processes, on 1
and 2 real API processes completes every operation, claims none twice, and prints its table.
Its timings are the bench's business: a missed target (exit status 1) is not a failure here,
a crash (any other status) is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import process_env

pytestmark = pytest.mark.slow  # two API starts, PostgreSQL, 80 simulated operations

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fleet.py"


def test_the_fleet_bench_runs_small(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH), "--workers", "6", "--processes", "1", "2", "--ops", "40",
         "--rate", "8", "--clients", "2"],
        env=process_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stdout + result.stderr
    rows = [
        [cell.strip() for cell in line.split("|")]
        for line in result.stdout.splitlines()
        if line.strip().startswith("6 |")
    ]
    assert [(row[1], row[2]) for row in rows] == [("1", "40"), ("2", "40")], result.stdout
    assert all(row[9] == "0" for row in rows), result.stdout  # no double claim
    assert "first to saturate" in result.stdout and "API CPU-s/op" in result.stdout
