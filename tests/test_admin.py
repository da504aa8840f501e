"""Users and API keys through the running server (issue 11.11): the admin API, the admin page
and the server's local admin credential, on both engines.

While ``corridor serve`` holds a DuckDB file nothing else can open it, so these are how a leaked
key is revoked without downtime: the revoked key must be refused by the running app at once.
"""

from __future__ import annotations

import html
import json
import os
import re
import stat

import pytest
from fastapi.testclient import TestClient

from corridor.api.app import create_app
from corridor.auth import accounts, local_server
from corridor.settings import Settings

PASSWORD = "correct horse battery"
OWN = {"origin": "http://testserver"}
USERS = {
    "root": ("admin", {}),
    "ana": ("analyst", {}),
    "lena": ("department_head", {"department": "logistics"}),
    "paul": ("partner_manager", {"partner": "dhl"}),
    "aggie": ("agent", {}),
}


@pytest.fixture
def seeded(ingestor, store):
    for name, (role, extra) in USERS.items():
        accounts.add_user(store, name, PASSWORD, role, **extra)
    return store


@pytest.fixture
def app(seeded):
    return create_app(Settings(), store=seeded)


def bearer(store, user: str) -> dict[str, str]:
    _, secret = accounts.create_key(store, user, "test")
    return {"Authorization": f"Bearer {secret}"}


ROUTES = [
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/users", {"username": "x1", "password": PASSWORD, "role": "analyst"}),
    ("DELETE", "/api/v1/users/ana", None),
    ("GET", "/api/v1/keys", None),
    ("POST", "/api/v1/keys", {"username": "ana"}),
    ("DELETE", "/api/v1/keys/abc", None),
]


def test_only_admins_may_manage_users_and_keys(app, seeded):
    with TestClient(app) as c:
        for method, path, body in ROUTES:
            r = c.request(method, path, json=body)
            assert r.status_code == 401, (method, path)
            assert r.json()["error"]["code"] == "unauthenticated"
            for user in ("ana", "lena", "paul", "aggie"):
                r = c.request(method, path, json=body, headers=bearer(seeded, user))
                assert r.status_code == 403, (method, path, user)
                assert r.json()["error"] == {
                    "code": "forbidden",
                    "message": "only an admin may manage users and API keys",
                    "details": [],
                }
    assert accounts.get_user(seeded, "ana") is not None  # nothing was changed on the way


