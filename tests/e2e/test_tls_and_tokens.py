"""Across hosts over HTTPS with scoped tokens, as real processes: `ktrdr-api serve` with a
certificate from a private CA made by `openssl`, the `ktrdr` command and training workers
trusting that CA (KTRDR_CA_BUNDLE), each worker with a worker token of its own.

- a training runs end to end over HTTPS with a worker token;
- a worker token's delete is refused (403), nothing changes, and `ktrdr audit` shows it;
- a CA that did not sign the backend's certificate is refused with a message saying so;
- a revoked token is refused at its next request;
- a worker token is rotated while a training runs: nothing is lost.
"""

from __future__ import annotations

import json
import signal

import pytest

from ktrdr_core.access import Role
from ktrdr_core.errors import ApiError
from ktrdr_core.protocol import AttemptOutcome, OperationState
from tests.support.cli import run_ktrdr
from tests.support.market_data import eurusd_csv
from tests.support.stack import (
    TINY_STRATEGY,
    ApiServer,
    WorkerProcess,
    held_with_checkpoint,
    wait_for_state,
)
from tests.support.tls import make_pki
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # training workers import torch

ADMIN = "tls-bootstrap-admin"
DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
SHORT = {"training.epochs": 1, "training.checkpoint_interval": 100}
RESUMABLE = {"training.epochs": 4, "training.batch_size": 32, "training.early_stopping": None}


@pytest.fixture
def tls_api(tmp_path):
    api = ApiServer(tmp_path / "home", lease_seconds=600.0, token=ADMIN,
                    tls=make_pki(tmp_path / "pki")).start()  # fmt: skip
    yield api
    api.stop()


def _ktrdr(api: ApiServer, tmp_path, *args: str, token: str = ADMIN, **env: str):
    settings = {"KTRDR_API_URL": api.url, "KTRDR_API_TOKEN": token}
    if api.ca_bundle is not None:
        settings["KTRDR_CA_BUNDLE"] = str(api.ca_bundle)
    settings.update(env)
    return run_ktrdr(*args, home=tmp_path / "cli-home", cwd=tmp_path, **settings)


def test_https_worker_tokens_refusals_audit_wrong_ca_and_revocation(tls_api, tmp_path):
    api = tls_api
    assert api.url.startswith("https://")
    made = _ktrdr(api, tmp_path, "--json", "tokens", "create", "--role", "worker", "--name",
                  "host1")  # fmt: skip
    assert made.returncode == 0, made.stderr
    worker_token = json.loads(made.stdout)
    assert worker_token["role"] == "worker"
    imported = _ktrdr(api, tmp_path, "data", "import", "EURUSD", "1h",
                      str(eurusd_csv(tmp_path / "eurusd.csv")))  # fmt: skip
    assert imported.returncode == 0, imported.stderr

    worker = WorkerProcess("training", api, tmp_path / "workers", worker_id="host1-training",
                           env={"KTRDR_API_TOKEN": worker_token["secret"]})  # fmt: skip
    try:
        worker.wait_registered()
        with api.client() as admin:
            op = admin.start_training(TINY_STRATEGY, SHORT).operation_id
            done = wait_for_state(api, op, DONE, "to end", 300, worker.logs)
            assert done.state == OperationState.COMPLETED, done.error
            [registered] = admin.list_workers()
            assert registered.worker_id == "host1-training"

            # The worker token tries to delete the data it trained on: 403, nothing changes.
            refused = _ktrdr(api, tmp_path, "data", "delete", "EURUSD", "1h", "--force",
                             token=worker_token["secret"])  # fmt: skip
            print(f"$ ktrdr data delete EURUSD 1h --force   # with host1's worker token\n"
                  f"{refused.stderr}(exit {refused.returncode})")  # fmt: skip
            assert refused.returncode == 1
            assert "has role worker" in refused.stderr and "needs researcher" in refused.stderr
            assert "(HTTP 403)" in refused.stderr
            assert [d.symbol for d in admin.list_data()] == ["EURUSD"]

            trail = _ktrdr(api, tmp_path, "audit", "--refused")
            print(f"$ ktrdr audit --refused\n{trail.stdout}")
            assert trail.returncode == 0, trail.stderr
            [line] = [row for row in trail.stdout.splitlines() if "DELETE" in row]
            assert f"host1 ({worker_token['token_id']}, worker)" in line
            assert "DELETE /api/v1/data/EURUSD/1h" in line and "refused" in line
            assert "127.0.0.1" in line

            # A CA that did not sign the backend's certificate, and the system store.
            wrong = _ktrdr(api, tmp_path, "workers", KTRDR_CA_BUNDLE=str(api.tls.wrong_ca))
            assert wrong.returncode == 1
            assert f"not trusted by the CA bundle {api.tls.wrong_ca}" in wrong.stderr
            assert "KTRDR_CA_BUNDLE" in wrong.stderr
            system = _ktrdr(api, tmp_path, "workers", KTRDR_CA_BUNDLE="")
            assert system.returncode == 1
            assert "not trusted by the system trust store" in system.stderr

            # Revoked: the running worker's next request is refused, and it stops.
            revoked = _ktrdr(api, tmp_path, "tokens", "revoke", worker_token["token_id"])
            assert revoked.returncode == 0, revoked.stderr
            assert worker.wait_exit(60) != 0
            assert "invalid or revoked bearer token" in worker.log.read_text()
            after = _ktrdr(api, tmp_path, "workers", token=worker_token["secret"])
            assert after.returncode == 1 and "(HTTP 401)" in after.stderr
            listed = _ktrdr(api, tmp_path, "--json", "tokens", "list", "--all")
            [row] = json.loads(listed.stdout)
            assert row["revoked_at"] is not None and "secret" not in row
    finally:
        worker.stop()


