"""Request forgery (issue 11.8) and what follows a server error (issue 11.6).

A browser sends the session cookie with a form that another page posts at Corridor; a write that
carries the cookie must prove, by its ``Origin`` (or ``Referer``), that one of Corridor's own
pages sent it. API keys are not ambient credentials and are not checked. The browser-level
attack (a real page on another port, Chromium) is in ``test_browser.py``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.settings import Settings

PASSWORD = "correct horse battery"
OWN = "http://testserver"
RECORD = {
    "interaction_id": "x1",
    "person_id": "p1",
    "occurred_at": "2025-01-02T10:00:00Z",
    "touchpoint": "checkout",
    "channel": "web",
}


@pytest.fixture
def signed_in(ingestor, store) -> Iterator[TestClient]:
    accounts.add_user(store, "ana", PASSWORD, "analyst")
    with TestClient(create_app(Settings(), store=store)) as c:
        r = c.post("/login", data={"username": "ana", "password": PASSWORD}, follow_redirects=False)
        assert r.status_code == 303 and "corridor_session" in c.cookies
        yield c


def interactions(store) -> int:
    return int(store.query("SELECT count(*) FROM interactions")[0][0])


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://testserver:9999"},  # another port of the same host
        {"origin": "https://evil.example"},
        {"origin": "null"},  # a sandboxed frame or a data: page
        {"referer": "http://evil.example/prize.html"},
        {},  # no Origin and no Referer at all
        {"origin": "http://testserver.evil.example"},
    ],
)
def test_cookie_writes_from_another_origin_are_refused_and_store_nothing(signed_in, store, headers):
    for content_type, body in (
        ("text/plain", b'{"interaction_id": "x1", "x": "=y"}'),
        ("application/json", httpx.Request("POST", "/", json=RECORD).content),
    ):
        r = signed_in.post(
            "/api/v1/interactions",
            content=body,
            headers={**headers, "content-type": content_type},
        )
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "cross_origin_refused"
        assert "API key" in error["message"]
    assert signed_in.post("/logout", headers=headers).status_code == 403
    assert interactions(store) == 0


def test_cookie_writes_from_corridors_own_pages_are_accepted(signed_in, store):
    r = signed_in.post("/api/v1/interactions", json=RECORD, headers={"origin": OWN})
    assert r.status_code == 200, r.text
    r = signed_in.post(
        "/api/v1/interactions",
        json={**RECORD, "interaction_id": "x2"},
        headers={"referer": f"{OWN}/touchpoints/checkout"},
    )
    assert r.status_code == 200, r.text
    assert interactions(store) == 2


def test_the_default_port_and_case_do_not_matter(signed_in, store):
    r = signed_in.post(
        "/api/v1/interactions", json=RECORD, headers={"origin": "HTTP://TestServer:80"}
    )
    assert r.status_code == 200, r.text


def test_api_keys_are_not_ambient_so_origin_is_not_checked(ingestor, store):
    accounts.add_user(store, "etl", PASSWORD, "analyst")
    _, secret = accounts.create_key(store, "etl")
    with TestClient(create_app(Settings(), store=store)) as c:
        r = c.post(
            "/api/v1/interactions",
            json=RECORD,
            headers={"authorization": f"Bearer {secret}", "origin": "https://tools.example"},
        )
        assert r.status_code == 200, r.text


def test_a_sign_in_form_posted_by_another_site_is_refused(ingestor, store):
    """Login CSRF: another site signing the visitor in as the attacker's account."""
    accounts.add_user(store, "ana", PASSWORD, "analyst")
    with TestClient(create_app(Settings(), store=store)) as c:
        form = {"username": "ana", "password": PASSWORD}
        r = c.post("/login", data=form, headers={"origin": "https://evil.example"})
        assert r.status_code == 403 and "corridor_session" not in c.cookies
        r = c.post("/login", data=form, headers={"origin": OWN}, follow_redirects=False)
        assert r.status_code == 303 and "corridor_session" in c.cookies


def test_trusted_origins_let_a_proxys_public_address_through(ingestor, store):
    accounts.add_user(store, "ana", PASSWORD, "analyst")
    settings = Settings(trusted_origins="https://cx.example.com, https://other.example")
    with TestClient(create_app(settings, store=store)) as c:
        c.post("/login", data={"username": "ana", "password": PASSWORD})
        ok = c.post(
            "/api/v1/interactions", json=RECORD, headers={"origin": "https://cx.example.com"}
        )
        assert ok.status_code == 200, ok.text
        bad = c.post(
            "/api/v1/interactions", json=RECORD, headers={"origin": "https://cx.example.org"}
        )
        assert bad.status_code == 403


def test_secure_cookies_refuse_a_plain_http_origin(ingestor, store):
    """With CORRIDOR_SECURE_COOKIES the site is served over HTTPS: an http:// page on the same
    host (one a network attacker can forge) may not write."""
    accounts.add_user(store, "ana", PASSWORD, "analyst")
    with TestClient(
        create_app(Settings(secure_cookies=True), store=store), base_url="https://testserver"
    ) as c:
        c.post(
            "/login",
            data={"username": "ana", "password": PASSWORD},
            headers={"origin": "https://testserver"},
        )
        bad = c.post("/api/v1/interactions", json=RECORD, headers={"origin": "http://testserver"})
        assert bad.status_code == 403
        ok = c.post("/api/v1/interactions", json=RECORD, headers={"origin": "https://testserver"})
        assert ok.status_code == 200, ok.text


# -- a 500 keeps the connection (11.6) ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_reply(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length"
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed inside a reply")
        body += chunk
    return status, body


def test_after_a_500_the_keep_alive_connection_still_serves_the_next_request(ingestor, store):
    """uvicorn closes the connection when the app re-raises after its 500 reply (Starlette's
    ServerErrorMiddleware does): the client's next request on it then fails too."""
    app = create_app(Settings(auth="off"), store=store)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("an unexpected fault")

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            ask = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            sock.sendall(ask % b"/boom")
            status, body = _read_reply(sock)
            assert status == 500 and b'"internal_error"' in body and b"Traceback" not in body
            sock.sendall(ask % b"/api/v1/health")  # the same connection
            status, body = _read_reply(sock)
            assert status == 200, body
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain; charset=utf-8", "text/html"])
def test_the_api_reads_json_only_when_it_is_sent_as_json(ingestor, store, content_type):
    """The content types an HTML form can send cross-site are not read as JSON (415), even with
    an API key and a body that is valid JSON."""
    with TestClient(create_app(Settings(auth="off"), store=store)) as c:
        body = httpx.Request("POST", "/", json=RECORD).content
        r = c.post("/api/v1/interactions", content=body, headers={"content-type": content_type})
        assert r.status_code == 415 and "application/json" in r.json()["error"]["message"]
        for ok in ("application/json", "application/vnd.corridor+json", "application/x-ndjson"):
            r = c.post("/api/v1/interactions", content=body, headers={"content-type": ok})
            assert r.status_code == 200, r.text
    assert interactions(store) == 1
