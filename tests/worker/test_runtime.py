import json
import subprocess
import sys

import pytest

from ktrdr_worker.evaluation import classification_report
from ktrdr_worker.runtime import TorchUnavailableError, resolve_device, torch_runtime
from tests.support.blocked import blocking_path


def test_cpu_build_is_what_the_tests_run_on():
    runtime = torch_runtime()
    assert runtime.version.startswith("2.13.0")
    assert runtime.cuda_build is None, "the test environment must hold the CPU build of torch"


def test_asking_for_cuda_on_a_cpu_build_names_the_gpu_image():
    if torch_runtime().cuda_available:
        pytest.skip("a CUDA device is present")
    with pytest.raises(TorchUnavailableError, match="ktrdr-worker-gpu"):
        resolve_device("cuda")
    assert resolve_device("auto") in ("cpu", "mps")


def test_check_names_the_training_images_when_torch_is_broken(tmp_path):
    # A torch that fails to import (broken install) shadows the real one.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('libtorch.so: bad ELF')\n")
    result = subprocess.run(
        [sys.executable, "-m", "ktrdr_worker.cli", "check"],
        env={"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "torch cannot be imported" in result.stderr
    assert "ktrdr-worker-gpu / ktrdr-worker-cpu-training" in result.stderr


def test_check_describes_a_worker_without_torch(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ktrdr_worker.cli", "check"],
        env={"PYTHONPATH": str(blocking_path(tmp_path))},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert described["torch"] is None and described["device_name"] == "CPU"


def test_report_puts_a_useless_model_beside_its_baseline():
    y_true = [1, 1, 1, 1, 0, 2, 1, 1]
    report = classification_report(y_true, [1] * 8, ["BUY", "HOLD", "SELL"])
    assert report["accuracy"] == report["baseline"]["accuracy"] == 0.75
    assert report["baseline"]["class"] == "HOLD"
    assert report["per_class"]["BUY"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["confusion_matrix"][1] == [0, 6, 0]
