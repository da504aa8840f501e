"""Replacing the corridor map that stored records use (issue 11.13): the refusal names every
touch point that would be orphaned with its record counts, and only an admin may force it."""

from __future__ import annotations

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from conftest import SMALL_MAP
from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.domain.corridor_map import CorridorMap
from corridor.errors import CorridorMapError
from corridor.settings import Settings

PASSWORD = "correct horse battery"
ONE_TOUCHPOINT = {
    "stages": ["purchase"],
    "touchpoints": [
        {"key": "checkout", "name": "Checkout", "stage": "purchase", "channels": ["web"],
         "department": "ecommerce"}
    ],
}  # fmt: skip


def _load(ingestor) -> None:
    tps = ["home_delivery"] * 3 + ["support_call"] * 2 + ["checkout"]
    ingestor.ingest(
        "interactions",
        pa.table(
            {
                "interaction_id": [f"i{i}" for i in range(len(tps))],
                "person_id": ["p1"] * len(tps),
                "occurred_at": ["2025-03-01T10:00:00Z"] * len(tps),
                "touchpoint": tps,
                "channel": [{"home_delivery": "partner", "support_call": "voice"}.get(t, "web")
                            for t in tps],
            }
        ),
    )  # fmt: skip
    report = ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": ["f1"],
                "person_id": ["p1"],
                "interaction_id": ["i0"],
                "occurred_at": ["2025-03-02T10:00:00Z"],
                "touchpoint": ["home_delivery"],
                "experience": [3],
                "source": ["survey"],
            }
        ),
    )
    assert report.rejected == 0, report.as_dict(max_errors=3)


def _keys(store) -> dict[str, dict[str, str]]:
    out = {}
    for name, role in (("root", "admin"), ("ana", "analyst")):
        accounts.add_user(store, name, PASSWORD, role)
        _, secret = accounts.create_key(store, name)
        out[name] = {"authorization": f"Bearer {secret}"}
    return out


def test_an_analyst_may_not_force_a_map_that_orphans_records(ingestor, store, small_map):
    _load(ingestor)
    keys = _keys(store)
    with TestClient(create_app(Settings(), store=store)) as c:
        refused = c.put("/api/v1/map", json=ONE_TOUCHPOINT, headers=keys["ana"])
        assert refused.status_code == 422
        message = refused.json()["error"]["message"]
        assert "home_delivery (3 interactions, 1 feedback)" in message
        assert "support_call (2 interactions, 0 feedback)" in message
        assert "admin" in message
        forced = c.put("/api/v1/map?force=true", json=ONE_TOUCHPOINT, headers=keys["ana"])
        assert forced.status_code == 403, forced.text
        assert "only an admin may" in forced.json()["error"]["message"]
        assert "home_delivery (3 interactions" in forced.json()["error"]["message"]
        assert len(c.get("/api/v1/map", headers=keys["ana"]).json()["touchpoints"]) == 4
        # force with nothing to orphan is harmless: an analyst may send it
        same = c.put("/api/v1/map?force=true", json=SMALL_MAP, headers=keys["ana"])
        assert same.status_code == 200, same.text
        done = c.put("/api/v1/map?force=true", json=ONE_TOUCHPOINT, headers=keys["root"])
        assert done.status_code == 200, done.text
        assert len(c.get("/api/v1/map", headers=keys["ana"]).json()["touchpoints"]) == 1


def test_a_map_that_drops_the_touch_point_of_open_survey_links_is_refused(ingestor, store):
    """Survey links still open at a touch point the new map drops are counted like records: the
    map is refused (their answers would be refused after the customer was thanked), and loads
    once the links are revoked."""
    from corridor.store.maps import save_map
    from corridor.surveys import catalog, definition, links
    from survey_fixtures import delivery

    catalog.save(store, definition.parse(delivery()), by="ana")
    link, _ = links.create(store, "delivery-pulse", person_id="p1")
    smaller = CorridorMap.from_dict({**SMALL_MAP, "touchpoints": [
        t for t in SMALL_MAP["touchpoints"] if t["key"] != "home_delivery"]})  # fmt: skip
    with pytest.raises(CorridorMapError, match=r"home_delivery \(0 interactions, 0 feedback, "
                       r"1 open survey links\)"):  # fmt: skip
        save_map(store, smaller)
    links.revoke(store, link.link_id)
    assert save_map(store, smaller) > 1
