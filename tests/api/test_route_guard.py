"""Every route found in the app (so a new one is covered without editing this file): all but
health refuse a missing or wrong token, and hostile names in any path segment (`..`,
slashes, NUL bytes) are refused with a 4xx on SQLite and on PostgreSQL, never a 5xx."""

from __future__ import annotations

import re
import tempfile

import pytest
from fastapi.testclient import TestClient

from ktrdr_api.app import create_app
from ktrdr_api.auth import OPEN_PATHS
from ktrdr_core.settings import Settings
from tests.support.api import API
from tests.support.market_data import packaged_csv

TOKEN = "guard-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# A plausible value per path parameter: the request must reach the route's own checks.
PLAUSIBLE = {
    "symbol": "AAPL",
    "timeframe": "1h",
    "operation_id": "op_0123456789ab",
    "worker_id": "w1",
    "model_id": "mdl_0123456789ab",
    "sha256": "0" * 64,
    "token_id": "tok_0123456789ab",
    "number": "3",
}
HOSTILE = ["a..b", "..%2F..%2Fetc%2Fpasswd", "a%2Fb", "a%00b", "%00", "AAPL%00", "%2E%2E"]
_PARAM = re.compile(r"{(\w+)}")


def _routes() -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves: each operation of its OpenAPI
    schema, plus the schema and the docs page themselves."""
    app = create_app(Settings(home=tempfile.mkdtemp(prefix="ktrdr-routes-")))
    found = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    ]
    return [*found, ("GET", app.openapi_url), ("GET", app.docs_url)]


ROUTES = _routes()


def _fill(template: str, **values: str) -> str:
    return _PARAM.sub(lambda m: values.get(m.group(1), PLAUSIBLE.get(m.group(1), "x")), template)


def test_routes_were_found_and_each_parameter_has_a_plausible_value():
    assert len(ROUTES) >= 30
    names = {name for _, path in ROUTES for name in _PARAM.findall(path)}
    assert names <= set(PLAUSIBLE), names - set(PLAUSIBLE)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("home"), api_token=TOKEN)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_but_health_refuses_a_missing_or_wrong_token(secured, method, path):
    url = _fill(path)
    if path in OPEN_PATHS:
        assert secured.request(method, url).status_code == 200
        return
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = secured.request(method, url, headers=headers, content=b"{}")
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


def test_health_is_the_only_open_route():
    assert {f"{API}/health"} == OPEN_PATHS


@pytest.fixture
def guarded(database_url, tmp_path):
    """An app on each database, token on, with one good dataset stored."""
    settings = Settings(home=tmp_path / "home", database_url=database_url, api_token=TOKEN)
    with TestClient(create_app(settings), headers=AUTH) as client:
        good = client.post(f"{API}/data/GOOG/1d", content=packaged_csv("GOOG.csv").read_bytes())
        assert good.status_code == 201, good.text
        yield client


HOSTILE_CASES = [
    (method, path, name)
    for method, path in ROUTES
    if path.startswith(API)
    for name in _PARAM.findall(path)
]


def test_hostile_names_in_every_path_parameter_are_4xx(guarded):
    failures = []
    for method, path, name in HOSTILE_CASES:
        for value in HOSTILE:
            url = _fill(path, **{name: value})
            response = guarded.request(method, url, content=b"{}")
            if not 400 <= response.status_code < 500:
                failures.append(f"{method} {url}: {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)
    listing = guarded.get(f"{API}/data").json()
    assert [(d["symbol"], d["version"]) for d in listing] == [("GOOG", 1)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"symbol": "GOOG\x00"}, "symbol"),
        ({"symbol": "../GOOG"}, "symbol"),
        ({"kind": "training\x00"}, "kind"),
        ({"state": "../pending"}, "state"),
        ({"strategy": "rsi\x00zones"}, "strategy"),
        ({"strategy": "../rsi"}, "strategy"),
    ],
)
def test_hostile_names_in_queries_are_4xx(guarded, params, field):
    route = "/data" if "symbol" in params else "/operations"
    response = guarded.get(API + route, params=params)
    assert response.status_code == 422, response.text
    assert field in str(response.json()["detail"])


@pytest.mark.parametrize("source_name", ["a\x00b.csv", "../../etc/passwd", "dir/file.csv"])
def test_a_hostile_source_name_is_refused_and_stores_nothing(guarded, source_name):
    body = packaged_csv("GOOG.csv").read_bytes()
    response = guarded.post(
        f"{API}/data/GOOG/1d", content=body[: len(body) // 2].rsplit(b"\n", 1)[0] + b"\n",
        params={"source_name": source_name},
    )  # fmt: skip
    assert response.status_code == 422, response.text
    assert "source_name" in str(response.json()["detail"])
    assert [d["version"] for d in guarded.get(f"{API}/data").json()] == [1]
