"""Users, API keys, sessions and scoping: every route and page enforces the same scope.

Small map: marketing (ad_click), ecommerce (checkout), logistics (home_delivery), service
(support_call). Feedback at each, some through partner ``dhl`` and some through ``ups``.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from conftest import ENGINES, SMALL_MAP, make_store_url
from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.auth.scope import Principal, Role, Scope
from corridor.domain.corridor_map import CorridorMap
from corridor.errors import AccountError, AuthenticationError, PermissionDeniedError
from corridor.ingest.pipeline import Ingestor
from corridor.settings import Settings
from corridor.store import Store, open_store

PASSWORD = "correct horse battery"
USERS = {
    "root": ("admin", {}),
    "ana": ("analyst", {}),
    "lena": ("department_head", {"department": "logistics"}),
    "paul": ("partner_manager", {"partner": "dhl"}),
    "aggie": ("agent", {}),
}


def _seed(ingestor: Ingestor, store: Store) -> Store:
    n = 48
    tps = ["ad_click", "checkout", "home_delivery", "support_call"]
    ingestor.ingest(
        "interactions",
        pa.table(
            {
                "interaction_id": [f"i{i}" for i in range(n)],
                "person_id": [f"p{i % 4}" for i in range(n)],
                "occurred_at": [f"2025-0{1 + i % 3}-1{i % 9}T12:00:00Z" for i in range(n)],
                "touchpoint": [tps[i % 4] for i in range(n)],
                "channel": [["web", "web", "partner", "voice"][i % 4] for i in range(n)],
                "partner_id": [
                    ("dhl" if i % 8 == 2 else "ups") if i % 4 == 2 else None for i in range(n)
                ],
            }
        ),
    )
    ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": [f"f{i}" for i in range(n)],
                "person_id": [f"p{i % 4}" for i in range(n)],
                "interaction_id": [f"i{i}" for i in range(n)],
                "occurred_at": [f"2025-0{1 + i % 3}-1{i % 9}T13:00:00Z" for i in range(n)],
                "source": ["survey"] * n,
                "expectation": [7 + (i % 3) for i in range(n)],
                "experience": [(i * 7) % 11 for i in range(n)],
                "nps": [(i * 3) % 11 for i in range(n)],
                "text": ["call me on +44 20 7946 0958 please"] * n,
            }
        ),
    )
    for name, (role, extra) in USERS.items():
        accounts.add_user(store, name, PASSWORD, role, **extra)
    return store


@pytest.fixture
def seeded(ingestor, store):
    """The records and users above in a store of the test's own: for tests that change what
    another reads (users, the sign-in throttle)."""
    return _seed(ingestor, store)


@pytest.fixture
def app(seeded):
    return create_app(Settings(), store=seeded)


@pytest.fixture(scope="module", params=ENGINES)
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The same, made once per engine for the tests that only read it (the keys and sessions
    they add change nothing another reads)."""
    store = open_store(make_store_url(str(request.param), tmp_path_factory.mktemp("auth"), request))
    ingestor = Ingestor(store)
    ingestor.load_map(CorridorMap.from_dict(SMALL_MAP))
    yield _seed(ingestor, store)
    ingestor.close()
    store.close()


@pytest.fixture
def shared_app(shared):
    return create_app(Settings(), store=shared)


def key_for(store, user: str) -> dict[str, str]:
    _, secret = accounts.create_key(store, user, "test")
    return {"Authorization": f"Bearer {secret}"}


# -- accounts ---------------------------------------------------------------------------------


def test_passwords_are_hashed_with_argon2id_and_verified(shared):
    stored = shared.query("SELECT password_hash FROM users WHERE username = 'ana'")[0][0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert accounts.verify_password(shared, "ana", PASSWORD).role is Role.ANALYST
    with pytest.raises(AuthenticationError, match="wrong username or password"):
        accounts.verify_password(shared, "ana", "not the password")
    with pytest.raises(AuthenticationError, match="wrong username or password"):
        accounts.verify_password(shared, "nobody", PASSWORD)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("x y", PASSWORD, "analyst"), {}, "username"),
        (("bob", PASSWORD, "boss"), {}, "unknown role 'boss'"),
        (("bob", "short", "analyst"), {}, "at least 8"),
        (("bob", PASSWORD, "department_head"), {}, "needs a department"),
        (("bob", PASSWORD, "partner_manager"), {}, "needs a partner"),
        (("bob", PASSWORD, "analyst"), {"department": "x"}, "only a department head"),
        (("ana", PASSWORD, "analyst"), {}, "already exists"),
    ],
)
def test_bad_users_are_refused_with_a_reason(shared, args, kwargs, message):
    with pytest.raises(AccountError, match=message):
        accounts.add_user(shared, *args, **kwargs)


