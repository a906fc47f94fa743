"""ktrdr-worker-gpu, opt-in (KTRDR_TEST_GPU_IMAGE=1): its build downloads about 3 GB of CUDA
wheels and the image takes about 5 GB of disk, too much for every run (and for CI).

Checked here without a GPU: the torch build has CUDA, triton is absent, and `ktrdr-worker
training` refuses to start when no CUDA device is visible (KTRDR_WORKER_REQUIRE_GPU=1 in the
image), naming the NVIDIA Container Toolkit and the override. That CUDA training really runs
without triton is bench/gpu_check.py's job, on a machine with a GPU.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.support import docker as ds

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("KTRDR_TEST_GPU_IMAGE") != "1",
        reason="opt-in: KTRDR_TEST_GPU_IMAGE=1 builds ktrdr-worker-gpu (about 3 GB of CUDA "
        "wheels, 5 GB of disk)",
    ),
]
# The original system's target for its GPU worker image.
ORIGINAL_TARGET = 3.3e9


def run_in(tag: str, *command: str, env: dict[str, str] | None = None):
    args = ["run", "--rm", "--network", "host"]
    for name, value in (env or {}).items():
        args += ["-e", f"{name}={value}"]
    return ds.docker(*args, tag, *command, timeout=300, check=False)


def test_gpu_image_carries_cuda_torch_and_no_triton(worker_gpu_image):
    config = ds.inspect(worker_gpu_image)["Config"]
    assert config["Cmd"] == ["ktrdr-worker", "training"]
    assert config["Entrypoint"] == ["tini", "--"]
    assert config["User"] not in ("", "root", "0", "0:0")
    assert "KTRDR_WORKER_REQUIRE_GPU=1" in config["Env"]
    probe = run_in(
        worker_gpu_image,
        "python3",
        "-c",
        "import importlib.util, json, torch; print(json.dumps({'torch': torch.__version__, "
        "'cuda': torch.version.cuda, 'triton': importlib.util.find_spec('triton') is not None}))",
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["torch"].split("+")[0] == ds.locked_version("torch"), found
    assert found["cuda"], f"torch has no CUDA build: {found}"
    assert found["triton"] is False, found


def test_gpu_image_refuses_to_train_without_a_gpu(worker_gpu_image):
    """No CUDA device here: the training worker stops before registering (nothing listens at
    the backend's address), naming the toolkit and the override."""
    result = run_in(
        worker_gpu_image,
        "ktrdr-worker",
        "training",
        env={"KTRDR_API_URL": "http://127.0.0.1:9"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ktrdr-worker: no CUDA device is visible"), result.stderr
    assert "NVIDIA Container Toolkit" in message, message
    assert "KTRDR_WORKER_REQUIRE_GPU=0" in message, message


def test_gpu_image_size_against_the_original_target(worker_gpu_image):
    """Printed, not enforced: the CUDA runtime alone (nvidia-*) is about 2.7 GB."""
    base = ds.inspect(ds.BASE_IMAGE)["Size"]
    total = ds.inspect(worker_gpu_image)["Size"]
    stack = sum(ds.installed_bytes(worker_gpu_image, ds.numeric_distributions()).values())
    verdict = "within" if total <= ORIGINAL_TARGET else "over"
    ds.SIZES.append(
        {
            "image": "ktrdr-worker-gpu",
            "total": total,
            "minus_base": total - base,
            "minus_numeric": total - base - stack,
            "target": f"original: target {ds.mb(ORIGINAL_TARGET)} ({verdict}); 5.42 GB with triton",
        }
    )
    print(f"ktrdr-worker-gpu: {ds.mb(total)} in all against the original's 3.3 GB target")
