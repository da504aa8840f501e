"""Issue 11.12 b, c: a wrong method on a path that exists is a 405 whose ``Allow`` lists every
method the path has (API routes and pages alike), a path that does not exist is a 404, both in
the one error shape; and every error status a route can answer is documented with that shape.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from corridor.api.app import create_app
from corridor.settings import Settings
from corridor.store import Store

with warnings.catch_warnings():  # starlette asks for httpx2, which is not a dependency yet
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    app = create_app(Settings(store_url=store.url, auth="off", text_analysis="off"), store=store)
    with TestClient(app, follow_redirects=False) as c:
        yield c


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/v1/gaps", "GET"),  # was a 404 (the ingest fallback took the path)
        ("DELETE", "/api/v1/metrics/nps", "GET"),
        ("POST", "/api/v1/churn/risk", "GET"),
        ("DELETE", "/api/v1/map", "GET, PUT"),
        ("GET", "/api/v1/interactions", "POST"),
        ("PUT", "/api/v1/people/ana", "GET"),
        ("PUT", "/api/v1/users", "GET, POST"),
        ("GET", "/api/v1/text/themes/merge", "POST, PATCH"),  # PATCH /themes/{theme_id}
        ("PUT", "/login", "GET, POST"),  # was "GET": only the first route on the path
        ("POST", "/customers", "GET"),
        ("DELETE", "/", "GET"),
        ("OPTIONS", "/api/v1/health", "GET"),
    ],
)
def test_wrong_method_is_405_with_every_method_of_the_path(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    r = client.request(method, path)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    err = r.json()["error"]
    assert err["code"] == "method_not_allowed"
    assert err["message"] == f"{method} is not allowed on {path}; allowed: {allow}"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "FOO"])
def test_unknown_path_stays_404(client: TestClient, method: str) -> None:
    for path in ("/api/v1/nothing-here", "/nowhere", "/api/v1/gaps/deeper"):
        r = client.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
        assert "allow" not in r.headers


def test_a_browser_asking_for_a_page_that_does_not_exist_gets_the_404_page(
    client: TestClient,
) -> None:
    """A mistyped page address in a browser (it asks for HTML) is answered with the HTML 404
    page and the way to the start page, not the API's JSON; the API's paths and clients that
    do not ask for HTML keep the JSON error."""
    html = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in ("/privacy", "/cases/c-1/extra", "/customer/p-1"):
        r = client.get(path, headers=html)
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"].startswith("text/html"), path
        assert "Page not found" in r.text and f"There is no page at {path}" in r.text
        assert 'href="/"' in r.text and r.headers["x-content-type-options"] == "nosniff"
        assert client.get(path).json()["error"]["code"] == "not_found"  # no HTML asked for
    for path in ("/api/v1/nothing-here", "/api/v1/gaps/deeper"):
        assert client.get(path, headers=html).json()["error"]["code"] == "not_found"
    assert client.post("/privacy", headers=html).json()["error"]["code"] == "not_found"


def test_post_to_unknown_kind_lists_the_kinds(client: TestClient) -> None:
    r = client.post("/api/v1/clicks", json={})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_kind"
    assert "interactions" in r.json()["error"]["message"]


def test_trailing_slash_still_redirects(client: TestClient) -> None:
    r = client.get("/api/v1/gaps/")
    assert r.status_code == 307 and r.headers["location"].endswith("/api/v1/gaps")


# -- c. every error status documented in the error shape -------------------------------------
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


def test_every_error_reply_is_documented_in_the_error_shape(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "ErrorBody" in spec["components"]["schemas"]
    checked = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            assert "default" in responses, (method, path)
            if "requestBody" in op:
                assert "400" in responses, (method, path)  # an unreadable body
            if path.startswith("/api/v1/") and path != "/api/v1/health":
                assert "401" in responses, (method, path)
            for status, reply in responses.items():
                if status.startswith(("2", "3")):
                    continue
                schema = reply["content"]["application/json"]["schema"]
                if status == "422" and path.startswith("/api/v1/") and "IngestReply" in str(schema):
                    continue  # the ingest report, documented as such
                assert schema == ERROR_BODY, (method, path, status)
                checked += 1
    assert checked > 100


def test_a_documented_400_is_what_the_route_answers(client: TestClient) -> None:
    """The reported case: a body FastAPI cannot parse is a 400 bad_request, undocumented."""
    r = client.patch(
        "/api/v1/text/themes/th_1", content=b"\xff", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"code", "message", "details"}
    op = client.get("/openapi.json").json()["paths"]["/api/v1/text/themes/{theme_id}"]["patch"]
    assert op["responses"]["400"]["content"]["application/json"]["schema"] == ERROR_BODY
