"""validate_ml_dependencies: a worker without a usable torch refuses to start, naming the images."""

from __future__ import annotations

import subprocess
import sys

from ktrdr_worker.models import validate_ml_dependencies

CHECK = "from ktrdr_worker.models import validate_ml_dependencies\nvalidate_ml_dependencies()\n"


def test_a_working_torch_passes_and_is_described():
    runtime = validate_ml_dependencies()
    assert runtime.version.startswith("2.")
    assert runtime.device_name


def test_a_missing_torch_names_the_worker_images(tmp_path):
    # A torch package that fails to import shadows the real one, as in a wrongly built image.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('No module named torch')\n")
    result = subprocess.run(
        [sys.executable, "-c", CHECK],
        env={"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "TorchUnavailableError" in result.stderr
    assert "wrong image was probably deployed" in result.stderr
    assert "ktrdr-worker-cpu" in result.stderr and "ktrdr-worker-gpu" in result.stderr
