"""Identity resolution and the ingest pipeline on both engines."""

from __future__ import annotations

import pyarrow as pa
import pytest

from corridor.ingest.identity import derived_person_id


def _people(**cols):
    return pa.table(cols)


def _interactions(ids, persons=None, **identities):
    n = len(ids)
    cols = {
        "interaction_id": ids,
        "occurred_at": ["2025-01-01T10:00:00Z"] * n,
        "touchpoint": ["checkout"] * n,
        "channel": ["web"] * n,
    }
    if persons is not None:
        cols["person_id"] = persons
    cols.update(identities)
    return pa.table(cols)


def canonical(store, person):
    return store.query("SELECT canonical_id FROM people WHERE person_id = ?", (person,))[0][0]


def test_events_before_profiles_create_customers_then_profiles_update(ingestor, store):
    ingestor.ingest("interactions", _interactions(["i1"], ["p1"]))
    assert store.query("SELECT kind, segment FROM people WHERE person_id = 'p1'") == [
        ("customer", None)
    ]
    ingestor.ingest("people", _people(person_id=["p1"], kind=["prospect"], segment=["smb"]))
    ingestor.ingest("people", _people(person_id=["p1"], kind=["customer"]))
    # a later profile sets kind; fields it leaves empty keep their value
    assert store.query("SELECT kind, segment FROM people WHERE person_id = 'p1'") == [
        ("customer", "smb")
    ]


def test_shared_email_merges_histories_visibly(ingestor, store):
    ingestor.ingest("people", _people(person_id=["web-1"], kind=["prospect"], email=["Ann@X.com"]))
    ingestor.ingest("interactions", _interactions(["i1"], ["web-1"]))
    report = ingestor.ingest(
        "people", _people(person_id=["crm-9"], kind=["customer"], email=["ann@x.com "])
    )
    assert [(m.from_person, m.into_person, m.id_type) for m in report.merges] == [
        ("crm-9", "web-1", "email")
    ]
    ingestor.ingest("interactions", _interactions(["i2"], ["crm-9"]))
    assert canonical(store, "crm-9") == "web-1"
    rows = store.query(
        "SELECT i.interaction_id FROM interactions i JOIN people p ON p.person_id = i.person_id "
        "WHERE p.canonical_id = 'web-1' ORDER BY 1"
    )
    assert [r[0] for r in rows] == ["i1", "i2"]
    assert store.query(
        "SELECT from_person, into_person, id_type, id_value, record_kind, record_id "
        "FROM person_merges"
    ) == [("crm-9", "web-1", "email", "ann@x.com", "people", "crm-9")]


def test_chain_of_identities_merges_three_persons(ingestor, store):
    ingestor.ingest(
        "people",
        _people(
            person_id=["a", "b", "c"],
            kind=["customer"] * 3,
            email=["a@x.com", None, None],
            phone=[None, "+44 20 7946 0000", None],
            device_id=[None, None, "dev-c"],
        ),
    )
    # one record links a's email with b's phone, another b's phone with c's device
    ingestor.ingest(
        "interactions",
        _interactions(
            ["i1", "i2"],
            ["a", None],
            email=["a@x.com", None],
            phone=["+44 (20) 7946-0000", "+442079460000"],
            device_id=[None, "dev-c"],
        ),
    )
    assert {canonical(store, p) for p in "abc"} == {"a"}
    assert store.count("person_merges") == 2


def test_identity_only_records_get_a_stable_person(ingestor, store):
    batch = _interactions(["i1", "i2"], None, device_id=["dev-1", "dev-1"])
    first = ingestor.ingest("interactions", batch)
    again = ingestor.ingest("interactions", batch)  # a client retry
    assert (first.inserted, again.inserted, again.duplicates) == (2, 0, 2)
    expected = derived_person_id("device_id", "dev-1")
    assert store.query("SELECT DISTINCT person_id FROM interactions") == [(expected,)]
    # later the device shows up on a known customer: the anonymous history joins them
    ingestor.ingest("people", _people(person_id=["p7"], kind=["customer"], crm_id=["C7"]))
    ingestor.ingest(
        "interactions", _interactions(["i3"], ["p7"], device_id=["dev-1"], crm_id=["C7"])
    )
    assert canonical(store, expected) == canonical(store, "p7")