def test_an_admin_manages_users_and_a_revoked_key_is_refused_at_once(app, seeded):
    with TestClient(app) as c:
        h = bearer(seeded, "root")
        listed = c.get("/api/v1/users", headers=h).json()
        assert [u["username"] for u in listed] == sorted(USERS)
        assert {
            "username": "lena",
            "role": "department_head",
            "department": "logistics",
        }.items() <= listed[2].items()

        made = c.post(
            "/api/v1/users",
            json={"username": "etl", "password": PASSWORD, "role": "analyst"},
            headers=h,
        )
        assert made.status_code == 201 and made.json()["role"] == "analyst"
        assert "password" not in made.text and PASSWORD not in made.text

        key = c.post("/api/v1/keys", json={"username": "etl", "name": "nightly"}, headers=h)
        assert key.status_code == 201
        secret, key_id = key.json()["key"], key.json()["key_id"]
        assert secret.startswith(f"cor_{key_id}_") and key.json()["revoked_at"] is None
        etl = {"Authorization": f"Bearer {secret}"}
        assert c.get("/api/v1/map", headers=etl).status_code == 200
        keys = c.get("/api/v1/keys", params={"user": "etl"}, headers=h).json()
        assert [k["key_id"] for k in keys] == [key_id] and "key" not in keys[0]

        revoked = c.delete(f"/api/v1/keys/{key_id}", headers=h)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        refused = c.get("/api/v1/map", headers=etl)
        assert refused.status_code == 401 and "was revoked" in refused.json()["error"]["message"]

        _, other = accounts.create_key(seeded, "etl")
        gone = c.delete("/api/v1/users/etl", headers=h)
        assert gone.status_code == 200 and gone.json()["username"] == "etl"
        assert c.get("/api/v1/map", headers={"X-API-Key": other}).status_code == 401
        assert "etl" not in {u["username"] for u in c.get("/api/v1/users", headers=h).json()}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "message"),
    [
        ("POST", "/api/v1/users", {"username": "ana", "password": PASSWORD, "role": "analyst"},
         422, "invalid_account", "user 'ana' already exists"),
        ("POST", "/api/v1/users", {"username": "bob", "password": PASSWORD, "role": "boss"},
         422, "invalid_account", "unknown role 'boss'; use one of: admin, analyst"),
        ("POST", "/api/v1/users", {"username": "bob", "password": "short", "role": "agent"},
         422, "invalid_account", "at least 8 characters"),
        ("POST", "/api/v1/users", {"username": "bob", "role": "agent"},
         422, "invalid_request", "body.password: Field required"),
        ("DELETE", "/api/v1/users/nobody", None, 404, "not_found", "no user 'nobody'"),
        ("DELETE", "/api/v1/users/root", None, 422, "invalid_account", "cannot remove yourself"),
        ("POST", "/api/v1/keys", {"username": "nobody"}, 404, "not_found", "no user 'nobody'"),
        ("DELETE", "/api/v1/keys/0123abcd", None, 404, "not_found", "no API key '0123abcd'"),
        ("PUT", "/api/v1/users", None, 405, "method_not_allowed", "allowed: GET, POST"),
        ("PATCH", "/api/v1/keys", None, 405, "method_not_allowed", "allowed: GET, POST"),
    ],
)  # fmt: skip
def test_mistakes_get_the_one_error_shape(app, seeded, method, path, body, status, code, message):
    with TestClient(app) as c:
        r = c.request(method, path, json=body, headers=bearer(seeded, "root"))
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert message in r.json()["error"]["message"]


