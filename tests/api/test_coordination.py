"""Several API processes on one PostgreSQL: wake-ups through LISTEN/NOTIFY, claims that never
hand one operation out twice, one leader per background duty, migrations that run once; and
SQLite refused for more than one process.

Each "process" here is an app of its own (its own engine, pool, dispatcher and listener) on
the same database: what they share is PostgreSQL, as separate processes do. The real
processes are the fault drill's (tests/e2e/test_drills_api_processes.py).
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from ktrdr_api import cli
from ktrdr_api.app import create_app
from ktrdr_api.coordination import Duty
from ktrdr_api.db import SCHEMA_REVISION, make_engine, schema_revision
from ktrdr_api.dispatch import GPU_GRACE_S
from ktrdr_api.migrations import upgrade
from ktrdr_core.protocol import BacktestInputs
from ktrdr_core.settings import Settings
from tests.api.test_metrics import scrape, value
from tests.support.api import (
    API,
    FakeClock,
    claim,
    register,
    training_inputs,
    upload_artifact,
)
from tests.support.waiting import wait_until

_names = iter(range(10**6))


@pytest.fixture
def shared_url(postgres_server) -> str:
    return postgres_server.create_database(f"ktrdr_coord_{next(_names)}")


@pytest.fixture
def two_processes(shared_url, tmp_path):
    """Two apps on one PostgreSQL database and one artifact folder, both listening."""
    clients = []
    for name in ("a", "b"):
        settings = Settings(home=tmp_path / "home", database_url=shared_url, lease_seconds=30)
        client = TestClient(create_app(settings, clock=FakeClock(), sweep_interval_s=3600))
        client.__enter__()
        clients.append(client)
        wait_until(client.app.state.listener.listening.is_set, f"{name} listening", 30)
    yield clients
    for client in clients:
        client.__exit__(None, None, None)


def _backtest(backend) -> str:
    inputs = BacktestInputs(model_id="mdl_000000000000", bundle_sha256="0" * 64, data=[])
    return backend.operations.create(inputs).operation_id


def test_an_operation_created_on_one_process_wakes_a_long_poll_on_the_other(two_processes):
    a, b = two_processes
    # No periodic re-check on b: only the notification through PostgreSQL can end its wait
    # before the poll's 30 s run out.
    b.app.state.backend.dispatcher.recheck_s = 3600
    register(a, "bt-1", kind="backtest")
    results: dict = {}
    # The poll's last look at its end would find the operation: only an answer well before
    # that end shows the wake-up.
    poll = threading.Thread(target=lambda: results.update(got=claim(b, "bt-1", 20)), daemon=True)
    poll.start()
    wait_until(lambda: b.app.state.backend.dispatcher.waiting(), "bt-1 long-polling on b", 30)
    op_id = _backtest(a.app.state.backend)
    poll.join(timeout=10)
    assert "got" in results, "b's poll was not woken by the operation made on a"
    assert results["got"]["operation_id"] == op_id


def _poll_on_each(a, b, on_a: str, on_b: str, results: dict) -> list[threading.Thread]:
    """``on_a`` long-polling a and ``on_b`` long-polling b, each in a thread, its answer in
    ``results``. The periodic re-check is off on both, so only a notification can end a poll
    with an operation: left alone, a poll answers None at its end (no look after its
    deadline). Returns once both polls wait."""
    polls = []
    for client, worker_id in ((a, on_a), (b, on_b)):
        dispatcher = client.app.state.backend.dispatcher
        dispatcher.recheck_s = 3600

        def poll(client=client, worker_id=worker_id) -> None:
            results[worker_id] = claim(client, worker_id, 10)

        polls.append(threading.Thread(target=poll, daemon=True))
        polls[-1].start()
        wait_until(
            lambda d=dispatcher, me=worker_id: me in {w for w, _, _ in d.waiting()},
            f"{worker_id} long-polling",
            30,
        )
    return polls


def _count_claims(client) -> list[str]:
    """Every claim ``client``'s process runs from now on (the worker asking)."""
    ops = client.app.state.backend.operations
    tries: list[str] = []
    try_claim = ops.try_claim
    ops.try_claim = lambda worker: tries.append(worker.worker_id) or try_claim(worker)
    return tries