def test_a_department_head_gets_a_department_of_the_map(store, small_map):
    """A misspelt department would make an account that sees nothing: once a map is loaded,
    the department must be one of its departments (the standard ones and any it adds)."""
    accounts.add_user(store, "early", PASSWORD, "department_head", department="later")
    Ingestor(store).load_map(small_map)
    with pytest.raises(AccountError, match="no department 'Logistics' in the corridor map; "
                                           "did you mean 'logistics'"):  # fmt: skip
        accounts.add_user(store, "bob", PASSWORD, "department_head", department="Logistics")
    with pytest.raises(AccountError, match=r"known: .*logistics.*service"):
        accounts.add_user(store, "bob", PASSWORD, "department_head", department="nosuch")
    assert not accounts.get_user(store, "bob")
    made = accounts.add_user(store, "bob", PASSWORD, "department_head", department="logistics")
    assert made.department == "logistics"
    # a partner is an id of the records, which may come after the account: not checked
    accounts.add_user(store, "pat", PASSWORD, "partner_manager", partner="new-partner")


def test_api_keys_are_stored_hashed_and_can_be_revoked(shared):
    key, secret = accounts.create_key(shared, "ana", "etl")
    with pytest.raises(AccountError, match="at most 200 characters"):
        accounts.create_key(shared, "ana", "x" * 201)
    assert secret.startswith(f"cor_{key.key_id}_")
    stored = shared.query("SELECT key_hash FROM api_keys WHERE key_id = ?", (key.key_id,))[0][0]
    assert secret.split("_", 2)[2] not in stored and len(stored) == 64
    assert accounts.authenticate_key(shared, secret).username == "ana"
    with pytest.raises(AuthenticationError, match="unknown API key"):
        accounts.authenticate_key(shared, secret[:-2] + "xx")
    accounts.revoke_key(shared, key.key_id)
    with pytest.raises(AuthenticationError, match="revoked"):
        accounts.authenticate_key(shared, secret)


def test_removing_a_user_revokes_keys_and_ends_sessions(seeded):
    _, secret = accounts.create_key(seeded, "ana")
    token = accounts.start_session(seeded, accounts.verify_password(seeded, "ana", PASSWORD))
    assert accounts.session_user(seeded, token) is not None
    accounts.remove_user(seeded, "ana")
    assert accounts.session_user(seeded, token) is None
    with pytest.raises(AuthenticationError):
        accounts.authenticate_key(seeded, secret)
    with pytest.raises(AccountError, match="no user 'ana'"):
        accounts.remove_user(seeded, "ana")


def test_scope_forces_and_refuses(small_map):
    head = Scope.of(Principal("lena", Role.DEPARTMENT_HEAD, department="logistics"), small_map)
    assert head.touchpoints == {"home_delivery"}
    assert head.restrict(None) == {"department": ["logistics"]}
    assert head.restrict({"region": ["north"]}) == {
        "region": ["north"],
        "department": ["logistics"],
    }
    with pytest.raises(PermissionDeniedError, match="department 'sales'"):
        head.restrict({"department": ["sales"]})
    with pytest.raises(PermissionDeniedError, match="touchpoint 'checkout'"):
        head.restrict({"touchpoint": ["checkout"]})
    manager = Scope.of(Principal("paul", Role.PARTNER_MANAGER, partner="dhl"), small_map)
    assert manager.restrict({"partner": ["dhl"]}) == {"partner": ["dhl"]}
    with pytest.raises(PermissionDeniedError, match="partner 'ups'"):
        manager.restrict({"partner": ["ups"]})
    agent = Scope.of(Principal("aggie", Role.AGENT), small_map)
    with pytest.raises(PermissionDeniedError, match="agents see customer timelines"):
        agent.restrict(None)
    analyst = Scope.of(Principal("ana", Role.ANALYST), small_map)
    assert analyst.restrict({"department": ["sales"]}) == {"department": ["sales"]}


# -- API --------------------------------------------------------------------------------------


