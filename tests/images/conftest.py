"""Fixtures for the image tests: Docker set up by the tests, images built once per run.

Under CI=true anything that cannot be set up (apt, dockerd, the base image) fails the run;
elsewhere the tests that need it are skipped with the reason (``unavailable``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import docker as ds
from tests.support.ci import unavailable


@pytest.fixture(scope="session")
def docker_tools() -> None:
    """docker, dockerd, docker-compose and debootstrap binaries (apt-get when missing)."""
    with ds.phase("apt (docker.io, docker-compose, debootstrap)"):
        try:
            ds.ensure_packages()
        except ds.DockerUnavailable as exc:
            unavailable(str(exc))


@pytest.fixture(scope="session")
def docker_daemon(docker_tools) -> None:
    with ds.phase("dockerd"):
        try:
            ds.ensure_daemon()
        except ds.DockerUnavailable as exc:
            unavailable(str(exc))
    with ds.phase("base image (debootstrap or cache)"):
        try:
            ds.ensure_base_image()
        except ds.DockerUnavailable as exc:
            unavailable(str(exc))


@pytest.fixture(scope="session")
def build_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("image-builds")


@pytest.fixture(scope="session")
def backend_image(docker_daemon, build_logs) -> str:
    with ds.phase("build ktrdr-backend"):
        return ds.build("ktrdr-backend", "backend.Dockerfile", {}, build_logs)


@pytest.fixture(scope="session")
def worker_cpu_image(docker_daemon, build_logs) -> str:
    """ktrdr-worker-cpu: the torch-free backtest worker (no CPU torch wheel needed)."""
    with ds.phase("build ktrdr-worker-cpu"):
        return ds.build("ktrdr-worker-cpu", "worker-cpu.Dockerfile", {}, build_logs)


@pytest.fixture(scope="session")
def worker_cpu_training_image(docker_daemon, build_logs, tmp_path_factory) -> str:
    """ktrdr-worker-cpu-training: the training worker with the CPU torch, served on loopback."""
    with ds.phase("CPU torch wheel"):
        try:
            wheel = ds.cpu_torch_wheel()
        except ds.DockerUnavailable as exc:
            unavailable(str(exc))
    index = ds.serve_wheels(wheel, tmp_path_factory.mktemp("torch-index"))
    try:
        with ds.phase("build ktrdr-worker-cpu-training"):
            return ds.build(
                "ktrdr-worker-cpu-training",
                "worker-cpu-training.Dockerfile",
                {"TORCH_CPU_INDEX": index.url},
                build_logs,
            )
    finally:
        index.stop()


@pytest.fixture(scope="session")
def worker_gpu_image(docker_daemon, build_logs) -> str:
    """ktrdr-worker-gpu, as the lock resolves it (about 3 GB of CUDA wheels from PyPI): only
    the opt-in tests (KTRDR_TEST_GPU_IMAGE=1, tests/images/test_gpu_image.py) ask for it."""
    with ds.phase("build ktrdr-worker-gpu"):
        return ds.build("ktrdr-worker-gpu", "worker-gpu.Dockerfile", {}, build_logs)


def pytest_terminal_summary(terminalreporter) -> None:
    if ds.TIMINGS:
        terminalreporter.section("image tests: phase timings")
        for name, seconds in ds.TIMINGS.items():
            terminalreporter.write_line(f"  {name:<44} {seconds:7.1f} s")
    if ds.SIZES:
        terminalreporter.section("image sizes")
        header = f"  {'image':<26} {'total':>10} {'- base':>10} {'- torch+numeric':>16}  target"
        terminalreporter.write_line(header)
        for row in ds.SIZES:
            terminalreporter.write_line(
                f"  {row['image']:<26} {ds.mb(row['total']):>10} {ds.mb(row['minus_base']):>10} "
                f"{ds.mb(row['minus_numeric']):>16}  {row['target']}"
            )