def test_a_new_operation_wakes_only_the_process_whose_waiter_takes_it(two_processes):
    """With an idle waiter on the creating process, the other process's waiters sleep on:
    no claim that would only find the operation taken."""
    a, b = two_processes
    register(a, "bt-a", kind="backtest")
    register(a, "bt-b", kind="backtest")
    results: dict = {}
    polls = _poll_on_each(a, b, "bt-a", "bt-b", results)
    claims_on_b = _count_claims(b)
    first = _backtest(a.app.state.backend)
    polls[0].join(timeout=60)
    assert results["bt-a"]["operation_id"] == first
    # a has no waiter left: its next operation goes to every process, and reaches bt-b. The
    # notifications arrive in commit order, so b heard the first before this one.
    second = _backtest(a.app.state.backend)
    polls[1].join(timeout=60)
    assert results["bt-b"] is not None, "bt-b's poll on b was not woken"
    assert results["bt-b"]["operation_id"] == second
    assert claims_on_b == ["bt-b"], "b ran a claim for the operation a's own waiter took"


def test_a_training_where_only_cpu_workers_wait_reaches_a_gpu_worker_on_the_other(
    two_processes,
):
    """GPU first: a's CPU waiter leaves the fresh training alone, so the wake-up must reach
    the GPU worker polling on b, not stay on a."""
    a, b = two_processes
    register(a, "cpu-1")
    register(a, "gpu-1", device="cuda")
    results: dict = {}
    polls = _poll_on_each(a, b, "cpu-1", "gpu-1", results)
    data_sha = upload_artifact(a, b"timestamp,open,high,low,close,volume\n", "data")
    made = a.app.state.backend.operations.create(training_inputs(data_sha), references=[data_sha])
    for poll in polls:
        poll.join(timeout=60)
    assert results["gpu-1"] is not None, "the GPU worker on b was not woken by the training"
    assert results["gpu-1"]["operation_id"] == made.operation_id
    assert results["cpu-1"] is None


def test_several_new_operations_at_once_wake_every_process(two_processes):
    a, b = two_processes
    register(a, "bt-a", kind="backtest")
    register(a, "bt-b", kind="backtest")
    results: dict = {}
    polls = _poll_on_each(a, b, "bt-a", "bt-b", results)
    ops = a.app.state.backend.operations
    inputs = BacktestInputs(model_id="mdl_000000000000", bundle_sha256="0" * 64, data=[])
    with ops.sessions.begin() as session:  # two in one transaction: one notification
        made = {ops.add(session, inputs).id, ops.add(session, inputs).id}
    for poll in polls:
        poll.join(timeout=60)
    assert results["bt-b"] is not None, "b's waiter was not woken by two operations at once"
    assert {results["bt-a"]["operation_id"], results["bt-b"]["operation_id"]} == made


def test_a_child_ending_on_one_process_wakes_the_study_drivers_waiting_on_the_other(
    two_processes,
):
    a, b = two_processes
    heard: list[str] = []
    b.app.state.backend.tunes.watch.notify = heard.append  # what a waiting driver hears
    ops = a.app.state.backend.operations
    inputs = BacktestInputs(model_id="mdl_000000000000", bundle_sha256="0" * 64, data=[])
    child = ops.create(inputs, parent_id="op_00000000abcd", role="backtest:0")
    ops.request_cancel(child.operation_id)  # a pending child ends at once
    wait_until(lambda: "op_00000000abcd" in heard, "b hearing that a child of the study ended", 30)


