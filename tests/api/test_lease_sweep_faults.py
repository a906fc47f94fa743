"""The lease sweep outlives one operation it cannot handle: that operation fails with the
reason and a log line naming it, every other expired lease is still requeued, and the
background sweep keeps going (issue 16: before, one raise ended the sweeper for good, and
from then on no lease ever expired)."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient
from sqlalchemy import update

from ktrdr_api.app import create_app
from ktrdr_api.models import Operation
from tests.support.api import claim, register, training_inputs, upload_artifact
from tests.support.waiting import wait_until


def _unreadable(backend, operation_id: str) -> None:
    """What a newer ktrdr could have written before a downgrade: inputs of an unknown kind."""
    with backend.sessions.begin() as session:
        session.execute(
            update(Operation)
            .where(Operation.id == operation_id)
            .values(inputs={"kind": "from_a_newer_version", "strategy_name": "s1"})
        )


def test_one_unreadable_operation_fails_alone_and_the_sweep_goes_on(settings, caplog):
    caplog.set_level(logging.ERROR, logger="ktrdr_api")
    fast = settings.model_copy(update={"lease_seconds": 0.3})
    with TestClient(create_app(fast, sweep_interval_s=0.05)) as live:
        backend = live.app.state.backend
        ops = backend.operations
        data = upload_artifact(live, b"x", "data")
        broken, healthy = (
            ops.create(training_inputs(data, name), references=[data]).operation_id
            for name in ("broken", "healthy")
        )
        for worker in ("w1", "w2"):
            register(live, worker)
            claim(live, worker)
        _unreadable(backend, broken)

        def both_handled() -> bool:
            with backend.sessions() as session:
                states = {op_id: session.get(Operation, op_id).state for op_id in (broken, healthy)}
            return states == {broken: "failed", healthy: "pending"}

        wait_until(both_handled, "the sweep to fail one and requeue the other", 10)
        with backend.sessions() as session:
            error = session.get(Operation, broken).error
        assert error.startswith("its lease expired and it could not be requeued")
        assert "from_a_newer_version" in error
        logged = [r for r in caplog.records if getattr(r, "operation_id", None) == broken]
        assert logged and "could not be requeued" in logged[0].getMessage()

        # Later leases still expire: the background sweep is alive.
        assert claim(live, "w1")["operation_id"] == healthy
        wait_until(lambda: ops.get(healthy).state == "pending", "the next sweep", 10)
