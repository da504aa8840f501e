"""The sign-in throttle (issue 11.10): per account and client address, with backoff, in the store.

Five wrong passwords for one name from one address lock that pair only: the admin signing in
from the same address, and the same name from another address, are not slowed. The state is a
table, so a second app on the same store (another server process) sees it, and a restart does
not reset it. API keys never feed the throttle, so bad keys cannot lock anyone out.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.auth.throttle import LoginThrottle
from corridor.settings import Settings
from corridor.store import open_store

PASSWORD = "correct horse battery"
OFFICE, HOME = ("10.1.1.1", 40000), ("192.0.2.7", 40000)
OWN = {"origin": "http://testserver"}


@pytest.fixture
def users(store):
    for name, role in (("root", "admin"), ("ana", "analyst")):
        accounts.add_user(store, name, PASSWORD, role)
    return store


def sign_in(app, user: str, password: str, client: tuple[str, int] = OFFICE) -> int:
    with TestClient(app, client=client, headers=OWN, follow_redirects=False) as c:
        return c.post("/login", data={"username": user, "password": password}).status_code


def test_a_guesser_locks_only_the_pair_not_the_admin_at_the_same_address(users):
    app = create_app(Settings(), store=users)
    for _ in range(5):
        assert sign_in(app, "ana", "guess") == 401
    with TestClient(app, client=OFFICE, headers=OWN) as c:
        r = c.post("/login", data={"username": "ana", "password": PASSWORD})
    assert r.status_code == 429  # the pair is locked, even with the right password
    text = html.unescape(r.text)
    assert "Too many failed sign-ins as 'ana' from this address; try again in" in text
    assert "Other accounts are not affected" in text
    # the admin at the same address, and ana at another address, sign in as ever
    assert sign_in(app, "root", PASSWORD, OFFICE) == 303
    assert sign_in(app, "ana", PASSWORD, HOME) == 303
    # guessing many names from one address locks none of the others
    for name in ("root", "x1", "x2"):
        assert sign_in(app, name, "guess") == 401
    assert sign_in(app, "root", PASSWORD, OFFICE) == 303  # its failure is cleared by success


def test_the_throttle_holds_across_apps_on_one_store(store_url):
    with open_store(store_url) as first:
        accounts.add_user(first, "ana", PASSWORD, "analyst")
        for _ in range(5):
            assert sign_in(create_app(Settings(), store=first), "ana", "guess") == 401
    # a new app over a new connection: another server process, or the same one restarted
    with open_store(store_url) as second:
        assert sign_in(create_app(Settings(), store=second), "ana", PASSWORD) == 429
        assert sign_in(create_app(Settings(), store=second), "ana", PASSWORD, HOME) == 303


def test_two_processes_at_once_share_the_throttle_on_postgres(store_url, engine):
    if engine != "postgres":
        pytest.skip("a DuckDB file is open in one process at a time")
    with open_store(store_url) as a, open_store(store_url) as b:
        accounts.add_user(a, "ana", PASSWORD, "analyst")
        app_a, app_b = create_app(Settings(), store=a), create_app(Settings(), store=b)
        for i in range(5):
            assert sign_in(app_a if i % 2 else app_b, "ana", "guess") == 401
        assert sign_in(app_a, "ana", PASSWORD) == 429
        assert sign_in(app_b, "ana", PASSWORD) == 429


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_backoff_doubles_to_a_cap_and_success_or_time_clears_it(store):
    clock = Clock()
    t = LoginThrottle(store, clock=clock)
    pair = ("ana", "10.1.1.1")
    for _ in range(4):
        assert t.failed(*pair) == 0.0
        assert t.wait(*pair) == 0.0
    assert t.failed(*pair) == 30.0  # the fifth locks the pair
    clock.tick(10)
    assert t.wait(*pair) == pytest.approx(20.0)
    assert t.wait("ana", "10.9.9.9") == 0.0 and t.wait("root", "10.1.1.1") == 0.0
    clock.tick(21)
    assert t.wait(*pair) == 0.0
    locks = []
    for _ in range(6):  # each failure after the lock has passed doubles it, up to the cap
        locks.append(t.failed(*pair))
        clock.tick(locks[-1] + 1)
    assert locks == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0]
    t.succeeded(*pair)
    assert t.failed(*pair) == 0.0  # a success starts the count again
    for _ in range(3):
        t.failed(*pair)
    clock.tick(3601)  # an hour without failures: forgotten
    assert t.failed(*pair) == 0.0


def test_attempts_while_locked_are_neither_checked_nor_counted(users):
    app = create_app(Settings(), store=users)
    for _ in range(5):
        sign_in(app, "ana", "guess")
    for _ in range(10):
        assert sign_in(app, "ana", "guess") == 429
    rows = users.query("SELECT failures FROM login_failures WHERE username = 'ana'")
    assert rows == [(5,)]


def test_bad_api_keys_cannot_lock_anyone_out(users):
    app = create_app(Settings(), store=users)
    _, good = accounts.create_key(users, "root")
    with TestClient(app, client=OFFICE) as c:
        for i in range(30):
            for header in ("Authorization", "X-API-Key"):
                value = f"Bearer cor_{i:012x}_nope" if header == "Authorization" else "cor_x_y"
                r = c.get("/api/v1/users", headers={header: value})
                assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
        assert (
            c.get("/api/v1/users", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        )
    assert users.count("login_failures") == 0
    assert sign_in(app, "root", PASSWORD) == 303
