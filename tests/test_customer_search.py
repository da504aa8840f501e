"""Finding a customer (issue 13.3): part of an id, an e-mail or a phone in any formatting finds
the person, ranked (whole value, start, end or part, anywhere), with the last activity and the
counts in the same query; scoped roles find only people with a record in their scope, count
only those records and match identities whole. On both engines, through the store, the API and
the page.

Small map (conftest): ad_click/marketing, checkout/ecommerce, home_delivery/logistics,
support_call/service. Lena heads logistics; Paul manages partner dhl (test_auth's users).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from conftest import ENGINES, SMALL_MAP, make_store_url
from corridor.api.app import create_app
from corridor.api.routes.people import find_people, records_in_scope
from corridor.auth import accounts
from corridor.auth.scope import Principal, Role, Scope
from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.pipeline import Ingestor
from corridor.settings import Settings
from corridor.store import open_store
from corridor.store.people_search import search_people, terms
from test_auth import PASSWORD, USERS, key_for, login

BULK = 55  # more people than one page of results


@pytest.fixture(scope="module", params=ENGINES)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The people, records and users below, on each engine, made once for the module: the
    tests only read them (a key or a session one adds changes no search)."""
    store = open_store(
        make_store_url(str(request.param), tmp_path_factory.mktemp("search"), request)
    )
    ingestor = Ingestor(store)
    ingestor.load_map(CorridorMap.from_dict(SMALL_MAP))
    ingestor.ingest(
        "people",
        pa.table(
            {
                "person_id": ["c-000576", "c-005760", "c-000057", "p-000010", "c-000010"],
                "kind": ["customer", "customer", "customer", "prospect", "customer"],
                "email": [
                    "Maria.Lopez@Example.com",  # stored in lower case
                    "x.glopez9@example.org",
                    "anna.smith@example.com",
                    "sam.lee@example.com",
                    "sam.lee@example.com",  # the same person: merged into p-000010
                ],
                "phone": ["+1 (555) 123-4567", "+1 555 999 4567", "+44 20 7946 0576", None, None],
                "crm_id": ["CRM-000576", None, None, None, None],
                "device_id": [None, "dev-abc123", None, None, None],
            }
        ),
    )
    ingestor.ingest(
        "people",
        pa.table(
            {
                "person_id": [f"b-{i:03d}" for i in range(BULK)],
                "kind": ["customer"] * BULK,
                "email": [f"bulk.person{i:03d}@example.net" for i in range(BULK)],
            }
        ),
    )
    rows = [  # person, when, touch point, channel, partner
        ("c-000576", "2025-03-01T10:00:00Z", "checkout", "web", None),
        ("c-000576", "2025-03-05T10:00:00Z", "checkout", "app", None),
        ("c-000576", "2025-03-09T10:00:00Z", "home_delivery", "partner", "dhl"),
        ("c-005760", "2025-02-01T10:00:00Z", "support_call", "voice", None),
        ("c-000057", "2025-01-15T10:00:00Z", "ad_click", "web", None),
        ("p-000010", "2025-01-02T10:00:00Z", "ad_click", "social", None),
        ("c-000010", "2025-04-02T10:00:00Z", "home_delivery", "partner", "ups"),
    ]
    ingestor.ingest(
        "interactions",
        pa.table(
            {
                "interaction_id": [f"i{n}" for n in range(len(rows))],
                "person_id": [r[0] for r in rows],
                "occurred_at": [r[1] for r in rows],
                "touchpoint": [r[2] for r in rows],
                "channel": [r[3] for r in rows],
                "partner_id": [r[4] for r in rows],
            }
        ),
    )
    ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": ["f0", "f1"],
                "person_id": ["c-000576", "c-000576"],
                "interaction_id": ["i2", None],
                "occurred_at": ["2025-03-10T09:00:00Z", "2025-03-20T09:00:00Z"],
                "touchpoint": [None, "support_call"],
                "source": ["survey", "survey"],
                "nps": [9, 3],
            }
        ),
    )
    for name, (role, extra) in USERS.items():
        accounts.add_user(store, name, PASSWORD, role, **extra)
    yield store
    ingestor.close()
    store.close()


