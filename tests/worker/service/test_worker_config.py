"""Worker settings from the environment: ids that tell replicas apart, errors that name the
variable, and a command that refuses bad settings before touching the backend."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ktrdr_core.protocol import WORKER_ID_PATTERN, OperationKind
from ktrdr_worker.service.config import WorkerConfig, WorkerConfigError, default_worker_id


def test_default_ids_name_host_and_kind_and_differ_between_processes():
    first = WorkerConfig.from_env("training", {})
    second = WorkerConfig.from_env("training", {})
    assert first.worker_id != second.worker_id  # two replicas on one host
    assert re.fullmatch(WORKER_ID_PATTERN, first.worker_id)
    assert "-training-" in first.worker_id
    odd_host = default_worker_id(OperationKind.BACKTEST, host="gpu box/01.lan")
    assert odd_host.startswith("gpu-box-01.lan-backtest-")
    assert re.fullmatch(WORKER_ID_PATTERN, odd_host)


def test_environment_is_read():
    config = WorkerConfig.from_env(
        "backtest",
        {
            "KTRDR_API_URL": "http://api.lan:9000/",
            "KTRDR_API_TOKEN": "s3cret",
            "KTRDR_WORKER_ID": "bt-7",
            "KTRDR_WORKER_CACHE": "/var/cache/ktrdr",
            "KTRDR_WORKER_HEALTH_PORT": "8081",
            "KTRDR_WORKER_POLL_SECONDS": "2.5",
        },
    )
    assert config.api_url == "http://api.lan:9000"
    assert (config.api_token, config.worker_id, config.health_port) == ("s3cret", "bt-7", 8081)
    assert str(config.cache_dir) == "/var/cache/ktrdr" and config.poll_seconds == 2.5
    assert config.kind == OperationKind.BACKTEST


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KTRDR_WORKER_ID": "../etc"}, "KTRDR_WORKER_ID"),
        ({"KTRDR_WORKER_POLL_SECONDS": "soon"}, "KTRDR_WORKER_POLL_SECONDS"),
        ({"KTRDR_WORKER_POLL_SECONDS": "600"}, "KTRDR_WORKER_POLL_SECONDS"),
        ({"KTRDR_WORKER_HEALTH_PORT": "70000"}, "KTRDR_WORKER_HEALTH_PORT"),
        ({"KTRDR_API_PORT": "http"}, "KTRDR_API_PORT"),
    ],
)
def test_bad_settings_name_the_variable(env, named):
    with pytest.raises(WorkerConfigError, match=named):
        WorkerConfig.from_env("training", env)


def test_the_command_refuses_bad_settings_with_status_2():
    result = subprocess.run(
        [sys.executable, "-m", "ktrdr_worker.cli", "training"],
        env={"KTRDR_WORKER_ID": "no spaces please", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "KTRDR_WORKER_ID='no spaces please'" in result.stderr