def test_the_routes_are_documented_with_models(app):
    spec = app.openapi()
    ops = {
        op["operationId"]: (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }
    for name, path, method in [
        ("list_users", "/api/v1/users", "get"),
        ("add_user", "/api/v1/users", "post"),
        ("remove_user", "/api/v1/users/{username}", "delete"),
        ("list_keys", "/api/v1/keys", "get"),
        ("create_key", "/api/v1/keys", "post"),
        ("revoke_key", "/api/v1/keys/{key_id}", "delete"),
    ]:
        assert ops[name][:2] == (path, method)
        op = ops[name][2]
        assert op["description"] and {"401", "403"} <= set(op["responses"])
        for status, reply in op["responses"].items():
            schema = reply["content"]["application/json"]["schema"]
            assert "$ref" in schema or "$ref" in schema.get("items", {}), (name, status)
        for param in op.get("parameters", []):
            assert param.get("description"), (name, param["name"])
    schemas = spec["components"]["schemas"]
    assert schemas["UserIn"]["properties"]["role"]["enum"][0] == "admin"
    assert schemas["UserIn"]["properties"]["password"]["writeOnly"] is True
    assert (
        "key" in schemas["KeyCreated"]["required"] and "key" not in schemas["KeyOut"]["properties"]
    )


# -- the admin page -----------------------------------------------------------------------------


def signed_in(app, user: str) -> TestClient:
    c = TestClient(app, headers=OWN)
    r = c.post("/login", data={"username": user, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c


def test_the_admin_page_adds_removes_creates_and_revokes(app, seeded):
    with signed_in(app, "root") as c:
        page = c.get("/admin")
        assert page.status_code == 200 and 'href="/admin" aria-current="page"' in page.text
        assert "<script>" not in page.text  # CSP script-src 'self': no inline script
        for name in USERS:
            assert f"<td>{name}</td>" in page.text

        r = c.post(
            "/admin/users",
            data={"username": "etl", "role": "analyst", "password": PASSWORD},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/admin?added=etl"
        assert "Added user etl." in c.get(r.headers["location"]).text

        bad = c.post("/admin/users", data={"username": "x", "role": "boss", "password": PASSWORD})
        assert bad.status_code == 422
        assert "User not added: unknown role &#39;boss&#39;" in bad.text
        assert 'value="x"' in bad.text and PASSWORD not in bad.text  # kept, but no password

        made = c.post("/admin/keys", data={"username": "etl", "name": "nightly"})
        assert made.status_code == 200
        secret = re.search(r"<code id=\"secret\" data-secret>(cor_[^<]+)</code>", made.text)
        assert secret is not None
        key = {"Authorization": f"Bearer {html.unescape(secret.group(1))}"}
        assert c.get("/api/v1/map", headers=key).status_code == 200
        key_id = accounts.list_keys(seeded, "etl")[0].key_id
        assert html.unescape(secret.group(1)) not in c.get("/admin").text  # shown once

        ask = c.post("/admin/keys/revoke", data={"key_id": key_id})
        assert ask.status_code == 200 and f"Revoke API key {key_id}?" in ask.text
        assert c.get("/api/v1/map", headers=key).status_code == 200  # not yet
        done = c.post(
            "/admin/keys/revoke", data={"key_id": key_id, "confirm": "yes"}, follow_redirects=False
        )
        assert done.headers["location"] == f"/admin?revoked={key_id}"
        assert c.get("/api/v1/map", headers=key).status_code == 401  # refused at once

        ask = c.post("/admin/users/remove", data={"username": "etl"})
        assert "Remove user etl?" in ask.text and accounts.get_user(seeded, "etl") is not None
        c.post("/admin/users/remove", data={"username": "etl", "confirm": "yes"})
        assert accounts.get_user(seeded, "etl") is None

        me = c.post("/admin/users/remove", data={"username": "root", "confirm": "yes"})
        assert me.status_code == 422 and "cannot remove yourself" in me.text
        missing = c.post("/admin/keys/revoke", data={"key_id": "nope"})
        assert missing.status_code == 404 and "No API key" in html.unescape(missing.text)


def test_the_admin_page_is_for_admins_and_its_forms_for_its_own_pages(app, seeded):
    with TestClient(app) as c:
        r = c.get("/admin", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/admin"
    for user in ("ana", "lena", "aggie"):
        with signed_in(app, user) as c:
            assert 'href="/admin"' not in c.get("/customers").text  # no nav link
            page = c.get("/admin")
            assert page.status_code == 403 and "only an admin may" in page.text
            r = c.post("/admin/keys", data={"username": user})
            assert r.status_code == 403 and accounts.list_keys(seeded, user) == []
    with signed_in(app, "root") as c:
        assert 'href="/admin"' in c.get("/customers").text
        forged = c.post(
            "/admin/users/remove",
            data={"username": "ana", "confirm": "yes"},
            headers={"origin": "http://evil.example"},
        )
        assert forged.status_code == 403 and accounts.get_user(seeded, "ana") is not None


# -- the server's local admin credential --------------------------------------------------------


def test_the_local_credential_is_private_and_lives_with_the_server(app, seeded, engine):
    with local_server.published(app, "0.0.0.0", 8765) as path:
        if engine == "postgres":
            assert path is None  # no file to be locked: commands open the store themselves
            return
        assert path is not None and path.name == ".corridor.duckdb.server.json"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        doc = json.loads(path.read_text())
        assert doc["url"] == "http://127.0.0.1:8765" and doc["pid"] == os.getpid()
        h = {"Authorization": f"Bearer {doc['key']}"}
        with TestClient(app) as c:
            made = c.post("/api/v1/keys", json={"username": "ana"}, headers=h)
            assert made.status_code == 201
            assert accounts.list_users(seeded)  # the server admin is no user in the store
            assert "(server admin)" not in {u.username for u in accounts.list_users(seeded)}
    assert not path.exists()
    with TestClient(app) as c:
        assert c.get("/api/v1/users", headers=h).status_code == 401  # gone with the server