def test_a_rolled_back_creation_wakes_nobody(two_processes):
    a, b = two_processes
    b.app.state.backend.dispatcher.recheck_s = 3600
    register(a, "bt-1", kind="backtest")
    results: dict = {}
    poll = threading.Thread(target=lambda: results.update(got=claim(b, "bt-1", 2)))
    poll.start()
    wait_until(lambda: b.app.state.backend.dispatcher.waiting(), "bt-1 long-polling on b", 30)
    ops = a.app.state.backend.operations
    inputs = BacktestInputs(model_id="mdl_000000000000", bundle_sha256="0" * 64, data=[])
    with ops.sessions() as session:  # added, then rolled back: never existed
        ops.add(session, inputs)
        session.rollback()
    poll.join(timeout=60)
    assert results["got"] is None


def _status(client, worker_id: str) -> str:
    listed = client.get(f"{API}/workers").json()
    return next(w["status"] for w in listed if w["worker_id"] == worker_id)


def test_a_long_poll_on_one_process_is_seen_by_the_other(two_processes):
    """Status and the waiting gauge read the workers' polling_until: a worker long-polling
    on a is heard now through b, past the silence that would make it lost."""
    a, b = two_processes
    register(a, "gpu-1", device="cuda")
    register(a, "cpu-1")
    results: dict = {}
    poll = threading.Thread(target=lambda: results.update(got=claim(a, "gpu-1", 60)), daemon=True)
    poll.start()
    wait_until(lambda: a.app.state.backend.dispatcher.waiting(), "gpu-1 long-polling on a", 30)
    b.app.state.backend.operations.clock.advance(25)  # lost after 20 s of silence (lease 30)
    assert _status(b, "gpu-1") == "idle"
    assert _status(b, "cpu-1") == "lost"
    assert value(scrape(b), "ktrdr_workers_waiting", kind="training") == 1
    # A training made on b ends the poll on a with a claim, which ends its waiting.
    data_sha = upload_artifact(b, b"timestamp,open,high,low,close,volume\n", "data")
    made = b.app.state.backend.operations.create(training_inputs(data_sha), references=[data_sha])
    poll.join(timeout=30)
    assert results["got"]["operation_id"] == made.operation_id
    assert value(scrape(b), "ktrdr_workers_waiting", kind="training") == 0


def test_a_gpu_worker_polling_on_one_process_gets_the_training_first_on_the_other(
    two_processes,
):
    """GPU first across processes: while gpu-1's poll is open on a (its begin, as a's claim
    route makes it; nothing wakes it here), a CPU worker claiming on b leaves a fresh training
    alone for the grace, then takes it."""
    a, b = two_processes
    register(a, "gpu-1", device="cuda")
    register(b, "cpu-1")
    a.app.state.backend.operations.begin_claim("gpu-1", 60)
    data_sha = upload_artifact(b, b"timestamp,open,high,low,close,volume\n", "data")
    ops = b.app.state.backend.operations
    op_id = ops.create(training_inputs(data_sha), references=[data_sha]).operation_id
    assert claim(b, "cpu-1", 0.5) is None, "b gave the CPU worker a training left to the GPU"
    ops.clock.advance(GPU_GRACE_S + 0.5)
    assert claim(b, "cpu-1")["operation_id"] == op_id