def test_every_api_route_needs_credentials(shared_app):
    with TestClient(shared_app) as c:
        for method, path in [
            ("GET", "/api/v1/gaps"),
            ("GET", "/api/v1/metrics/nps"),
            ("GET", "/api/v1/map"),
            ("GET", "/api/v1/people/p1"),
            ("POST", "/api/v1/feedback"),
            ("PUT", "/api/v1/map"),
        ]:
            r = c.request(method, path)
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["error"]["code"] == "unauthenticated"
            assert "corridor keys create" in r.json()["error"]["message"]
        r = c.get("/api/v1/gaps", headers={"Authorization": "Bearer cor_nope_nope"})
        assert r.status_code == 401 and "unknown API key" in r.json()["error"]["message"]
        assert c.get("/api/v1/health").status_code == 200  # liveness stays open


def test_department_head_cannot_read_another_department_by_api(shared_app, shared):
    with TestClient(shared_app) as c:
        h = key_for(shared, "lena")
        mine = c.get("/api/v1/gaps", params={"by": "department"}, headers=h)
        assert mine.status_code == 200
        assert {r["department"] for r in mine.json()["rows"]} == {"logistics"}
        assert mine.json()["n"] == 12
        for params in (
            {"department": "ecommerce"},
            {"touchpoint": "checkout"},
            {"department": "logistics,service"},
        ):
            r = c.get("/api/v1/gaps", params=params, headers=h)
            assert r.status_code == 403, params
            assert r.json()["error"]["code"] == "forbidden"
        # writing is for admins and analysts
        r = c.post("/api/v1/feedback", json=[], headers=h)
        assert r.status_code == 403
        analyst = c.get("/api/v1/gaps", params={"by": "department"}, headers=key_for(shared, "ana"))
        assert len(analyst.json()["rows"]) == 4 and analyst.json()["n"] == 48


def test_partner_manager_sees_only_their_partner(shared_app, shared):
    with TestClient(shared_app) as c:
        h = key_for(shared, "paul")
        r = c.get("/api/v1/gaps", params={"by": "partner"}, headers=h)
        assert r.status_code == 200
        assert [row["partner"] for row in r.json()["rows"]] == ["dhl"]
        assert r.json()["n"] == 6
        assert c.get("/api/v1/gaps", params={"partner": "ups"}, headers=h).status_code == 403


def test_agents_see_people_but_no_analyses(shared_app, shared):
    with TestClient(shared_app) as c:
        h = key_for(shared, "aggie")
        assert c.get("/api/v1/people/p1", headers=h).status_code == 200
        r = c.get("/api/v1/gaps", headers=h)
        assert r.status_code == 403 and "agents see customer timelines" in r.text


def test_admin_key_sends_data_and_a_revoked_key_stops_at_once(app, seeded):
    with TestClient(app) as c:
        key, secret = accounts.create_key(seeded, "root")
        h = {"X-API-Key": secret}
        r = c.post("/api/v1/people", json={"person_id": "new", "kind": "customer"}, headers=h)
        assert r.status_code == 200, r.text
        accounts.revoke_key(seeded, key.key_id)
        r = c.post("/api/v1/people", json={"person_id": "n2", "kind": "customer"}, headers=h)
        assert r.status_code == 401


# -- pages ------------------------------------------------------------------------------------


