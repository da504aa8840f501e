"""The HTTP API on both engines: ingestion in every body shape, every bad input answered with a
clear 4xx in one JSON shape (never a 500 or a traceback), idempotency, visible merges."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from corridor.api.app import create_app
from corridor.domain.corridor_map import CorridorMap
from corridor.settings import Settings
from corridor.store import Store

with warnings.catch_warnings():  # starlette asks for httpx2, which is not a dependency yet
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ERROR_KEYS = {"code", "message", "details"}
REPORT_KEYS = {
    "kind",
    "received",
    "accepted",
    "inserted",
    "duplicates",
    "rejected",
    "errors",
    "errors_truncated",
    "merges",
}


def interaction(i: int | str, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "interaction_id": f"i{i}",
        "person_id": "p1",
        "occurred_at": "2025-03-01T10:00:00Z",
        "touchpoint": "checkout",
        "channel": "web",
        "value": 12.5,
    }
    rec.update(extra)
    return rec


def feedback(i: int | str, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "feedback_id": f"f{i}",
        "person_id": "p1",
        "occurred_at": "2025-03-02T09:00:00Z",
        "touchpoint": "checkout",
        "source": "survey",
        "expectation": 8,
        "experience": 6,
        "nps": 7,
    }
    rec.update(extra)
    return rec


def make_client(store: Store, **settings: Any) -> TestClient:
    app = create_app(Settings(store_url=store.url, **{"auth": "off", **settings}), store=store)
    return TestClient(app)


@pytest.fixture
def map_doc(small_map: CorridorMap) -> dict[str, Any]:
    return small_map.model_dump(exclude_none=True)


@pytest.fixture
def client(store: Store, map_doc: dict[str, Any]) -> Iterator[TestClient]:
    with make_client(store, max_errors_reported=50) as c:
        r = c.put("/api/v1/map", json=map_doc)
        assert r.status_code == 200, r.text
        yield c


def assert_error(r: Any, status: int, code: str, *fragments: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code, body
    assert "Traceback" not in r.text
    for f in fragments:
        assert f in body["error"]["message"], body["error"]["message"]
    return dict(body["error"])


def assert_report(r: Any, status: int, **counts: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == REPORT_KEYS
    for k, v in counts.items():
        assert body[k] == v, (k, body)
    assert body["received"] == body["accepted"] + body["rejected"]
    assert body["accepted"] == body["inserted"] + body["duplicates"]
    return dict(body)


def stored(store: Store, table: str, id_field: str) -> list[str]:
    return sorted(r[0] for r in store.query(f"SELECT {id_field} FROM {table}"))


# -- body shapes ----------------------------------------------------------------------------
def test_one_record_array_and_ndjson(client: TestClient, store: Store) -> None:
    r = client.post("/api/v1/interactions", json=interaction(1))
    assert_report(r, 200, received=1, accepted=1, inserted=1, rejected=0)
    r = client.post("/api/v1/interactions", json=[interaction(2), interaction(3)])
    assert_report(r, 200, received=2, accepted=2, inserted=2)
    ndjson = b"\n".join(orjson.dumps(interaction(i)) for i in (4, 5, 6))
    r = client.post(
        "/api/v1/interactions", content=ndjson, headers={"content-type": "application/x-ndjson"}
    )
    assert_report(r, 200, received=3, accepted=3)
    r = client.post("/api/v1/interactions", content=orjson.dumps(interaction(7)) + b"\n" + ndjson)
    assert_report(r, 200, received=4, accepted=4, inserted=1, duplicates=3)  # NDJSON detected
    assert stored(store, "interactions", "interaction_id") == [f"i{i}" for i in range(1, 8)]


def test_empty_array_is_a_no_op(client: TestClient) -> None:
    assert_report(client.post("/api/v1/interactions", json=[]), 200, received=0, accepted=0)


def test_mixed_good_and_bad_items(client: TestClient, store: Store) -> None:
    items: list[Any] = [
        interaction(1),
        interaction(2, touchpoint="teleport"),
        interaction(3, occurred_at="last tuesday"),
        interaction(4, channel=None),
        5,
        interaction(6, value="lots"),
        interaction(7, duration_minutes=-1),
        interaction(8, person_id=None),
        interaction(9, basket_size=3, coupon={"code": "X"}),
        interaction(10, value=True),
        interaction(11, touchpoint=["checkout"]),
    ]
    r = client.post("/api/v1/interactions", json=items)
    body = assert_report(r, 200, received=11, accepted=2, inserted=2, rejected=9)
    got = {(e["item"], e["field"]): e for e in body["errors"]}
    assert set(got) == {
        (2, "touchpoint"),
        (3, "occurred_at"),
        (4, "channel"),
        (5, "(record)"),
        (6, "value"),
        (7, "duration_minutes"),
        (8, "person_id"),
        (10, "value"),
        (11, "touchpoint"),
    }
    assert [e["item"] for e in body["errors"]] == sorted(e["item"] for e in body["errors"])
    assert got[(2, "touchpoint")]["id"] == "i2"
    assert "unknown touch point 'teleport'" in got[(2, "touchpoint")]["reason"]
    assert "ISO-8601" in got[(3, "occurred_at")]["reason"]
    assert "required field 'channel'" in got[(4, "channel")]["reason"]
    assert "expected a JSON object" in got[(5, "(record)")]["reason"]
    assert got[(6, "value")]["reason"] == "'lots' is not a number"
    assert "at least 0" in got[(7, "duration_minutes")]["reason"]
    assert "name the person" in got[(8, "person_id")]["reason"]
    assert got[(10, "value")]["reason"] == "'true' is not a number"
    assert "single value" in got[(11, "touchpoint")]["reason"]
    assert stored(store, "interactions", "interaction_id") == ["i1", "i9"]


def test_nothing_accepted_is_422_with_the_report_shape(client: TestClient, store: Store) -> None:
    r = client.post("/api/v1/feedback", json=[feedback(1, nps=11), feedback(2, csat=0)])
    body = assert_report(r, 422, received=2, accepted=0, rejected=2)
    reasons = {e["field"]: e["reason"] for e in body["errors"]}
    assert "between 0 and 10" in reasons["nps"]
    assert "between 1 and 5" in reasons["csat"]
    assert store.count("feedback") == 0


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        (feedback(1, nps=True), "nps", "'true' is not a number"),
        (feedback(1, experience=False), "experience", "'false' is not a number"),
        (feedback(1, nps="seven"), "nps", "'seven' is not a number"),
        (feedback(1, nps=7.5), "nps", "whole number"),
        (feedback(1, expectation=10.5), "expectation", "between 0 and 10"),
        (feedback(1, emotion=-4), "emotion", "between -3 and 3"),
        (feedback(1, occurred_at="2025-13-45"), "occurred_at", "cannot read"),
        (feedback(1, occurred_at=1700000000), "occurred_at", "cannot read"),
        (feedback(1, source="carrier pigeon"), "source", "is not allowed"),
        (feedback(1, touchpoint="nowhere"), "touchpoint", "unknown touch point"),
        ({"person_id": "p1", "source": "survey"}, "feedback_id", "required field"),
        (feedback(1, occurred_at=None), "occurred_at", "required field"),
    ],
)
def test_each_bad_record_names_field_and_reason(
    client: TestClient, record: dict[str, Any], field: str, reason: str
) -> None:
    body = assert_report(client.post("/api/v1/feedback", json=record), 422, rejected=1)
    assert any(e["field"] == field and reason in e["reason"] for e in body["errors"]), body
    assert all(e["item"] == 1 for e in body["errors"])


def test_extra_fields_are_kept_as_attributes(client: TestClient, store: Store) -> None:
    rec = interaction(1, basket_size=3, attributes={"campaign": "spring", "tags": ["a", "b"]})
    assert_report(client.post("/api/v1/interactions", json=rec), 200, accepted=1)
    raw = store.query("SELECT attributes FROM interactions WHERE interaction_id = 'i1'")[0][0]
    attrs = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    assert attrs == {"basket_size": 3, "campaign": "spring", "tags": ["a", "b"]}


def test_errors_are_capped_and_say_so(store: Store, map_doc: dict[str, Any]) -> None:
    with make_client(store, max_errors_reported=3) as c:
        c.put("/api/v1/map", json=map_doc)
        r = c.post("/api/v1/interactions", json=[interaction(i, channel="fax") for i in range(10)])
    body = assert_report(r, 422, received=10, rejected=10)
    assert len(body["errors"]) == 3 and body["errors_truncated"] is True


# -- bodies that cannot be read -------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"", "application/json", "empty"),
        (b"   \n ", "application/json", "empty"),
        (b'{"interaction_id": "i1",}', "application/json", "malformed JSON at line 1"),
        (b"[1, 2", "application/json", "malformed JSON"),
        (b'"hello"', "application/json", "single JSON string"),
        (b'{"text": "caf\xe9"}', "application/json", "not valid UTF-8"),
        (b'{"a": 1}\n{"b": "\xff"}', "application/x-ndjson", "byte offset 16"),
    ],
)
def test_unreadable_body_is_400(
    client: TestClient, body: bytes, content_type: str, fragment: str
) -> None:
    r = client.post("/api/v1/interactions", content=body, headers={"content-type": content_type})
    assert_error(r, 400, "invalid_payload", fragment)


def test_unknown_kind_is_404_listing_kinds(client: TestClient) -> None:
    r = client.post("/api/v1/complaints", json={"x": 1})
    assert_error(r, 404, "unknown_kind", "'complaints'", "interactions", "feedback", "people")


def test_wrong_content_type_is_415(client: TestClient) -> None:
    r = client.post(
        "/api/v1/interactions", content=b"a,b\n1,2", headers={"content-type": "text/csv"}
    )
    assert_error(r, 415, "unsupported_media_type", "corridor import")


def test_oversized_bodies_are_413(store: Store, map_doc: dict[str, Any]) -> None:
    with make_client(store, max_body_bytes=2000, max_batch_records=5) as c:
        c.put("/api/v1/map", json=map_doc)
        big = orjson.dumps([interaction(i, note="x" * 100) for i in range(20)])
        assert_error(c.post("/api/v1/interactions", content=big), 413, "payload_too_large", "2,000")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            for i in range(0, len(big), 500):
                yield big[i : i + 500]

        r = c.post("/api/v1/interactions", content=chunks())
        assert_error(r, 413, "payload_too_large", "limit")
        r = c.post("/api/v1/interactions", json=[interaction(i) for i in range(6)])
        assert_error(r, 413, "payload_too_large", "6 records", "limit of 5")
        r = c.post("/api/v1/interactions", json=[interaction(i) for i in range(5)])
        assert_report(r, 200, accepted=5)


# -- idempotency and identities -------------------------------------------------------------
def test_same_batch_twice_is_stored_once(client: TestClient, store: Store) -> None:
    batch = [interaction(i) for i in range(20)]
    assert_report(client.post("/api/v1/interactions", json=batch), 200, inserted=20)
    r = client.post("/api/v1/interactions", json=batch)
    assert_report(r, 200, accepted=20, inserted=0, duplicates=20)
    r = client.post("/api/v1/interactions", json=[interaction(99), interaction(99)])
    assert_report(r, 200, received=2, accepted=2, inserted=1, duplicates=1)
    assert store.count("interactions") == 21


def test_identity_merge_is_visible(client: TestClient) -> None:
    people = [
        {"person_id": "ana", "kind": "customer", "email": "ana@example.com", "segment": "gold"},
        {"person_id": "web-77", "kind": "prospect", "device_id": "dev-1"},
    ]
    assert_report(client.post("/api/v1/people", json=people), 200, accepted=2)
    # A chat transcript names the web visitor and carries Ana's e-mail: one person now.
    link = interaction("x", person_id="web-77", email="ANA@example.com", channel="app")
    r = client.post("/api/v1/interactions", json=[interaction(1, person_id="ana"), link])
    body = assert_report(r, 200, accepted=2)
    assert body["merges"] == [
        {"from_person": "web-77", "into_person": "ana", "id_type": "email", "record_id": "ix"}
    ]
    client.post("/api/v1/feedback", json=feedback(1, person_id="web-77"))

    view = client.get("/api/v1/people/web-77").json()
    assert view["person"]["person_id"] == "web-77"
    assert view["person"]["kind"] == "prospect"
    assert view["canonical_id"] == "ana" and view["merged"] is True
    assert view["members"] == ["ana", "web-77"]
    assert {(i["id_type"], i["id_value"]) for i in view["identities"]} == {
        ("email", "ana@example.com"),
        ("device_id", "dev-1"),
    }
    [merge] = view["merges"]
    assert (merge["from_person"], merge["into_person"], merge["record_id"]) == (
        "web-77",
        "ana",
        "ix",
    )
    assert merge["id_value"] == "ana@example.com"
    assert (view["interactions"], view["feedback"]) == (2, 1)

    ana = client.get("/api/v1/people/ana").json()
    assert ana["merged"] is False and ana["members"] == ["ana", "web-77"]
    assert ana["person"]["segment"] == "gold"
    assert (ana["interactions"], ana["feedback"]) == (2, 1)


def test_unknown_person_is_404(client: TestClient) -> None:
    assert_error(client.get("/api/v1/people/nobody"), 404, "not_found", "'nobody'")


# -- corridor map ---------------------------------------------------------------------------
def test_map_round_trip(client: TestClient, small_map: CorridorMap) -> None:
    got = client.get("/api/v1/map")
    assert got.status_code == 200
    assert got.json()["touchpoints"][1]["key"] == "checkout"
    r = client.put(
        "/api/v1/map", content=small_map.to_yaml(), headers={"content-type": "application/yaml"}
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    assert r.json()["touchpoints"] == 4


def test_map_errors(client: TestClient, map_doc: dict[str, Any]) -> None:
    r = client.put("/api/v1/map", content=b"stages: [a\n")
    assert_error(r, 422, "invalid_corridor_map", "not valid YAML")
    r = client.put("/api/v1/map", json={"stages": ["a"], "touchpoints": []})
    assert_error(r, 422, "invalid_corridor_map", "touchpoints")
    assert_error(client.put("/api/v1/map", content=b""), 422, "invalid_corridor_map", "empty")
    client.post(
        "/api/v1/interactions", json=interaction(1, touchpoint="support_call", channel="voice")
    )
    smaller = {**map_doc, "touchpoints": map_doc["touchpoints"][:2]}
    r = client.put("/api/v1/map", json=smaller)
    assert_error(r, 422, "invalid_corridor_map", "support_call")
    r = client.put("/api/v1/map?force=maybe", json=smaller)
    err = assert_error(r, 422, "invalid_request", "force")
    assert err["details"][0]["loc"] == ["query", "force"]
    assert client.put("/api/v1/map?force=true", json=smaller).status_code == 200


def test_no_map_yet(store: Store) -> None:
    with make_client(store) as c:
        assert_error(c.get("/api/v1/map"), 404, "not_found", "PUT /api/v1/map")
        r = c.post("/api/v1/interactions", json=interaction(1))
        body = assert_report(r, 422, rejected=1)
        assert "no corridor map is loaded" in body["errors"][0]["reason"]


# -- health, landing page, routing errors, OpenAPI ------------------------------------------
def test_health_and_home(client: TestClient, store: Store) -> None:
    client.post("/api/v1/interactions", json=[interaction(1), interaction(2)])
    h = client.get("/api/v1/health").json()
    assert h["status"] == "ok"
    assert h["store"]["engine"] == store.dialect
    assert h["store"]["schema_version"] >= 2
    assert h["corridor_map"] == {"loaded": True, "stages": 7, "touchpoints": 4, "promises": 1}
    assert h["counts"]["interactions"] == 2 and h["counts"]["people"] == 1
    # every answer says the server's own time (W3C Server-Timing), pages and errors alike
    for r in (client.get("/api/v1/health"), client.get("/api/v1/nothing-here")):
        assert re.fullmatch(r"app;dur=\d+\.\d", r.headers["server-timing"]), r.headers
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Corridor" in page.text and 'href="/docs"' in page.text
    # the dashboard loads nothing from elsewhere: every script and style is served by Corridor
    assert "http://" not in page.text and "https://" not in page.text


def test_health_redacts_passwords() -> None:
    from corridor.api.routes.health import redact

    assert (
        redact("postgresql://cx:s3cret@db:5432/corridor") == "postgresql://cx:***@db:5432/corridor"
    )


def test_routing_errors_share_the_shape(client: TestClient) -> None:
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found", "/docs")
    r = client.get("/api/v1/interactions")
    assert_error(r, 405, "method_not_allowed", "allowed: POST")
    assert r.headers["allow"] == "POST"
    assert_error(client.delete("/api/v1/people"), 405, "method_not_allowed")
    assert_error(client.post("/api/v1/map", json={}), 405, "method_not_allowed", "GET, PUT")
    assert_error(client.post("/api/v1/health"), 405, "method_not_allowed", "GET")
    assert_error(client.post("/api/v1/people/ana"), 405, "method_not_allowed", "GET")
    assert_error(client.get("/nowhere"), 404, "not_found")


def test_unexpected_error_is_a_generic_500(store: Store) -> None:
    app = create_app(Settings(store_url=store.url, auth="off"), store=store)

    def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert_error(r, 500, "internal_error", "reference")
    assert "secret" not in r.text and "RuntimeError" not in r.text


def test_openapi_documents_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ops = {
        op["operationId"]: (path, method)
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }
    for kind in (
        "people",
        "interactions",
        "feedback",
        "operational_events",
        "market_events",
        "employee_predictions",
    ):
        assert ops[f"ingest_{kind}"] == (f"/api/v1/{kind}", "post")
    assert ops["put_map"] == ("/api/v1/map", "put")
    assert ops["get_map"] == ("/api/v1/map", "get")
    assert ops["get_person"] == ("/api/v1/people/{person_id}", "get")
    assert ops["health"] == ("/api/v1/health", "get")
    post = spec["paths"]["/api/v1/interactions"]["post"]
    content = post["requestBody"]["content"]
    assert set(content) == {"application/json", "application/x-ndjson"}
    assert post["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/IngestReply"
    }
    schemas = spec["components"]["schemas"]
    record = schemas["InteractionRecord"]
    assert set(record["required"]) == {"interaction_id", "occurred_at", "touchpoint", "channel"}
    assert record["properties"]["duration_minutes"]["anyOf"][0]["minimum"] == 0
    assert schemas["FeedbackRecord"]["properties"]["nps"]["anyOf"][0]["maximum"] == 10
    assert "CorridorMap" in schemas and "Touchpoint" in schemas and "ErrorBody" in schemas
    assert "HTTPValidationError" not in schemas and "HTTPValidationError" not in str(spec)
    assert client.get("/docs").status_code == 200