def test_claims_racing_on_two_processes_never_hand_one_operation_out_twice(two_processes):
    a, b = two_processes
    backends = [a.app.state.backend, b.app.state.backend]
    workers = [f"bt-{n}" for n in range(8)]
    for worker_id in workers:
        register(a, worker_id, kind="backtest")
    created = [_backtest(backends[n % 2]) for n in range(40)]
    claimed: list[tuple[str, str]] = []
    start = threading.Barrier(len(workers))

    def drain(index: int, worker_id: str) -> None:
        ops = backends[index % 2].operations
        start.wait()
        while True:
            offer = ops.try_claim(ops.begin_claim(worker_id, 0))
            if offer is None:
                return
            claimed.append((offer.operation_id, worker_id))
            # Completing is not the point: a worker asking again while holding one would
            # lose it (begin_claim); record and move the holding aside.
            with ops.sessions.begin() as session:
                session.execute(
                    text("UPDATE workers SET current_operation_id = NULL WHERE id = :id"),
                    {"id": worker_id},
                )
                session.execute(
                    text("UPDATE operations SET worker_id = 'parked' WHERE id = :id"),
                    {"id": offer.operation_id},
                )

    threads = [threading.Thread(target=drain, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    times = Counter(op for op, _ in claimed)
    assert sorted(times) == sorted(created)
    assert set(times.values()) == {1}
    # And the attempt records agree: one attempt each.
    for op_id in created:
        assert backends[0].operations.get(op_id).attempt == 1


def test_a_duty_passes_to_another_process_when_its_leader_dies(shared_url):
    engines = [make_engine(Settings(database_url=shared_url)) for _ in range(2)]
    first, second = (Duty(engine, "lease-sweep") for engine in engines)
    try:
        assert first.held() and first.held()  # taken, then kept
        assert not second.held()
        # The leader's process dies: PostgreSQL drops its connection, and the lock with it.
        with engines[1].connect() as admin:
            admin.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                     " AND objid = :key"),
                {"key": first.key},
            )  # fmt: skip
        wait_until(second.held, "the second process taking the duty over", 30)
        assert not first.held()  # the old leader notices it lost it, and stays out
    finally:
        first.release()
        second.release()
        for engine in engines:
            engine.dispose()


def test_each_duty_has_its_own_leader(shared_url):
    engine = make_engine(Settings(database_url=shared_url))
    other = make_engine(Settings(database_url=shared_url))
    duties = [Duty(engine, "lease-sweep"), Duty(other, "walkforward")]
    try:
        assert all(duty.held() for duty in duties)
    finally:
        for duty in duties:
            duty.release()
        engine.dispose()
        other.dispose()


def test_every_duty_is_the_one_process_s_on_sqlite(tmp_path):
    engine = make_engine(Settings(home=tmp_path))
    assert Duty(engine, "lease-sweep").held() and Duty(engine, "lease-sweep").held()
    engine.dispose()


def test_processes_starting_together_migrate_once(shared_url):
    engines = [make_engine(Settings(database_url=shared_url)) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(engines))

    def migrate(engine) -> None:
        start.wait()
        try:
            upgrade(engine)
        except BaseException as exc:  # reported below, with the others'
            errors.append(exc)

    # Daemons, with one deadline for all: without the lock they can deadlock in PostgreSQL.
    threads = [threading.Thread(target=migrate, args=(e,), daemon=True) for e in engines]
    for thread in threads:
        thread.start()
    wait_until(lambda: not any(t.is_alive() for t in threads), "every migration to end", 120)
    try:
        assert errors == []
        assert schema_revision(engines[0]) == SCHEMA_REVISION
    finally:
        for engine in engines:
            engine.dispose()


def test_more_than_one_process_on_sqlite_is_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("KTRDR_HOME", str(tmp_path))
    assert cli.main(["serve", "--processes", "2", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "2 API processes need PostgreSQL" in err and "SQLite serves exactly one" in err
    monkeypatch.setenv("KTRDR_API_PROCESSES", "3")
    assert cli.main(["serve", "--port", "0"]) == 2
    assert "3 API processes need PostgreSQL" in capsys.readouterr().err


def test_processes_starting_together_on_a_fresh_home_share_one_token_key(tmp_path):
    """The first start makes the key of the token hashes; N processes racing to make it must
    all end up with the same one, or tokens made on one would be refused by another."""
    from ktrdr_api.tokens import server_key

    settings = Settings(home=tmp_path / "fresh")
    keys: list[bytes] = []
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        keys.append(server_key(settings))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(keys) == 8 and len(set(keys)) == 1 and len(keys[0]) == 64
    assert sorted(p.name for p in settings.home.iterdir()) == ["token-secret"]