def ids(store, q, **kw):
    return [p.person_id for p in search_people(store, q, **kw).people]


def scope_of(user: str) -> Scope:
    role, extra = USERS[user]
    return Scope.of(Principal(user, Role(role), **extra), None)


def scoped(store, q, user):
    return ids(store, q, in_scope=records_in_scope(scope_of(user)), partial_identities=False)


# -- the store's search --------------------------------------------------------------------------


def test_terms_read_a_phone_by_its_digits():
    assert terms("  +1 (555) 123-45.67 ").digits == "15551234567"
    assert terms("4567").digits == "4567"
    assert terms("c-000576").digits is None  # an id, not a phone
    assert terms("Maria  LOPEZ").text == "maria lopez"


def test_part_of_an_email_finds_the_person_in_any_capitalisation(world):
    for q in ("lopez", "LOPEZ", "Lopez", "maria.lo", "a.lopez@exa"):
        found = search_people(world, q).people
        assert found[0].person_id == "c-000576", q
        assert found[0].matched == "email" and found[0].matched_value == "maria.lopez@example.com"
    # the surname after the dot (a part) ranks above the same letters inside a word
    found = search_people(world, "lopez").people
    assert [(p.person_id, p.rank) for p in found] == [("c-000576", 2), ("c-005760", 3)]


@pytest.mark.parametrize(
    ("q", "want"),
    [
        ("4567", ["c-000576", "c-005760"]),  # the last digits: both phones end so
        ("+1 (555) 123", ["c-000576"]),  # a formatted start
        ("555-123-4567", ["c-000576"]),  # without the country code
        ("(555) 999 4567", ["c-005760"]),
        ("+15559994567", ["c-005760"]),  # whole, as stored
        ("20 7946", ["c-000057"]),
    ],
)
def test_a_phone_matches_in_any_formatting_and_by_its_last_digits(world, q, want):
    found = search_people(world, q).people
    assert [p.person_id for p in found] == want
    assert all(p.matched == "phone" for p in found)


def test_phone_ranks_whole_then_start_then_last_digits(world):
    found = search_people(world, "15551234567").people
    assert (found[0].person_id, found[0].rank) == ("c-000576", 0)
    assert [p.rank for p in search_people(world, "+1 555 123").people] == [1]
    assert [p.rank for p in search_people(world, "4567").people] == [2, 2]


def test_part_of_an_id_finds_the_person_whole_values_first(world):
    found = search_people(world, "576").people
    # c-000576: its id ends with 576 (and its CRM id, and the +44 phone of c-000057 ends so);
    # c-005760: 576 inside its id
    assert [p.person_id for p in found[:1]] == ["c-000576"]
    assert {p.person_id for p in found} == {"c-000576", "c-000057", "c-005760"}
    assert found[-1].person_id == "c-005760" and found[-1].rank == 3
    assert [(p.person_id, p.rank) for p in search_people(world, "C-000576").people] == [
        ("c-000576", 0)
    ]
    assert ids(world, "crm-000576") == ["c-000576"]  # a CRM id in part, any capitalisation


def test_an_exact_email_comes_before_longer_ones(world):
    found = search_people(world, "bulk.person001@example.net").people
    assert (found[0].person_id, found[0].rank) == ("b-001", 0)
    assert len(found) == 1
    found = search_people(world, "bulk.person01").people
    assert [p.person_id for p in found] == [f"b-{i:03d}" for i in range(10, 20)]
    assert {p.rank for p in found} == {1}


def test_a_device_id_matches_whole_only(world):
    assert ids(world, "dev-abc123") == ["c-005760"]
    assert ids(world, "abc123") == []


def test_one_or_two_characters_match_starts_only(world):
    found = search_people(world, "m")
    assert not found.partial and [p.person_id for p in found.people] == ["c-000576"]
    assert ids(world, "a") == ["c-000057"]  # anna.smith@..., not every e-mail holding an a
    assert ids(world, "57") == []  # 57 is inside ids and phones, at the start of none
    assert ids(world, "c")[:1] == ["c-000010"] and search_people(world, "c").partial is False


