import socket

from fastapi.testclient import TestClient

from ktrdr_api.app import create_app
from ktrdr_core.settings import Settings


def test_fresh_home_gets_a_database_and_reports_healthy(tmp_path):
    with TestClient(create_app(Settings(home=tmp_path / "home"))) as client:
        response = client.get("/api/v1/health")
        again = client.get("/api/v1/health").json()
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    # Which backend answers: random per start unless KTRDR_INSTANCE_ID names it.
    assert len(body["instance"]) == 16 and again["instance"] == body["instance"]
    assert (tmp_path / "home" / "ktrdr.db").exists()
    named = Settings(home=tmp_path / "home", instance_id="local-0-abc")
    with TestClient(create_app(named)) as client:
        assert client.get("/api/v1/health").json()["instance"] == "local-0-abc"


def test_version_names_protocol_and_distributions(tmp_path):
    with TestClient(create_app(Settings(home=tmp_path))) as client:
        body = client.get("/api/v1/version").json()
    assert body["protocol"] == 2
    assert body["distributions"]["ktrdr-api"] == body["version"]


def test_unreachable_database_gives_503_with_reason(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(
        home=tmp_path, database_url=f"postgresql+psycopg://ktrdr@127.0.0.1:{port}/ktrdr"
    )
    app = create_app(settings)
    client = TestClient(app)  # no lifespan: migrations would fail first, as they should
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert str(port) in response.json()["database"]


def test_openapi_docs_are_served(tmp_path):
    with TestClient(create_app(Settings(home=tmp_path))) as client:
        assert client.get("/api/v1/docs").status_code == 200
        assert "/api/v1/health" in client.get("/api/v1/openapi.json").json()["paths"]