def test_new_identity_shared_within_one_batch_merges(ingestor, store):
    ingestor.ingest(
        "people",
        _people(person_id=["x", "y"], kind=["customer", "customer"], email=["s@x.com", "s@x.com"]),
    )
    assert canonical(store, "y") == "x"
    assert store.query("SELECT person_id FROM identities WHERE id_value = 's@x.com'") == [("x",)]


def test_anonymous_feedback_has_no_person(ingestor, store):
    report = ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": ["f1"],
                "occurred_at": ["2025-01-01"],
                "source": ["review"],
                "touchpoint": ["checkout"],
                "experience": [2],
                "text": ["slow"],
            }
        ),
    )
    assert report.inserted == 1
    assert store.query("SELECT person_id FROM feedback") == [(None,)]
    assert store.count("people") == 0


def test_same_id_twice_is_stored_once_and_counted(ingestor, store):
    batch = _interactions(["i1", "i2", "i1"], ["p", "p", "p"])
    r1 = ingestor.ingest("interactions", batch)
    r2 = ingestor.ingest("interactions", batch)
    assert (r1.accepted, r1.inserted, r1.duplicates) == (3, 2, 1)
    assert (r2.accepted, r2.inserted, r2.duplicates) == (3, 0, 3)
    assert store.count("interactions") == 2
    assert store.query("SELECT sum(accepted), sum(duplicates) FROM ingest_batches") == [(6, 4)]


def test_bad_records_are_named_and_good_ones_land(ingestor, store):
    batch = pa.table(
        {
            "feedback_id": ["f1", "f2", "f3", "f4"],
            "occurred_at": ["2025-01-01", "yesterday", "2025-01-01", "2025-01-01"],
            "source": ["survey", "survey", "fax", "survey"],
            "nps": ["9", "11", "5", "7.5"],
            "touchpoint": ["checkout", "checkout", "checkout", "nowhere"],
        }
    )
    r = ingestor.ingest("feedback", batch)
    assert r.inserted == 1 and r.rejected == 3
    problems = {(e.row, e.id, e.field) for e in r.errors}
    assert problems == {
        (2, "f2", "occurred_at"),
        (2, "f2", "nps"),
        (3, "f3", "source"),
        (4, "f4", "nps"),
        (4, "f4", "touchpoint"),
    }
    reasons = {(e.id, e.field): e.reason for e in r.errors}
    assert "between 0 and 10" in reasons[("f2", "nps")]
    assert "ISO-8601" in reasons[("f2", "occurred_at")]
    assert "whole number" in reasons[("f4", "nps")]
    assert "survey, review" in reasons[("f3", "source")]
    assert "corridor map" in reasons[("f4", "touchpoint")]
    assert store.query("SELECT feedback_id, nps FROM feedback") == [("f1", 9)]


def test_interaction_must_name_a_person(ingestor):
    r = ingestor.ingest("interactions", _interactions(["i1"], [None]))
    assert r.rejected == 1
    assert r.errors[0].field == "person_id"
    assert "email" in r.errors[0].reason


def test_records_before_any_map_are_rejected_with_advice(store):
    from corridor.ingest.pipeline import Ingestor

    ing = Ingestor(store)
    try:
        r = ing.ingest("interactions", _interactions(["i1"], ["p1"]))
    finally:
        ing.close()
    assert r.rejected == 1
    assert "corridor map load" in r.errors[0].reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("email", "not-an-address", "e-mail"),
        ("phone", "call me", "phone"),
        ("occurred_at", "1850-01-01", "1970-2100"),
        ("duration_minutes", "-3", "at least 0"),
        ("value", "NaN", "finite"),
    ],
)
def test_field_rules(ingestor, field, value, reason):
    cols = {
        "interaction_id": ["i1"],
        "person_id": ["p1"],
        "occurred_at": ["2025-01-01"],
        "touchpoint": ["checkout"],
        "channel": ["web"],
    }
    cols[field] = [value]
    r = ingestor.ingest("interactions", pa.table(cols))
    assert r.rejected == 1, r.as_dict()
    assert r.errors[0].field == field
    assert reason in r.errors[0].reason