def test_results_are_limited_and_say_there_are_more(world):
    found = search_people(world, "bulk")
    assert len(found.people) == 50 and found.more
    assert [p.person_id for p in found.people[:2]] == ["b-000", "b-001"]
    small = search_people(world, "bulk", limit=5)
    assert len(small.people) == 5 and small.more
    assert not search_people(world, "lopez").more


def test_each_person_comes_with_last_activity_and_counts(world):
    (maria,) = [p for p in search_people(world, "maria").people]
    assert (maria.interactions, maria.feedback) == (3, 2)
    assert maria.last_activity == datetime(2025, 3, 20, 9, tzinfo=UTC)  # the later feedback
    assert (maria.email, maria.phone) == ("maria.lopez@example.com", "+15551234567")
    assert (maria.kind, maria.segment) == ("customer", None)
    (bulk,) = search_people(world, "bulk.person007").people
    assert (bulk.interactions, bulk.feedback, bulk.last_activity) == (0, 0, None)


def test_a_merged_group_is_one_result_with_the_whole_groups_records(world):
    found = search_people(world, "sam.lee").people
    assert len(found) == 1
    (sam,) = found
    group = world.query("SELECT DISTINCT canonical_id FROM people WHERE person_id LIKE '%-000010'")
    assert [sam.person_id] == [g[0] for g in group]  # both ids, one canonical person
    assert sam.interactions == 2  # the prospect's ad click and the customer's delivery
    assert sam.last_activity == datetime(2025, 4, 2, 10, tzinfo=UTC)


def test_like_wildcards_are_plain_characters(world):
    for q in ("%", "%%%", "_", "___", "b_lk", "\\"):
        assert ids(world, q) == [], q
    assert ids(world, "   ") == []


# -- scope ----------------------------------------------------------------------------------------


def test_a_partner_manager_finds_only_their_partners_customers(world):
    # c-000576 had a dhl delivery; c-005760 and c-000057 never dealt with dhl
    assert scoped(world, "576", "paul") == ["c-000576"]
    assert scoped(world, "maria.lopez@example.com", "paul") == ["c-000576"]
    assert scoped(world, "x.glopez9@example.org", "paul") == []
    assert scoped(world, "c-000057", "paul") == []
    assert scoped(world, "sam.lee@example.com", "paul") == []  # ups, not dhl
    # masked identities are not spelled out by parts: e-mails and phones match whole only
    assert scoped(world, "lopez", "paul") == []
    assert scoped(world, "4567", "paul") == []
    assert scoped(world, "+1 (555) 123-4567", "paul") == ["c-000576"]


def test_scoped_counts_and_last_activity_are_of_records_in_scope(world):
    in_scope = records_in_scope(scope_of("paul"))
    (maria,) = search_people(world, "c-000576", in_scope=in_scope, partial_identities=False).people
    # the dhl delivery and the feedback about it (its partner is its interaction's)
    assert (maria.interactions, maria.feedback) == (1, 1)
    assert maria.last_activity == datetime(2025, 3, 10, 9, tzinfo=UTC)
    in_scope = records_in_scope(scope_of("lena"))  # logistics: home_delivery
    (maria,) = search_people(world, "c-000576", in_scope=in_scope, partial_identities=False).people
    assert (maria.interactions, maria.feedback) == (1, 1)
    assert scoped(world, "c-0", "lena") == ["c-000010", "c-000576"]  # the ups delivery too


def test_a_scoped_search_truncates_among_people_in_scope_only(world):
    """``more`` and the page never count people outside the scope."""
    found = search_people(
        world, "c-", in_scope=records_in_scope(scope_of("paul")), partial_identities=False
    )
    assert [p.person_id for p in found.people] == ["c-000576"] and not found.more