def login(c: TestClient, user: str, password: str = PASSWORD, next: str = "") -> None:
    r = c.post(
        "/login",
        data={"username": user, "password": password, "next": next},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def test_pages_send_visitors_to_sign_in_and_back(app):
    with TestClient(app) as c:
        r = c.get("/touchpoints/checkout?range=all", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=/touchpoints/checkout%3Frange%3Dall"
        bad = c.post("/login", data={"username": "ana", "password": "nope"})
        assert bad.status_code == 401 and "wrong username or password" in bad.text
        r = c.post(
            "/login",
            data={"username": "ana", "password": PASSWORD, "next": "//evil.example/"},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/"  # never to another site
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert c.get("/").status_code == 200
        assert c.post("/logout").status_code == 403  # no Origin: may be another site's form
        c.post("/logout", headers={"origin": "http://testserver"})
        assert c.get("/", follow_redirects=False).status_code == 303


def test_department_head_pages_are_scoped(shared_app):
    with TestClient(shared_app) as c:
        login(c, "lena")
        home = c.get("/", follow_redirects=False)
        assert home.headers["location"] == "/departments/logistics"
        assert c.get("/departments/logistics").status_code == 200
        assert c.get("/touchpoints/home_delivery").status_code == 200
        for path in ("/departments/ecommerce", "/touchpoints/checkout"):
            r = c.get(path)
            assert r.status_code == 403, path
            assert "Go to your start page" in r.text
        # a partner's page, within the department: only the department's touch points
        partner = c.get("/partners/dhl", params={"range": "all"})
        assert partner.status_code == 200
        assert "/touchpoints/home_delivery" in partner.text
        assert "/touchpoints/checkout" not in partner.text
        dept_list = c.get("/departments").text
        assert "/departments/logistics" in dept_list and "/departments/ecommerce" not in dept_list
        # a customer's timeline shows only the department's records
        assert "home_delivery" in c.get("/customers/p2").text
        other = c.get("/customers/p1")  # p1 only ever checked out (ecommerce)
        # out of scope reads as unknown (issue 11.9): no count of the records outside it
        assert other.status_code == 422 and "within your scope" in other.text
        assert "record(s)" not in other.text and "/touchpoints/checkout" not in other.text


def test_partner_manager_and_agent_pages(shared_app):
    with TestClient(shared_app) as c:
        login(c, "paul")
        assert c.get("/partners/dhl").status_code == 200
        assert c.get("/partners/ups").status_code == 403
        assert c.get("/departments/logistics").status_code == 200  # scoped to dhl's records
    with TestClient(shared_app) as c:
        login(c, "aggie")
        assert c.get("/", follow_redirects=False).headers["location"] == "/customers"
        found = c.get("/customers", params={"q": "p1"})
        assert found.status_code == 200 and "/customers/p1" in found.text
        person = c.get("/customers/p1")
        assert person.status_code == 200
        assert "+44 20 7946 0958" not in person.text and "[PHONE]" in person.text
        for path in ("/touchpoints/checkout", "/departments/logistics", "/partners/dhl"):
            assert c.get(path).status_code == 403, path


def test_overview_for_an_analyst_shows_every_touch_point(shared_app):
    with TestClient(shared_app) as c:
        login(c, "ana")
        page = c.get("/", params={"range": "all"}).text
        for tp in ("ad_click", "checkout", "home_delivery", "support_call"):
            assert f'data-touchpoint="{tp}"' in page
        assert page.count("n = 12") >= 4


# -- every route, including those added later ------------------------------------------------

OPEN_TO_ALL = {"/api/v1/health"}
#: a customer's own view: the agent's timeline shows their churn risk and lifetime value
AGENT_MAY = {
    "/api/v1/people",
    "/api/v1/people/{person_id}",
    "/api/v1/map",
    "/api/v1/churn/risk/{person_id}",
    "/api/v1/lifetime/people/{person_id}",
    # the open cases of a customer, read only (the loop's scope rule: auth.scope.sees_case),
    # and the root causes' names those cases show
    "/api/v1/cases",
    "/api/v1/cases/{case_id}",
    "/api/v1/people/{person_id}/cases",
    "/api/v1/case-root-causes",
}


def _get_paths(app) -> list[str]:
    return sorted(
        path
        for path, ops in app.openapi()["paths"].items()
        if path.startswith("/api/v1/") and "get" in ops and path not in OPEN_TO_ALL
    )


def test_every_get_route_is_scoped(shared_app, shared):
    """Walks the OpenAPI description, so a route added without the scope dependency fails here:
    no credentials -> 401; an agent -> 403 on every analysis; a department head naming another
    department -> refused (403, or 422 where the route takes no department filter), never
    answered."""
    with TestClient(shared_app) as c:
        agent, head = key_for(shared, "aggie"), key_for(shared, "lena")
        paths = _get_paths(shared_app)
        assert len(paths) >= 8
        for path in paths:
            url = path.replace("{person_id}", "p1").replace("{theme_id}", "1")
            assert c.get(url).status_code == 401, path
            if path not in AGENT_MAY:
                r = c.get(url, headers=agent)
                assert r.status_code == 403, (path, r.status_code, r.text[:300])
            if "{" not in path and path not in AGENT_MAY:
                r = c.get(url, params={"department": "ecommerce"}, headers=head)
                assert r.status_code in (403, 422), (path, r.status_code, r.text[:300])


def test_password_guessing_is_throttled_and_pages_carry_security_headers(app):
    with TestClient(app) as c:
        for _ in range(5):
            assert (
                c.post("/login", data={"username": "ana", "password": "guess"}).status_code == 401
            )
        r = c.post("/login", data={"username": "ana", "password": PASSWORD})
        assert r.status_code == 429 and "Too many failed sign-ins" in r.text
        page = c.get("/login")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
