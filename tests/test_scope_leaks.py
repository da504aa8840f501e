"""What a department head and a partner manager see of customers, operations and totals (issue
11.9), decided once in ``auth/scope`` and held by every page and route.

The data is ``test_auth``'s: persons p0..p3 each use one touch point (p0 ad_click/marketing,
p1 checkout/ecommerce, p2 home_delivery/logistics through partners dhl and ups, p3
support_call/service). Lena heads logistics; Paul manages partner dhl.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from corridor.api.app import create_app
from corridor.settings import Settings
from test_auth import key_for, login
from test_auth import seeded as seeded

OWN = {"origin": "http://testserver"}


@pytest.fixture
def world(seeded, ingestor):
    """Identities on the persons, and an operational event of logistics."""
    ingestor.ingest(
        "people",
        pa.table(
            {
                "person_id": ["p0", "p2"],
                "kind": ["customer", "customer"],
                "email": ["zoe.marketing@example.com", "dana.delivery@example.com"],
                "phone": ["+44 20 7946 0001", "+44 20 7946 0958"],
                "crm_id": ["CRM-000", "CRM-222"],
            }
        ),
    )
    ingestor.ingest(
        "operational_events",
        pa.table(
            {
                "event_id": ["ops-secret"],
                "department": ["logistics"],
                "kind": ["warehouse_strike"],
                "started_at": ["2025-02-10T00:00:00Z"],
                "ended_at": ["2025-02-20T00:00:00Z"],
                "touchpoints": ["home_delivery"],
                "description": ["strike at the north warehouse"],
            }
        ),
    )
    return seeded


@pytest.fixture
def client(world) -> TestClient:
    return TestClient(create_app(Settings(model_refresh="on_request"), store=world))


def person(c: TestClient, store, user: str, pid: str):
    return c.get(f"/api/v1/people/{pid}", headers=key_for(store, user))


def test_scoped_roles_find_only_customers_with_a_record_in_their_scope(client, world):
    with client as c:
        unknown = person(c, world, "lena", "nobody-at-all")
        outside = person(c, world, "lena", "p0")  # marketing only: nothing in logistics
        assert unknown.status_code == outside.status_code == 404
        # the two answers read alike: a guessed id reveals nothing
        assert outside.json()["error"]["message"] == unknown.json()["error"]["message"].replace(
            "'nobody-at-all'", "'p0'"
        )
        assert person(c, world, "paul", "p1").status_code == 404  # no dhl record
        for path in ("/api/v1/churn/risk/p0", "/api/v1/lifetime/people/p0"):
            assert c.get(path, headers=key_for(world, "lena")).status_code == 404, path
        assert person(c, world, "lena", "p2").status_code == 200
        assert person(c, world, "paul", "p2").status_code == 200
        for user in ("root", "ana", "aggie"):  # everyone else sees any customer
            assert person(c, world, user, "p0").status_code == 200


def test_scoped_roles_see_masked_identities_and_counts_of_their_records_only(client, world):
    with client as c:
        full = person(c, world, "ana", "p2").json()
        head = person(c, world, "lena", "p2").json()
        paul = person(c, world, "paul", "p2").json()
    ids = {i["id_type"]: i["id_value"] for i in full["identities"]}
    assert ids["email"] == "dana.delivery@example.com" and ids["crm_id"] == "CRM-222"
    shown = {i["id_type"]: i["id_value"] for i in head["identities"]}
    assert shown == {"email": "d•••@example.com", "phone": "•••• 0958", "crm_id": "(hidden)"}
    assert "dana" not in str(head) and "CRM-222" not in str(head) and "7946" not in str(head)
    # p2's 12 interactions and feedback are all at home_delivery, half of them through dhl
    assert (full["interactions"], full["feedback"]) == (12, 12)
    assert (head["interactions"], head["feedback"]) == (12, 12)
    assert (paul["interactions"], paul["feedback"]) == (6, 6)
    assert head["person"]["attributes"] is None


def test_customer_pages_hold_the_same_rules(client, world):
    with client as c:
        login(c, "lena")
        page = c.get("/customers/p2")
        assert page.status_code == 200
        assert "d•••@example.com" in page.text and "dana.delivery" not in page.text
        assert "CRM-222" not in page.text
        refused = c.get("/customers/p0")
        assert refused.status_code in (403, 404, 422) and "zoe" not in refused.text
        assert "within your scope" in refused.text
        found = c.get("/customers", params={"q": "zoe.marketing@example.com"})
        assert "/customers/p0" not in found.text  # search finds only people in scope
        found = c.get("/customers", params={"q": "dana.delivery@example.com"})
        assert "/customers/p2" in found.text
        c.post("/logout", headers=OWN)
        login(c, "ana")
        assert "zoe.marketing@example.com" in c.get("/customers/p0").text


def test_a_partner_manager_sees_no_departments_operations(client, world):
    with client as c:
        login(c, "paul")
        page = c.get("/departments/logistics")
        assert page.status_code == 200
        assert "warehouse_strike" not in page.text and "north warehouse" not in page.text
        assert "shown to the department and to analysts only" in page.text
        c.post("/logout", headers=OWN)
        login(c, "lena")
        assert "warehouse_strike" in c.get("/departments/logistics").text


@pytest.mark.parametrize("path", ["/api/v1/ripple", "/api/v1/departments/impact"])
def test_totals_count_only_the_rows_a_user_is_shown(client, world, path):
    with client as c:
        params = {"churn": "false"}
        everyone = c.get(path, params=params, headers=key_for(world, "ana")).json()
        paul = c.get(path, params=params, headers=key_for(world, "paul")).json()
        lena = c.get(path, params=params, headers=key_for(world, "lena")).json()
    assert paul["rows"] == [] and paul["n"] == 0
    assert {r["department"] for r in lena["rows"]} <= {"logistics"}
    assert all("rank" not in r for r in lena["rows"])
    if path.endswith("ripple"):
        assert lena["n"] == sum(r["n_treated"] + r["n_control"] for r in lena["rows"])
    assert lena["n"] <= everyone["n"]


def test_a_partner_managers_scorecard_counts_their_rows_and_the_baseline_only(client, world):
    with client as c:
        everyone = c.get("/api/v1/partners", headers=key_for(world, "ana")).json()
        paul = c.get("/api/v1/partners", headers=key_for(world, "paul")).json()
    assert {r["partner"] for r in paul["rows"]} == {None, "dhl"}
    assert paul["n"] == sum(r["n"] for r in paul["rows"]) < everyone["n"]


def test_a_partner_manager_sees_no_other_departments_prediction_counts(ingestor, world):
    ingestor.ingest(
        "employee_predictions",
        pa.table(
            {
                "prediction_id": [f"e{i}" for i in range(4)],
                "department": ["marketing", "ecommerce", "logistics", "service"],
                "touchpoint": ["ad_click", "checkout", "home_delivery", "support_call"],
                "period": ["2025-01"] * 4,
                "predicted_experience": [7.0, 7.0, 7.0, 7.0],
            }
        ),
    )
    with TestClient(create_app(Settings(), store=world)) as c:
        paul = c.get("/api/v1/alignment", headers=key_for(world, "paul")).json()
    assert all(r["n_records"] for r in paul["rows"])
    assert all(r["n_unmatched"] is None for r in paul["rows"])
    assert paul["n"] == sum(r["n_records"] for r in paul["rows"])


def test_a_department_head_gets_no_rows_of_other_departments_touch_points(client, world):
    """/promises lists every promise of the map; a head's reply keeps their department's."""
    with client as c:
        ana = c.get("/api/v1/promises", headers=key_for(world, "ana")).json()
        lena = c.get("/api/v1/promises", headers=key_for(world, "lena")).json()
    assert {r["touchpoint"] for r in ana["rows"]} == {"checkout"}
    assert lena["rows"] == []
