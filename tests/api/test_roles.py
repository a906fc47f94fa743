"""Scoped tokens: every route declares the roles that may call it (read here from the OpenAPI
schema, as a client would see it) and refuses every other role with 403; a worker token acts
only for its own workers and the operation they hold; revoked tokens are refused at once;
destructive and refused actions land in the audit trail and auth failures in /metrics."""

from __future__ import annotations

import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from ktrdr_api.app import create_app
from ktrdr_core.access import GRANTS, Role
from tests.support.api import API, claim, training_inputs
from tests.support.bundles import bundle_bytes
from tests.support.market_data import packaged_csv

ADMIN = "bootstrap-admin-token"
OPEN = {f"{API}/health"}
# A valid-looking value for each path parameter: the role check runs before any look-up.
PATH_VALUES = {
    "worker_id": "w-probe",
    "operation_id": "op_000000000000",
    "sha256": "0" * 64,
    "symbol": "GOOG",
    "timeframe": "1d",
    "model_id": "mdl_000000000000",
    "token_id": "tok_000000000000",
    "number": "3",
}


@pytest.fixture
def app(settings, clock):
    return create_app(
        settings.model_copy(update={"api_token": ADMIN}), clock=clock, sweep_interval_s=3600
    )


@pytest.fixture
def admin(app):
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        yield client


def _token(admin, role: str, name: str) -> dict:
    response = admin.post(f"{API}/tokens", json={"name": name, "role": role})
    assert response.status_code == 201, response.text
    return response.json()


def _as(app, secret: str) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def clients(app, admin) -> dict[Role, TestClient]:
    """A client per role; admin's is the bootstrap token."""
    made = {role: _as(app, _token(admin, role.value, f"{role.value}-1")["secret"]) for role in Role}
    made[Role.ADMIN] = admin
    return made


def _operations(app) -> list[tuple[str, str, list[str] | None]]:
    """(method, path, declared roles) for every operation of the schema."""
    found = []
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            security = operation.get("security")
            roles = security[0].get("token") if security else None
            found.append((method.upper(), path, roles))
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


def test_every_route_declares_the_roles_that_may_call_it(app):
    operations = _operations(app)
    assert len(operations) >= 40
    for method, path, roles in operations:
        if path in OPEN:
            assert roles is None, f"{method} {path} is open and declares no role"
            continue
        assert roles, f"{method} {path} declares no role"
        assert {Role(r) for r in roles} <= set(Role)
    declared = {(m, p): roles for m, p, roles in _operations(app)}
    # The lines the issue draws, as a client reads them from the schema.
    assert declared[("DELETE", f"{API}/data/{{symbol}}/{{timeframe}}")] == ["researcher"]
    assert declared[("POST", f"{API}/workers/{{worker_id}}/claim")] == ["worker"]
    assert declared[("GET", f"{API}/artifacts/{{sha256}}")] == ["reader", "worker"]
    assert declared[("POST", f"{API}/tokens")] == ["admin"]
    assert declared[("GET", "/metrics")] == ["reader"]


def test_each_route_refuses_every_role_it_does_not_grant(app, clients):
    checked = 0
    for method, path, roles in _operations(app):
        if roles is None:
            continue
        allowed = {role for role in Role if any(Role(r) in GRANTS[role] for r in roles)}
        assert Role.ADMIN in allowed
        url = _concrete(path)
        body = {"timeout_s": 0} if path.endswith("/claim") else None
        for role, client in clients.items():
            response = client.request(method, url, json=body)
            if role in allowed:
                refused_for_role = response.status_code == 403 and "needs" in response.text
                assert not refused_for_role, f"{role} refused {method} {url}: {response.text}"
                assert response.status_code != 401, f"{role} {method} {url}"
            else:
                assert response.status_code == 403, f"{role} {method} {url}: {response.text}"
                assert f"has role {role.value}" in response.json()["detail"]
                checked += 1
    assert checked > 60  # reader, worker and researcher each refused somewhere