def test_find_people_masks_identities_for_scoped_roles(world):
    for user in ("ana", "aggie", "root"):
        (maria,) = find_people(world, "maria.lopez", scope_of(user)).people
        assert maria.email == "maria.lopez@example.com" and maria.phone == "+15551234567"
        assert maria.match == "start"
    (maria,) = find_people(world, "MARIA.LOPEZ@example.com", scope_of("lena")).people
    assert (maria.email, maria.phone, maria.matched_value) == (
        "m•••@example.com",
        "•••• 4567",
        "m•••@example.com",
    )
    assert maria.match == "whole"


# -- the API --------------------------------------------------------------------------------------


@pytest.fixture
def client(world) -> TestClient:
    return TestClient(create_app(Settings(), store=world))


def test_api_searches_people_with_the_same_ranking(client, world):
    with client as c:
        r = c.get("/api/v1/people", params={"q": "lopez"}, headers=key_for(world, "aggie"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert [p["person_id"] for p in body["people"]] == ["c-000576", "c-005760"]
        first = body["people"][0]
        assert (first["matched"], first["match"], first["interactions"]) == ("email", "part", 3)
        assert body["more"] is False and body["limit"] == 50 and body["partial"] is True
        r = c.get("/api/v1/people", params={"q": "bulk", "limit": 3}, headers=key_for(world, "ana"))
        assert len(r.json()["people"]) == 3 and r.json()["more"] is True
        paul = c.get("/api/v1/people", params={"q": "576"}, headers=key_for(world, "paul")).json()
        assert [p["person_id"] for p in paul["people"]] == ["c-000576"]
        assert paul["people"][0]["email"] == "m•••@example.com"
        assert paul["people"][0]["interactions"] == 1


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "x" * 257}, {"q": "a", "limit": 0}])
def test_api_refuses_a_missing_or_unbounded_query_in_the_error_shape(client, world, params):
    with client as c:
        r = c.get("/api/v1/people", params=params, headers=key_for(world, "ana"))
    assert r.status_code == 422, r.text
    assert set(r.json()["error"]) == {"code", "message", "details"}


def test_api_search_needs_credentials_and_is_documented(client):
    with client as c:
        assert c.get("/api/v1/people", params={"q": "lopez"}).status_code == 401
        op = c.get("/openapi.json").json()["paths"]["/api/v1/people"]["get"]
    names = {p["name"]: p for p in op["parameters"]}
    assert set(names) == {"q", "limit"} and names["q"]["required"] is True
    assert "4567" in names["q"]["description"]
    assert {"200", "401", "422"} <= set(op["responses"])


# -- the page -------------------------------------------------------------------------------------


def test_the_page_lists_matches_with_links_to_their_timelines(client):
    with client as c:
        login(c, "aggie")
        hint = c.get("/customers")
        assert hint.status_code == 200 and "three characters or more" in hint.text
        page = c.get("/customers", params={"q": "lopez"})
        assert page.status_code == 200
        text = page.text
        assert text.index('href="/customers/c-000576"') < text.index('href="/customers/c-005760"')
        assert "maria.lopez@example.com" in text and "+15551234567" in text
        assert "2025-03-20" in text and "2 customers found" in text
        none = c.get("/customers", params={"q": "zqxj"})
        assert "No customer matches “zqxj”" in none.text
        many = c.get("/customers", params={"q": "bulk"})
        assert "Showing the best 50 of more — refine the search" in many.text
        assert many.text.count('href="/customers/b-') == 50
        short = c.get("/customers", params={"q": "m"})
        assert "matches starts only" in short.text


def test_the_page_holds_the_scope(client):
    with client as c:
        login(c, "paul")
        page = c.get("/customers", params={"q": "576"})
        assert 'href="/customers/c-000576"' in page.text
        assert 'href="/customers/c-005760"' not in page.text
        assert ">m•••@example.com</td>" in page.text and ">•••• 4567</td>" in page.text
        assert ">maria.lopez@example.com</td>" not in page.text and "+1555" not in page.text
        assert "match only whole" in page.text
        none = c.get("/customers", params={"q": "lopez"})
        assert "No customer in your view matches" in none.text
