"""compose/local.yml run for real: the backend, the training worker from
ktrdr-worker-cpu-training and the backtest worker from the torch-free ktrdr-worker-cpu, on the
host network (containers here never talk over a bridge), through one training and one model
backtest; and the torch-free image refusing to start a training worker."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml

from ktrdr_core.client import KtrdrClient
from ktrdr_core.protocol import OperationState, WorkerStatus
from ktrdr_worker.models.dependencies import BACKTEST_IMAGE, TRAINING_IMAGES
from tests.support import docker as ds
from tests.support.market_data import eurusd_csv
from tests.support.ports import free_port
from tests.support.processes import process_env
from tests.support.stack import TINY_STRATEGY
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # builds images, trains in a container

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
TOKEN = "image-test-token"


class ComposeStack:
    """compose/local.yml plus a host-network override, as its own project."""

    def __init__(self, folder, api_port: int):
        self.folder = folder
        self.project = f"ktrdr-imagetest-{os.getpid()}"
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KTRDR_")},
            "KTRDR_REGISTRY": ds.REGISTRY,
            "IMAGE_TAG": ds.TAG,
            "KTRDR_API_TOKEN": TOKEN,
        }
        override = {
            "services": {
                "backend": {
                    "network_mode": "host",
                    "environment": {"KTRDR_API_HOST": "127.0.0.1", "KTRDR_API_PORT": str(api_port)},
                },
                **{
                    name: {
                        "network_mode": "host",
                        "environment": {
                            "KTRDR_API_URL": self.api_url,
                            "KTRDR_WORKER_HEALTH_PORT": str(free_port()),
                            "KTRDR_WORKER_POLL_SECONDS": "2",
                        },
                    }
                    for name in ("training-worker", "backtest-worker")
                },
            }
        }
        (folder / "host-network.yml").write_text(yaml.safe_dump(override))
        merged = self.compose(
            "-f",
            str(ds.ROOT / "compose" / "local.yml"),
            "-f",
            str(folder / "host-network.yml"),
            "config",
        ).stdout
        config = yaml.safe_load(merged)
        for service in config["services"].values():
            # docker-compose v1 refuses published ports beside host networking (an override
            # cannot remove a list entry), and on the host network there is nothing to publish.
            service.pop("ports", None)
        self.file = folder / "local-host-network.yml"
        self.file.write_text(yaml.safe_dump(config))

    def compose(self, *args: str, timeout: float = 300, check: bool = True):
        return ds.run(
            [
                ds.COMPOSE,
                "-p",
                self.project,
                "--project-directory",
                str(ds.ROOT / "compose"),
                *args,
            ],
            env=self.env,
            timeout=timeout,
            check=check,
        )

    def up(self) -> None:
        self.compose("-f", str(self.file), "up", "-d", timeout=600)

    def logs(self) -> str:
        result = self.compose(
            "-f", str(self.file), "logs", "--no-color", "--tail", "80", check=False
        )
        return result.stdout[-12000:] + result.stderr[-2000:]

    def health(self, service: str) -> str:
        container = self.compose("-f", str(self.file), "ps", "-q", service).stdout.strip()
        if not container:
            return "missing"
        state = json.loads(ds.docker("inspect", container).stdout)[0]["State"]
        return state.get("Health", {}).get("Status", state["Status"])

    def down(self) -> None:
        self.compose(
            "-f", str(self.file), "down", "-v", "--remove-orphans", "-t", "20", check=False
        )


@pytest.fixture
def stack(backend_image, worker_cpu_image, worker_cpu_training_image, tmp_path):
    compose = ComposeStack(tmp_path, free_port())
    try:
        with ds.phase("compose up (containers created)"):
            compose.up()
        yield compose
    finally:
        compose.down()


def test_local_stack_trains_and_backtests(stack, tmp_path):
    started = time.monotonic()
    wait_until(
        lambda: all(
            stack.health(s) == "healthy" for s in ("backend", "training-worker", "backtest-worker")
        ),
        "every service healthy",
        240,
        stack.logs,
    )
    with KtrdrClient(stack.api_url, token=TOKEN) as client:

        def both_idle() -> bool:
            kinds = {w.kind.value: w.status for w in client.list_workers()}
            return kinds == {"training": WorkerStatus.IDLE, "backtest": WorkerStatus.IDLE}

        wait_until(both_idle, "both workers registered and idle", 120, stack.logs)
        ds.TIMINGS["compose: up to both workers registered"] = time.monotonic() - started

        # The CLI from the workspace talks to the containerised backend.
        cli = subprocess.run(
            [str(ds.VENV_BIN / "ktrdr"), "--json", "workers"],
            capture_output=True,
            text=True,
            env=process_env({"KTRDR_API_URL": stack.api_url, "KTRDR_API_TOKEN": TOKEN}),
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert {w["kind"] for w in json.loads(cli.stdout)} == {"training", "backtest"}

        data = client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "EURUSD_1h.csv"))
        assert data.rows == 5000

        def finished(operation_id: str):
            view = client.get_operation(operation_id)
            return view if view.state in DONE else None

        with ds.phase("compose: training in a container"):
            training = client.start_training(TINY_STRATEGY, {"training.epochs": 2})
            trained = wait_until(
                lambda: finished(training.operation_id), "training", 300, stack.logs
            )
        assert trained.state == OperationState.COMPLETED, f"{trained.error}\n{stack.logs()}"
        model_id = trained.result["model_id"]

        with ds.phase("compose: backtest in a container"):
            backtest = client.start_backtest(model_id)
            tested = wait_until(
                lambda: finished(backtest.operation_id), "backtest", 300, stack.logs
            )
        assert tested.state == OperationState.COMPLETED, f"{tested.error}\n{stack.logs()}"
        report = client.backtest_report(backtest.operation_id)
        assert report["symbol"] == "EURUSD" and report["bars"] > 100
        assert report["inference"] == "numpy"  # the torch-free backtest worker ran it
        assert len(report["equity"]) == report["bars"]
    # The containers ran the images under test, not something pulled: the backtest ran on
    # the torch-free image, without torch.
    services = yaml.safe_load(stack.file.read_text())["services"]
    assert services["backend"]["image"] == f"{ds.REGISTRY}/ktrdr-backend:{ds.TAG}"
    assert (
        services["training-worker"]["image"] == f"{ds.REGISTRY}/ktrdr-worker-cpu-training:{ds.TAG}"
    )
    assert services["backtest-worker"]["image"] == f"{ds.REGISTRY}/ktrdr-worker-cpu:{ds.TAG}"


def test_torch_free_image_refuses_a_training_worker_naming_the_training_images(
    worker_cpu_image,
):
    """`ktrdr-worker training` on the image without torch stops before registering (nothing
    listens at the backend's address), with validate_ml_dependencies()'s message: a training
    worker needs torch, run one of the training images."""
    result = ds.docker(
        "run",
        "--rm",
        "--network",
        "host",
        "-e",
        "KTRDR_API_URL=http://127.0.0.1:9",
        worker_cpu_image,
        "ktrdr-worker",
        "training",
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ktrdr-worker: torch cannot be imported"), result.stderr
    assert "No module named 'torch'" in message, message
    assert "a training worker needs torch" in message, message
    for image in TRAINING_IMAGES:
        assert image in message, message
    assert f"the {BACKTEST_IMAGE} image has no torch" in message, message
    # The same image starts its own role's check: the backtest worker's dependencies are all
    # there, and it computes with numpy.
    check = ds.docker("run", "--rm", "--network", "host", worker_cpu_image, "ktrdr-worker", "check")
    assert json.loads(check.stdout)["torch"] is None, check.stdout