def _import_goog(admin) -> dict:
    response = admin.post(
        f"{API}/data/GOOG/1d",
        content=packaged_csv("GOOG.csv").read_bytes(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def _register(client, worker_id: str) -> None:
    response = client.post(
        f"{API}/workers",
        json={"worker_id": worker_id, "kind": "training", "capabilities": {"device": "cpu"}},
    )
    assert response.status_code == 200, response.text


def test_a_worker_token_cannot_delete_data_and_the_refusal_is_audited(app, admin):
    dataset = _import_goog(admin)
    worker = _token(admin, "worker", "gpu-box")
    with _as(app, worker["secret"]) as client:
        refused = client.delete(f"{API}/data/GOOG/1d", params={"force": True})
    assert refused.status_code == 403
    assert "needs researcher" in refused.json()["detail"]
    # Nothing changed.
    assert admin.get(f"{API}/data/GOOG/1d").json()["checksum"] == dataset["checksum"]
    [event] = admin.get(f"{API}/audit", params={"outcome": "refused"}).json()
    assert event["token_id"] == worker["token_id"]
    assert event["token_name"] == "gpu-box"
    assert event["role"] == "worker"
    assert event["target"] == "DELETE /api/v1/data/GOOG/1d"
    assert event["client"] == "testclient"
    metrics = admin.get("/metrics").text
    assert 'ktrdr_auth_failures_total{reason="role"} 1.0' in metrics


def test_a_worker_token_is_held_to_its_own_workers_and_their_operation(app, admin):
    backend = app.state.backend
    dataset = _import_goog(admin)
    other_input = hashlib.sha256(b"someone else's input").hexdigest()
    mine = _token(admin, "worker", "host-a")
    theirs = _token(admin, "worker", "host-b")
    with _as(app, mine["secret"]) as a, _as(app, theirs["secret"]) as b:
        _register(a, "wa")
        _register(b, "wb")
        held = backend.operations.create(
            training_inputs(dataset["checksum"]), references=[dataset["checksum"]]
        )
        offer = claim(a, "wa")
        assert offer["operation_id"] == held.operation_id
        attempt = offer["attempt"]

        # Its inputs: yes. Anything else: 403.
        assert a.get(f"{API}/artifacts/{dataset['checksum']}").status_code == 200
        assert b.get(f"{API}/artifacts/{dataset['checksum']}").status_code == 403
        assert a.get(f"{API}/artifacts/{other_input}").status_code == 403
        # No catalogue reads, no deletes, no imports.
        assert a.get(f"{API}/operations").status_code == 403
        assert a.get(f"{API}/data/GOOG/1d/csv").status_code == 403

        # Another token's worker: no heartbeat, no completion, no taking over its id.
        result = {"attempt": attempt, "result": {"bundle_sha256": "1" * 64}}
        path = f"{API}/workers/wa/operations/{held.operation_id}/complete"
        assert b.post(path, json=result).status_code == 403
        assert b.post(f"{API}/workers/wa/heartbeat", json={}).status_code == 403
        taken = b.post(
            f"{API}/workers",
            json={"worker_id": "wa", "kind": "training", "capabilities": {"device": "cpu"}},
        )
        assert taken.status_code == 403
        assert "holds operation" in taken.json()["detail"]

        # Uploads only for the attempt held.
        body = b"model bytes"
        sha = hashlib.sha256(body).hexdigest()
        headers = {"X-Content-SHA256": sha}
        for params in (
            {"kind": "bundle"},
            {"kind": "bundle", "operation_id": held.operation_id, "attempt": attempt + 1},
        ):
            refused = a.post(f"{API}/artifacts", params=params, content=body, headers=headers)
            assert refused.status_code == 403, params
        assert admin.get(f"{API}/artifacts/{sha}/info").status_code == 404  # nothing stored
        by_b = b.post(
            f"{API}/artifacts",
            params={"kind": "bundle", "operation_id": held.operation_id, "attempt": attempt},
            content=body,
            headers=headers,
        )
        assert by_b.status_code == 403
        ok = a.post(
            f"{API}/artifacts",
            params={"kind": "bundle", "operation_id": held.operation_id, "attempt": attempt},
            content=body,
            headers=headers,
        )
        assert ok.status_code == 201, ok.text
    view = admin.get(f"{API}/operations/{held.operation_id}").json()
    assert view["state"] == "running" and view["worker_id"] == "wa"
    refusals = admin.get(f"{API}/audit", params={"outcome": "refused", "limit": 100}).json()
    assert {e["token_name"] for e in refusals} == {"host-a", "host-b"}
    assert len(refusals) == 10


def test_a_revoked_token_is_refused_at_once_and_both_changes_are_audited(app, admin):
    made = _token(admin, "researcher", "alice")
    listed = admin.get(f"{API}/tokens").json()
    assert [(t["token_id"], t["role"]) for t in listed] == [(made["token_id"], "researcher")]
    assert all("secret" not in t for t in listed)
    with _as(app, made["secret"]) as alice:
        assert alice.get(f"{API}/operations").status_code == 200
        revoked = admin.delete(f"{API}/tokens/{made['token_id']}")
        assert revoked.status_code == 200
        after = alice.get(f"{API}/operations")
        assert after.status_code == 401
        assert "revoked" in after.json()["detail"]
    assert admin.get(f"{API}/tokens").json() == []
    events = admin.get(f"{API}/audit").json()
    assert [(e["action"], e["token_name"], e["target"]) for e in events] == [
        ("token.revoke", "KTRDR_API_TOKEN", f"{made['token_id']} alice"),
        ("token.create", "KTRDR_API_TOKEN", f"{made['token_id']} alice"),
    ]
    metrics = admin.get("/metrics").text
    assert 'ktrdr_auth_failures_total{reason="invalid"} 1.0' in metrics


def test_the_database_keeps_a_keyed_hash_of_each_token_never_the_token(app, admin, settings):
    made = _token(admin, "reader", "grafana")
    raw = (settings.home / "ktrdr.db").read_bytes()
    assert made["secret"].encode() not in raw
    assert hashlib.sha256(made["secret"].encode()).hexdigest().encode() not in raw
    assert (settings.home / "token-secret").stat().st_mode & 0o077 == 0


def test_deletes_imports_and_cancels_are_audited_with_who_and_force(app, admin):
    _import_goog(admin)
    researcher = _token(admin, "researcher", "bob")
    with _as(app, researcher["secret"]) as bob:
        pending = app.state.backend.operations.create(training_inputs(_import_goog_checksum(admin)))
        assert bob.post(f"{API}/operations/{pending.operation_id}/cancel").status_code == 200
        assert bob.delete(f"{API}/data/GOOG/1d", params={"force": True}).status_code == 200
    events = admin.get(f"{API}/audit", params={"token_id": researcher["token_id"]}).json()
    assert [(e["action"], e["target"], e["detail"]) for e in events] == [
        ("data.delete", "GOOG 1d v1", "force"),
        ("operation.cancel", f"{pending.operation_id} training", "state cancelled"),
    ]


def _import_goog_checksum(admin) -> str:
    return admin.get(f"{API}/data/GOOG/1d").json()["checksum"]


def test_a_reader_reads_but_changes_nothing(app, admin):
    _import_goog(admin)
    reader = _token(admin, "reader", "dashboard")
    with _as(app, reader["secret"]) as client:
        assert client.get(f"{API}/data").status_code == 200
        assert client.get(f"{API}/data/GOOG/1d/csv").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.delete(f"{API}/data/GOOG/1d").status_code == 403
        assert client.post(f"{API}/tokens", json={"name": "x", "role": "admin"}).status_code == 403
    assert len(admin.get(f"{API}/data").json()) == 1


def test_a_model_import_and_its_forced_delete_are_audited(app, admin):
    researcher = _token(admin, "researcher", "carol")
    with _as(app, researcher["secret"]) as carol:
        imported = carol.post(
            f"{API}/models",
            content=bundle_bytes(),
            headers={"Content-Type": "application/zip"},
        )
        assert imported.status_code == 201, imported.text
        model = imported.json()
        again = carol.post(f"{API}/models", content=bundle_bytes())
        assert again.status_code == 200  # nothing new: nothing audited
        deleted = carol.delete(f"{API}/models/{model['model_id']}", params={"force": True})
        assert deleted.status_code == 200, deleted.text
    events = admin.get(f"{API}/audit", params={"token_id": researcher["token_id"]}).json()
    target = f"{model['model_id']} {model['name']}"
    assert [(e["action"], e["target"], e["detail"]) for e in events] == [
        ("model.delete", target, "force"),
        ("model.import", target, f"bundle {model['bundle_sha256']}"),
    ]


def test_a_worker_token_downloads_the_data_of_a_gap_report_it_holds(app, admin):
    # An exact gap report's data is no recorded reference (it must not block a delete): the
    # worker token reaches it through the operation's inputs.
    imported = admin.post(
        f"{API}/data/GOOG/1d",
        params={"exchange": "XNYS"},
        content=packaged_csv("GOOG.csv").read_bytes(),
        headers={"Content-Type": "text/csv"},
    )
    assert imported.status_code == 201, imported.text
    checksum = imported.json()["checksum"]
    worker = _token(admin, "worker", "cpu-box")
    with _as(app, worker["secret"]) as client:
        response = client.post(
            f"{API}/workers",
            json={"worker_id": "wg", "kind": "backtest", "capabilities": {"device": "cpu"}},
        )
        assert response.status_code == 200, response.text
        assert client.get(f"{API}/artifacts/{checksum}").status_code == 403  # nothing held yet
        offer = claim(client, "wg")
        assert offer["kind"] == "gap_report"
        assert client.get(f"{API}/artifacts/{checksum}").status_code == 200
