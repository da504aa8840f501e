"""A NUL character in a request body (issue 11, the fuzz's PostgreSQL 500s): PostgreSQL text
cannot hold one, so it is refused where the value is checked — per record at ingest (the good
records around it still land), and by the account rules — on both engines alike."""

from __future__ import annotations

from fastapi.testclient import TestClient

from corridor.api.app import create_app
from corridor.settings import Settings


def test_nul_in_body_values_is_refused_not_a_500(ingestor, store):
    with TestClient(create_app(Settings(auth="off"), store=store)) as c:
        r = c.post(
            "/api/v1/people",
            json=[
                {"person_id": "ok-1", "kind": "customer"},
                {"person_id": "bad\x00id", "kind": "customer"},
                {"person_id": "ok-2", "kind": "customer", "segment": "con\x00sumer"},
                {"person_id": "ok-3", "kind": "customer", "loyalty_tier": "gold\x00"},
            ],
        )
        assert r.status_code < 500, r.text
        body = r.json()
        assert body["accepted"] == 1 and body["rejected"] == 3
        assert all("NUL" in e["reason"] for e in body["errors"])
        assert store.query("SELECT person_id FROM people") == [("ok-1",)]
        for path, payload in (
            ("/api/v1/users", {"username": "h1", "password": "a long password",
                               "role": "department_head", "department": "logi\x00stics"}),
            ("/api/v1/users", {"username": "p1", "password": "a long password",
                               "role": "partner_manager", "partner": "\x00"}),
            ("/api/v1/keys", {"username": "no\x00body"}),
        ):  # fmt: skip
            r = c.post(path, json=payload)
            assert 400 <= r.status_code < 500, (path, r.text)
            assert r.json()["error"]["message"]
        c.post(
            "/api/v1/users",
            json={"username": "etl", "password": "a long password", "role": "analyst"},
        )
        r = c.post("/api/v1/keys", json={"username": "etl", "name": "nightly\x00"})
        assert r.status_code == 422 and "control character" in r.json()["error"]["message"]
