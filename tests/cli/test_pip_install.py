"""The CLI as a user without the workspace gets it: two wheels, pip, a clean venv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from ktrdr_core.simulator import simulate_csv
from tests.support.processes import clean_env
from tests.support.stack import start_api
from tests.support.workspace import ROOT  # uv builds members from the workspace root

pytestmark = pytest.mark.slow  # builds two wheels and installs them with their dependencies


def test_cli_from_its_wheel_works_against_a_running_backend(tmp_path):
    uv = shutil.which("uv") or shutil.which("uv", path=os.path.dirname(sys.executable))
    if uv is None:
        pytest.skip("uv is not on PATH; run scripts/setup-env")
    dist = tmp_path / "dist"
    for package in ("ktrdr-core", "ktrdr-cli"):
        subprocess.run([uv, "build", "--package", package, "--wheel", "--out-dir", str(dist)],
                       check=True, capture_output=True, env=clean_env(), cwd=ROOT)  # fmt: skip
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *dist.glob("*.whl")],
        check=True, capture_output=True, cwd=tmp_path, env=clean_env(),
    )  # fmt: skip
    ktrdr = str(venv / "bin" / "ktrdr")
    # Only the venv and the system on PATH: nothing from the workspace can answer for it.
    env = clean_env(PATH=f"{venv / 'bin'}:/usr/bin:/bin", KTRDR_HOME=str(tmp_path / "home"))

    api = start_api(tmp_path / "backend")
    try:
        csv = tmp_path / "synth.csv"
        csv.write_text(simulate_csv(300, "1d", seed=5))
        imported = subprocess.run(
            [ktrdr, "--url", api.url, "data", "import", "SYNTH", "1d", str(csv)],
            capture_output=True, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        listed = subprocess.run([ktrdr, "--url", api.url, "data", "list"],
                                capture_output=True, text=True, env=env, cwd=tmp_path)  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines()[0].split() == [
            "SYMBOL", "TF", "VER", "ROWS", "FIRST", "LAST", "SHA256",
        ]  # fmt: skip
        assert listed.stdout.splitlines()[1].split()[:4] == ["SYNTH", "1d", "1", "300"]
        as_json = subprocess.run([ktrdr, "--url", api.url, "--json", "data", "list"],
                                 capture_output=True, text=True, env=env)  # fmt: skip
        assert [d["rows"] for d in json.loads(as_json.stdout)] == [300]
    finally:
        api.stop()

    # Without the backend and worker distributions, `local up` says what to install.
    local = subprocess.run([ktrdr, "local", "up", "--slot", "97"], capture_output=True,
                           text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert local.returncode == 1
    assert "run: pip install ktrdr-api ktrdr-worker" in local.stderr
    unreachable = subprocess.run([ktrdr, "--url", api.url, "data", "list"],
                                 capture_output=True, text=True, env=env)  # fmt: skip
    assert unreachable.returncode == 1
    assert unreachable.stderr.strip().endswith("is the backend running? try `ktrdr local up`")
