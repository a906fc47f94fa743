"""validate_ml_dependencies: each worker role checks what it computes with, and refuses to start
without it, naming the image to use; the GPU image's worker refuses to train without a GPU."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ktrdr_worker.models import validate_ml_dependencies
from ktrdr_worker.runtime import NO_TORCH, TorchUnavailableError
from tests.support.blocked import blocking_path


def _check(role: str, missing: tuple[str, ...], tmp_path) -> subprocess.CompletedProcess:
    """validate_ml_dependencies(role) in a process where the ``missing`` packages are not
    installed, as in an image built without them."""
    code = (
        "from ktrdr_worker.models import validate_ml_dependencies\n"
        f"print(validate_ml_dependencies({role!r}).summary)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(blocking_path(tmp_path / "blocked", missing))},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_working_torch_passes_and_is_described():
    runtime = validate_ml_dependencies("training")
    assert runtime.version.startswith("2.")
    assert runtime.device_name
    assert runtime.summary == f"torch {runtime.version}"


def test_a_training_worker_without_torch_names_the_training_images(tmp_path):
    result = _check("training", ("torch",), tmp_path)
    assert result.returncode != 0
    assert "TorchUnavailableError" in result.stderr
    assert "a training worker needs torch and scikit-learn" in result.stderr
    assert "ktrdr-worker-gpu or ktrdr-worker-cpu-training" in result.stderr
    assert "the ktrdr-worker-cpu image has no torch" in result.stderr


def test_a_training_worker_without_scikit_learn_is_refused_too(tmp_path):
    result = _check("training", ("sklearn",), tmp_path)
    assert result.returncode != 0 and "scikit-learn cannot be imported" in result.stderr


def test_a_backtest_worker_needs_no_torch_scipy_or_scikit_learn(tmp_path):
    result = _check("backtest", ("torch", "scipy", "sklearn"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == NO_TORCH.summary == "no torch: numpy inference"


def test_a_backtest_worker_without_ta_lib_names_the_backtest_image(tmp_path):
    result = _check("backtest", ("talib",), tmp_path)
    assert result.returncode != 0
    assert "talib cannot be imported" in result.stderr and "ktrdr-worker-cpu image" in result.stderr


def test_a_backtest_worker_with_torch_computes_on_the_cpu():
    runtime = validate_ml_dependencies("backtest")
    assert runtime.version is not None and runtime.device_name == "CPU"
    assert not runtime.cuda_available


def test_require_gpu_refuses_to_train_without_a_cuda_device():
    if validate_ml_dependencies("training").cuda_available:
        pytest.skip("this machine has a CUDA device; the GPU check covers it")
    with pytest.raises(TorchUnavailableError) as caught:
        validate_ml_dependencies("training", require_gpu=True)
    message = str(caught.value)
    assert "no CUDA device is visible" in message
    assert "NVIDIA Container Toolkit" in message and "--gpus all" in message
    assert "KTRDR_WORKER_REQUIRE_GPU=0" in message
    # The backtest role never needs a GPU.
    assert validate_ml_dependencies("backtest", require_gpu=True).device_name == "CPU"