def test_a_worker_that_trusts_another_ca_stops_and_says_why(tls_api, tmp_path):
    api = tls_api
    worker = WorkerProcess("training", api, tmp_path / "workers", worker_id="wrong-ca",
                           env={"KTRDR_CA_BUNDLE": str(api.tls.wrong_ca)})  # fmt: skip
    try:
        assert worker.wait_exit(120) != 0
        log = worker.log.read_text()
        assert "the backend's certificate is not trusted by the CA bundle" in log
        with api.client() as admin:
            assert admin.list_workers() == []
    finally:
        worker.stop()


def test_rotating_a_worker_token_during_a_training_loses_nothing(tls_api, tmp_path):
    api = tls_api
    hold = tmp_path / "hold"
    with api.client() as admin:
        admin.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "eurusd.csv"))
        old = admin.create_token("gpu-host", Role.WORKER)
        first = WorkerProcess("training", api, tmp_path / "workers", worker_id="gpu-host-1",
                              env={"KTRDR_API_TOKEN": old.secret,
                                   "KTRDR_WORKER_HOLD_FILE": str(hold)})  # fmt: skip
        workers = [first]

        def logs() -> str:
            return "\n".join(w.logs() for w in workers)

        try:
            first.wait_registered()
            hold.touch()  # the run holds at an epoch boundary, checkpoint uploaded
            op = admin.start_training(TINY_STRATEGY, RESUMABLE).operation_id
            seen = wait_until(held_with_checkpoint(admin, op), "held with a checkpoint", 180, logs)

            # 1. a new token for the host; 2. restart its worker with it; 3. revoke the old one.
            new = admin.create_token("gpu-host", Role.WORKER)
            first.signal(signal.SIGTERM)  # checkpoints and releases the operation
            assert first.wait_exit() == 0, first.logs()
            second = WorkerProcess("training", api, tmp_path / "workers", worker_id="gpu-host-1",
                                   env={"KTRDR_API_TOKEN": new.secret})  # fmt: skip
            workers.append(second)
            admin.revoke_token(old.token_id)
            with api.client(old.secret) as stale, pytest.raises(ApiError) as refused:
                stale.heartbeat("gpu-host-1")
            assert refused.value.status == 401

            done = wait_for_state(api, op, DONE, "to end", 400, logs)
            assert done.state == OperationState.COMPLETED, done.error
            released, completed = done.reproducibility.attempts
            assert released.outcome == AttemptOutcome.RELEASED
            assert completed.outcome == AttemptOutcome.COMPLETED
            assert completed.worker_id == "gpu-host-1"
            assert done.result["summary"]["resumed_from_epoch"] == seen.progress.step
            assert done.result["summary"]["epochs_run"] == RESUMABLE["training.epochs"]
            actions = [(e.action, e.target) for e in admin.audit_events()]
            assert actions[:3] == [
                ("token.revoke", f"{old.token_id} gpu-host"),
                ("token.create", f"{new.token_id} gpu-host"),
                ("token.create", f"{old.token_id} gpu-host"),
            ]
        finally:
            for worker in workers:
                worker.stop()
