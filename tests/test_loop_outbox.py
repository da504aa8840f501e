"""The durable outbox on both engines: notifications commit with the caller's transaction, are
delivered to a real HTTP receiver signed with the Standard Webhooks scheme (verified there with
the ``standardwebhooks`` package), retried with backoff on timeouts, refused connections, 408,
429 (Retry-After) and 5xx, failed at once on other 4xx, given up after N attempts, logged and
redelivered; private targets are refused unless an admin allowed them; mail goes through a
real SMTP server (aiosmtpd) and per-user digests fold into one mail per period."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from standardwebhooks import Webhook
from typer.testing import CliRunner

from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.cli import app as cli_app
from corridor.loop import mail, outbox, webhooks
from corridor.loop.outbox import Attempt, Notification
from corridor.settings import Settings
from corridor.store import Store, open_store

OWNER = "test-owner"


# -- a real webhook receiver ------------------------------------------------------------------
@dataclass
class Received:
    webhook_id: str
    timestamp: str
    signature: str
    body: bytes
    verified: bool
    payload: dict[str, Any] | None
    #: time.monotonic() when it arrived
    at: float = 0.0


@dataclass
class Receiver:
    """``http.server`` in a thread: records every request, verifies its signature, answers with
    the next scripted reply (status, headers, delay) or 200, and processes each webhook-id once
    (as a receiver that honours webhook-id should)."""

    secret: str | None = None
    script: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    processed: dict[str, int] = field(default_factory=dict)  # webhook-id -> times processed
    duplicates: int = 0  # deliveries of an id already processed (dropped)
    delay: float = 0.0  # seconds each request takes to answer
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.handle(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def handle(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        at = time.monotonic()
        headers = {k.lower(): v for k, v in h.headers.items()}
        payload, verified = None, False
        if self.secret is not None:
            try:
                payload = Webhook(self.secret).verify(body, headers)
                verified = True
            except Exception:
                verified = False
        wid = headers.get("webhook-id", "")
        got = Received(
            wid,
            headers.get("webhook-timestamp", ""),
            headers.get("webhook-signature", ""),
            body,
            verified,
            payload,
            at,
        )
        with self.lock:
            status, extra, delay = self.script.pop(0) if self.script else (200, {}, self.delay)
        if delay:
            time.sleep(delay)
        if 200 <= status < 300 and verified:
            with self.lock:  # processed once per webhook-id; a repeat is acknowledged, dropped
                if wid in self.processed:
                    self.duplicates += 1
                else:
                    self.processed[wid] = 1
        try:
            h.send_response(status)
            for k, v in extra.items():
                h.send_header(k, v)
            h.send_header("content-length", "0")
            h.end_headers()
        except OSError:  # the sender gave up waiting
            pass
        with self.arrived:
            self.requests.append(got)
            self.arrived.notify_all()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= n, timeout)
            return list(self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def hook(store: Store, receiver: Receiver, **kw: Any) -> webhooks.Endpoint:
    """An endpoint on the loopback receiver (allowed, as an admin would)."""
    e = webhooks.add_endpoint(store, receiver.url, allow_private=True, **kw)
    receiver.secret = e.secret
    return e


def notify(store: Store, event: str = "case.opened", key: str = "k1", **kw: Any) -> int:
    with store.transaction() as tx:
        return outbox.enqueue(tx, event, {"case": 1}, key=key, **kw)


def run_dispatch(store: Store, *, max_attempts: int = 8, timeout: float = 5.0) -> Any:
    with webhooks.WebhookSender(store, timeout_s=timeout) as s:
        return outbox.dispatch(
            store,
            {"webhook": s.deliver},
            owner=OWNER,
            max_attempts=max_attempts,
            base_s=60.0,
            lease_s=30,
        )


def make_due(store: Store) -> None:
    """Every pending row due now (the retry delays are real times)."""
    with store.transaction() as tx:
        tx.execute(
            "UPDATE outbox SET next_attempt_at = ? WHERE state = 'pending'",
            [datetime.now(UTC) - timedelta(seconds=1)],
        )


def one(store: Store) -> Notification:
    rows = outbox.list_notifications(store)
    assert len(rows) == 1, rows
    return rows[0]


# -- enqueue ----------------------------------------------------------------------------------
def test_enqueue_commits_with_the_callers_transaction(store: Store, receiver: Receiver) -> None:
    a = hook(store, receiver)  # every event
    b = webhooks.add_endpoint(store, receiver.url, allow_private=True, event_types=["case.*"])
    webhooks.add_endpoint(store, receiver.url, allow_private=True, event_types=["alert.fired"])
    mail.set_preference(store, "lena", "lena@example.com", mode="immediate")
    mail.set_preference(store, "ana", "ana@example.com", mode="digest", digest="hourly")
    mail.set_preference(store, "olaf", "olaf@example.com", mode="off")

    # the caller's change rolls back: no notification either
    with pytest.raises(RuntimeError), store.transaction() as tx:
        assert outbox.enqueue(tx, "case.opened", {"case": 7}, key="case-7-opened") == 2
        raise RuntimeError("the case change failed")
    assert outbox.list_notifications(store) == []

    with store.transaction() as tx:
        n = outbox.enqueue(
            tx,
            "case.opened",
            {"case": 7, "title": "Late delivery"},
            key="case-7-opened",
            emails=["head@example.com", "head@example.com"],
            users=["lena", "ana", "olaf", "nobody"],
        )
    assert n == 5  # 2 endpoints, 1 address (named twice), lena by mail, ana's digest
    rows = sorted(outbox.list_notifications(store), key=lambda r: (r.target_kind, r.target))
    assert [(r.target_kind, r.target) for r in rows] == [
        ("digest", "ana"),
        ("email", "head@example.com"),
        ("email", "lena@example.com"),
        ("webhook", str(a.id)),
        ("webhook", str(b.id)),
    ]
    r = rows[0]
    assert r.state == "pending" and r.attempts == 0 and r.key == "case-7-opened"
    assert r.payload["type"] == "case.opened" and r.payload["data"]["case"] == 7
    assert datetime.fromisoformat(r.payload["timestamp"]).tzinfo is not None

    # the same key again writes nothing: a retried caller does not notify twice
    with store.transaction() as tx:
        assert outbox.enqueue(tx, "case.opened", {"case": 7}, key="case-7-opened") == 0
    assert len(outbox.list_notifications(store)) == 5
    with pytest.raises(ValueError), store.transaction() as tx:
        outbox.enqueue(tx, "case.opened", {}, key=" ")


def test_filters_match_types_and_prefixes() -> None:
    assert outbox.matches("", "anything")
    assert outbox.matches("case.*,alert.fired", "case.resolved")
    assert outbox.matches("case.*,alert.fired", "alert.fired")
    assert not outbox.matches("case.*,alert.fired", "alert.cleared")
    assert not outbox.matches("case.opened", "case.opened.again")


# -- signed delivery, retries, give-up, redelivery ----------------------------------------------
def test_signed_delivery_keeps_its_id_across_retries(store: Store, receiver: Receiver) -> None:
    hook(store, receiver)
    receiver.script = [(503, {}, 0.0), (500, {}, 0.0)]
    notify(store, key="case-1-opened")
    for _ in range(3):
        run_dispatch(store)
        make_due(store)
    got = receiver.wait_for(3)
    assert len(got) == 3
    assert {g.webhook_id for g in got} == {"case-1-opened"}
    assert all(g.verified for g in got), "every attempt verifies with standardwebhooks"
    assert got[-1].payload is not None and got[-1].payload["type"] == "case.opened"
    assert got[-1].payload["data"] == {"case": 1}
    assert all(g.signature.startswith("v1,") for g in got)
    assert abs(int(got[-1].timestamp) - time.time()) < 60
    row = one(store)
    assert row.state == "delivered" and row.delivered_at is not None and row.last_error is None
    log = outbox.list_attempts(store, row.id)
    assert [(a.attempt, a.status_code) for a in log] == [(1, 503), (2, 500), (3, 200)]
    assert all(a.duration_ms >= 0 for a in log) and log[0].error and log[0].error.startswith("HTTP")
    assert receiver.processed == {"case-1-opened": 1}
    # a signature made with another secret does not verify
    other = Webhook(webhooks.new_secret())
    with pytest.raises(Exception, match="signature"):
        g = got[-1]
        other.verify(
            g.body,
            {
                "webhook-id": g.webhook_id,
                "webhook-timestamp": g.timestamp,
                "webhook-signature": g.signature,
            },
        )


def test_retry_after_408_and_4xx(store: Store, receiver: Receiver) -> None:
    hook(store, receiver)
    receiver.script = [(429, {"Retry-After": "120"}, 0.0)]
    notify(store, key="a")
    before = datetime.now(UTC)
    run_dispatch(store)
    row = one(store)
    assert row.state == "pending" and row.attempts == 1 and "429" in (row.last_error or "")
    wait = (row.next_attempt_at - before).total_seconds()
    assert 115 < wait < 130, wait  # the receiver's Retry-After, not the 10 ms backoff
    run_dispatch(store)  # not due yet: nothing sent
    assert len(receiver.requests) == 1

    receiver.script = [(408, {}, 0.0), (400, {}, 0.0)]
    make_due(store)
    run_dispatch(store)  # 408: worth another try
    assert one(store).state == "pending"
    make_due(store)
    run_dispatch(store)  # 400: fails at once, not retried
    row = one(store)
    assert row.state == "failed" and row.attempts == 3 and row.last_error == "HTTP 400"
    make_due(store)
    run_dispatch(store)
    assert len(receiver.requests) == 3


def test_gives_up_after_max_attempts_then_redelivers(store: Store, receiver: Receiver) -> None:
    hook(store, receiver)
    receiver.script = [(500, {}, 0.0)] * 3
    notify(store, key="case-9-escalated")
    for _ in range(4):
        run_dispatch(store, max_attempts=3)
        make_due(store)
    row = one(store)
    assert row.state == "failed" and row.attempts == 3
    assert "gave up after 3 attempts" in (row.last_error or "")
    assert len(receiver.requests) == 3

    again = outbox.redeliver(store, row.id)
    assert again.state == "pending" and again.attempts == 0
    run_dispatch(store, max_attempts=3)
    row = one(store)
    assert row.state == "delivered"
    assert [a.attempt for a in outbox.list_attempts(store, row.id)] == [1, 2, 3, 4]
    assert {r.webhook_id for r in receiver.requests} == {"case-9-escalated"}
    # a redelivery of a delivered one: sent again, with the same id (the receiver drops it)
    outbox.redeliver(store, row.id)
    run_dispatch(store)
    assert len(receiver.wait_for(5)) == 5 and receiver.processed == {"case-9-escalated": 1}
    with pytest.raises(outbox.NotificationNotFoundError):
        outbox.redeliver(store, 999)
    # its endpoint removed, there is nowhere to send it again: said so, the row left as it is
    webhooks.remove_endpoint(store, int(row.target))
    with pytest.raises(outbox.NotRedeliverableError, match="which was removed"):
        outbox.redeliver(store, row.id)
    assert one(store).state == "delivered"


def test_timeouts_and_refused_connections_are_retried(store: Store, receiver: Receiver) -> None:
    hook(store, receiver)
    receiver.script = [(200, {}, 1.5)]  # answers after the sender stopped waiting
    notify(store, key="slow")
    run_dispatch(store, timeout=0.3)
    row = one(store)
    assert row.state == "pending" and "no answer within 0.3 s" in (row.last_error or "")

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    e = webhooks.add_endpoint(store, f"http://127.0.0.1:{closed}/x", allow_private=True)
    notify(store, key="nobody-home", endpoints=[e.id])
    run_dispatch(store)
    dead = next(r for r in outbox.list_notifications(store) if r.key == "nobody-home")
    assert dead.state == "pending" and "cannot reach" in (dead.last_error or "")
    assert outbox.list_attempts(store, dead.id)[0].status_code is None


def test_backoff_grows_with_jitter() -> None:
    delays = [outbox.retry_delay(n, 10.0) for n in range(1, 9)]
    for n, d in enumerate(delays, start=1):
        nominal = min(10.0 * 3 ** (n - 1), outbox.MAX_DELAY_S)
        assert 0.8 * nominal <= d <= 1.2 * nominal
    assert len({round(outbox.retry_delay(3, 10.0), 6) for _ in range(20)}) > 1  # jitter


# -- private targets --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.9",
        "172.16.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_named(address: str) -> None:
    assert webhooks.check_address(address) is not None


def test_public_addresses_pass() -> None:
    assert webhooks.check_address("93.184.216.34") is None
    assert webhooks.check_address("2606:4700:4700::1111") is None


def test_private_targets_are_refused_unless_allowed(store: Store, receiver: Receiver) -> None:
    for url in (
        "http://127.0.0.1:9/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://localhost:8080/",
        "http://10.0.0.5/hook",
    ):
        with pytest.raises(webhooks.PrivateTargetError, match="allow private"):
            webhooks.add_endpoint(store, url)
    for url in ("ftp://example.com/x", "http://user:pw@example.com/x", "not a url"):
        with pytest.raises(webhooks.InvalidEndpointError):
            webhooks.add_endpoint(store, url)

    # a host name is checked when it is resolved, at delivery: this machine's own name
    # resolves to a loopback or private address, so the attempt is refused, not sent
    name = socket.gethostname()
    try:
        resolved = {i[4][0] for i in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    except OSError:
        pytest.skip(f"this machine's name {name} does not resolve")
    if any(webhooks.check_address(str(a)) is None for a in resolved):
        pytest.skip(f"{name} resolves to a public address here")
    port = receiver.server.server_address[1]
    sneaky = webhooks.add_endpoint(store, f"http://{name}:{port}/hook")
    assert not sneaky.allow_private
    notify(store, key="sneaky")
    run_dispatch(store)
    row = one(store)
    assert row.state == "failed" and "webhook target refused" in (row.last_error or "")
    assert receiver.requests == []

    # allowed by an admin, the same name is delivered to
    allowed = webhooks.add_endpoint(store, f"http://{name}:{port}/hook", allow_private=True)
    receiver.secret = allowed.secret
    notify(store, key="allowed", endpoints=[allowed.id])
    run_dispatch(store)
    if receiver.wait_for(1, timeout=5):
        assert receiver.requests[0].webhook_id == "allowed"


# -- two claimers -----------------------------------------------------------------------------
def test_two_claimers_never_take_the_same_row(store: Store, store_url: str) -> None:
    e = webhooks.add_endpoint(store, "http://127.0.0.1:9/x", allow_private=True)
    with store.transaction() as tx:
        for i in range(60):
            outbox.enqueue(tx, "case.opened", {"i": i}, key=f"k{i}", endpoints=[e.id])
    # on PostgreSQL a second store is a second connection, as a second server process has
    other = open_store(store_url) if store.dialect == "postgres" else store
    taken: dict[str, list[int]] = {"a": [], "b": []}

    def worker(name: str, s: Store) -> None:
        while True:
            rows = outbox.claim(s, name, limit=3, lease_s=60)
            if not rows:
                return
            taken[name] += [r.id for r in rows]

    try:
        threads = [
            threading.Thread(target=worker, args=(n, s)) for n, s in (("a", store), ("b", other))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        if other is not store:
            other.close()
    both = taken["a"] + taken["b"]
    assert len(both) == 60 and len(set(both)) == 60, "no row claimed twice, none missed"
    # claimed rows are not due again until their lease runs out, except for the only sender
    # (the scheduler's dispatch job), to which a claim of another owner is a dead run's
    assert outbox.claim(store, "c") == []
    assert len(outbox.claim(store, "c", limit=5, exclusive=True)) == 5
    later = datetime.now(UTC) + timedelta(seconds=61)
    assert len(outbox.claim(store, "d", limit=100, now=later)) == 60


# -- e-mail -----------------------------------------------------------------------------------
class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse: list[str] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse:
            return self.refuse.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def mail_dispatch(store: Store, port: int, **kw: Any) -> Any:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_from="cx@example.com", **kw)
    return outbox.dispatch(
        store,
        {"email": mail.MailSender(settings).deliver},
        owner=OWNER,
        base_s=60.0,
    )


def test_mail_goes_through_a_real_smtp_server(store: Store, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    with store.transaction() as tx:
        outbox.enqueue(
            tx,
            "case.opened",
            {"case": 3, "title": "Parcel lost"},
            key="case-3",
            emails=["head@example.com"],
        )
    report = mail_dispatch(store, port)
    assert report.delivered == 1
    ((sender, to, raw),) = inbox.messages
    assert sender == "cx@example.com" and to == ["head@example.com"]
    msg = message_from_bytes(raw)
    assert msg["Subject"] == "[Corridor] case.opened: Parcel lost"
    assert msg["X-Corridor-Key"] == "case-3" and msg["Message-ID"].startswith("<")
    body = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    assert "Parcel lost" in body.get_payload(decode=True).decode()
    attached = next(p for p in msg.walk() if p.get_content_type() == "application/json")
    assert json.loads(attached.get_payload(decode=True))["data"]["case"] == 3
    row = one(store)
    assert row.state == "delivered"
    assert outbox.list_attempts(store, row.id)[0].status_code == 250

    # the same Message-ID on a resend (from the idempotency key)
    outbox.redeliver(store, row.id)
    mail_dispatch(store, port)
    assert message_from_bytes(inbox.messages[1][2])["Message-ID"] == msg["Message-ID"]


def test_mail_refusals_and_outages(store: Store, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    inbox.refuse = ["451 4.3.0 try again later", "550 5.1.1 no such user"]
    notify(store, key="m1", emails=["x@example.com"])
    mail_dispatch(store, port)
    assert one(store).state == "pending" and "451" in (one(store).last_error or "")
    make_due(store)
    mail_dispatch(store, port)
    row = one(store)
    assert row.state == "failed" and "550" in (row.last_error or "")
    assert [a.status_code for a in outbox.list_attempts(store, row.id)] == [451, 550]
    # no server at that port: retried; no SMTP host set: waits (retried) with a clear error
    outbox.redeliver(store, row.id)
    mail_dispatch(store, _free_port())
    assert one(store).state == "pending" and "SMTP 127.0.0.1" in (one(store).last_error or "")
    make_due(store)
    outbox.dispatch(store, {"email": mail.MailSender(Settings()).deliver}, owner=OWNER)
    assert "CORRIDOR_SMTP_HOST" in (one(store).last_error or "")


def test_digests_fold_into_one_mail_per_user_and_period(
    store: Store, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    hook = webhooks.add_endpoint(store, "http://127.0.0.1:9/hook", allow_private=True)
    mail.set_preference(store, "lena", "lena@example.com", mode="digest", digest="hourly")
    mail.set_preference(store, "ana", "ana@example.com", mode="immediate")
    with pytest.raises(mail.PreferenceError):
        mail.set_preference(store, "x", "x@example.com", mode="sometimes")
    for i in range(3):
        with store.transaction() as tx:
            outbox.enqueue(
                tx,
                "case.opened",
                {"case": i, "title": f"Case {i}"},
                key=f"c{i}",
                users=["lena", "ana"],
            )
    mail_dispatch(store, port)
    assert sorted(m[1][0] for m in inbox.messages) == ["ana@example.com"] * 3

    assert mail.send_digests(store) == 0  # lena's hour has not passed yet
    later = datetime.now(UTC) + timedelta(hours=1, minutes=1)
    assert mail.send_digests(store, now=later) == 1
    assert mail.send_digests(store, now=later) == 0  # folded once
    mail_dispatch(store, port)
    # a digest is mail only: the endpoint taking every event got the cases, not the digest
    to_hook = outbox.list_notifications(store, target_kind=outbox.WEBHOOK)
    assert sorted(n.key for n in to_hook) == ["c0", "c1", "c2"]
    assert {n.target for n in to_hook} == {str(hook.id)}
    digest = [m for m in inbox.messages if m[1] == ["lena@example.com"]]
    assert len(digest) == 1
    msg = message_from_bytes(digest[0][2])
    assert msg["Subject"] == "[Corridor] 3 notifications (hourly)"
    text = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    body = text.get_payload(decode=True).decode()
    assert all(f"Case {i}" in body for i in range(3))
    states = {r.key: r.state for r in outbox.list_notifications(store, target_kind="digest")}
    assert states == {"c0": "digested", "c1": "digested", "c2": "digested"}
    pref = mail.get_preference(store, "lena")
    assert pref is not None and pref.last_digest_at is not None
    # a new line waits for the next period after the last digest
    with store.transaction() as tx:
        outbox.enqueue(tx, "case.closed", {"case": 9}, key="c9", users=["lena"])
    assert mail.send_digests(store, now=later + timedelta(minutes=30)) == 0
    assert mail.send_digests(store, now=later + timedelta(minutes=61)) == 1


# -- a sender that breaks is one failed attempt -------------------------------------------------
def test_a_broken_sender_loses_nothing(store: Store) -> None:
    notify(store, key="e1", emails=["a@example.com"])

    def broken(row: Notification) -> Attempt:
        raise RuntimeError("bug")

    outbox.dispatch(store, {"email": broken}, owner=OWNER, base_s=0.01)
    row = one(store)
    assert row.state == "pending" and "RuntimeError: bug" in (row.last_error or "")


# -- the admin API ----------------------------------------------------------------------------
def _seed_users(store: Store) -> dict[str, dict[str, str]]:
    accounts.add_user(store, "root", "admin-pass-1", "admin")
    accounts.add_user(store, "ana", "analyst-pass", "analyst")
    keys = {}
    for name in ("root", "ana"):
        _, secret = accounts.create_key(store, name, "test")
        keys[name] = {"Authorization": f"Bearer {secret}"}
    return keys


def test_admin_api_manages_endpoints_and_deliveries(store: Store, receiver: Receiver) -> None:
    keys = _seed_users(store)
    app = create_app(Settings(text_analysis="off", model_refresh="on_request"), store=store)
    with TestClient(app) as c:
        admin, analyst = keys["root"], keys["ana"]
        assert c.get("/api/v1/admin/webhooks").status_code == 401
        r = c.post(
            "/api/v1/admin/webhooks",
            json={"url": receiver.url, "allow_private": True},
            headers=analyst,
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert c.get("/api/v1/admin/deliveries", headers=analyst).status_code == 403
        assert c.get("/api/v1/admin/jobs", headers=analyst).status_code == 403

        # the refusal: a loopback receiver without allow_private
        r = c.post("/api/v1/admin/webhooks", json={"url": receiver.url}, headers=admin)
        assert r.status_code == 422 and "allow private" in r.json()["error"]["message"]

        r = c.post(
            "/api/v1/admin/webhooks",
            json={
                "url": receiver.url,
                "allow_private": True,
                "event_types": ["webhook.*"],
                "description": "the test receiver",
            },
            headers=admin,
        )
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["secret"].startswith("whsec_") and made["event_types"] == ["webhook.*"]
        receiver.secret = made["secret"]
        r = c.get("/api/v1/admin/deliveries", params={"nope": "1"}, headers=admin)
        assert r.status_code == 422
        assert "unknown query parameter(s) nope; allowed: state, endpoint, limit" in r.text
        r = c.post("/api/v1/admin/webhooks", json={"url": "http://a.example/\x00"}, headers=admin)
        assert r.status_code == 422 and "control characters" in r.text
        # a mistyped event type would never be sent anything: refused, with the known ones
        r = c.post(
            "/api/v1/admin/webhooks",
            json={"url": receiver.url, "allow_private": True, "event_types": ["case.opend"]},
            headers=admin,
        )
        assert r.status_code == 422
        assert "'case.opend' matches no event" in r.json()["error"]["message"]
        assert "case.opened" in r.json()["error"]["message"]
        listed = c.get("/api/v1/admin/webhooks", headers=admin).json()
        assert [e["id"] for e in listed] == [made["id"]] and "secret" not in listed[0]

        # a test event: enqueued in a transaction and delivered by the running scheduler
        started = time.monotonic()
        r = c.post(f"/api/v1/admin/webhooks/{made['id']}/test", headers=admin)
        assert r.status_code == 201, r.text
        note = r.json()
        got = receiver.wait_for(1, timeout=10)
        assert got and got[0].verified and got[0].webhook_id == note["key"]
        assert got[0].payload is not None and got[0].payload["type"] == "webhook.test"
        assert time.monotonic() - started < 5

        def detail() -> dict[str, Any]:
            return c.get(f"/api/v1/admin/deliveries/{note['id']}", headers=admin).json()

        deadline = time.monotonic() + 10
        while detail()["state"] != "delivered" and time.monotonic() < deadline:
            time.sleep(0.05)
        d = detail()
        assert d["state"] == "delivered" and d["log"][0]["status_code"] == 200
        assert d["payload"]["data"]["endpoint"] == made["id"]
        rows = c.get(
            "/api/v1/admin/deliveries", params={"state": "delivered"}, headers=admin
        ).json()
        assert [x["id"] for x in rows] == [note["id"]]

        r = c.post(f"/api/v1/admin/deliveries/{note['id']}/redeliver", headers=admin)
        assert r.status_code == 200 and r.json()["state"] == "pending"
        again = receiver.wait_for(2, timeout=10)
        assert len(again) == 2 and again[1].webhook_id == note["key"]

        jobs = {j["name"]: j for j in c.get("/api/v1/admin/jobs", headers=admin).json()}
        assert {"outbox.dispatch", "digests"} <= set(jobs)
        assert jobs["outbox.dispatch"]["runs"] >= 1

        for path, code in (
            ("/api/v1/admin/deliveries/999", 404),
            ("/api/v1/admin/deliveries/0", 422),
        ):
            r = c.get(path, headers=admin)
            assert r.status_code == code and set(r.json()) == {"error"}
        r = c.post("/api/v1/admin/webhooks/999/test", headers=admin)
        assert r.status_code == 404 and r.json()["error"]["code"] == "endpoint_not_found"
        r = c.delete(f"/api/v1/admin/webhooks/{made['id']}", headers=admin)
        assert r.status_code == 200 and r.json()["id"] == made["id"]
        assert c.delete(f"/api/v1/admin/webhooks/{made['id']}", headers=admin).status_code == 404

        ops = app.openapi()["paths"]
        for path in ("/api/v1/admin/webhooks", "/api/v1/admin/deliveries/{notification_id}"):
            for op in ops[path].values():
                assert op["summary"] and {"401", "403"} <= set(op["responses"])


# -- the CLI ----------------------------------------------------------------------------------
def test_cli_webhooks(store_url: str, receiver: Receiver) -> None:
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli_app, [*args, "--store", store_url], env={"COLUMNS": "200"})

    open_store(store_url).close()
    r = run("webhooks", "add", receiver.url)
    assert r.exit_code != 0 and "allow private" in str(r.exception or r.output)
    r = run("webhooks", "add", receiver.url, "--allow-private", "--event", "webhook.*")
    assert r.exit_code == 0, r.output
    assert "webhook endpoint 1" in r.output and "whsec_" in r.output
    r = run("webhooks", "list")
    assert r.exit_code == 0 and "127.0.0.1" in r.output and "webhook.*" in r.output
    r = run("webhooks", "test", "1")
    assert r.exit_code == 0 and "notification 1" in r.output, r.output
    r = run("webhooks", "deliveries")
    assert r.exit_code == 0 and "pending" in r.output and "webhook.test" in r.output
    with open_store(store_url) as s:
        receiver.secret = webhooks.get_endpoint(s, 1).secret
        run_dispatch(s)
    r = run("webhooks", "deliveries", "1")
    assert r.exit_code == 0 and "delivered" in r.output and "200" in r.output, r.output
    r = run("webhooks", "redeliver", "1")
    assert r.exit_code == 0 and "due again" in r.output
    r = run("webhooks", "deliveries", "--state", "pending")
    assert r.exit_code == 0 and "webhook.test" in r.output
    r = run("webhooks", "deliveries", "--state", "nonsense")
    assert r.exit_code != 0
    r = run("webhooks", "add", receiver.url, "--allow-private", "--batch-max", "5000")
    assert r.exit_code != 0 and "1,000" in str(r.exception or r.output)
    r = run("webhooks", "add", receiver.url, "--allow-private", "--batch-max", "25")
    assert r.exit_code == 0 and "up to 25 events per request" in r.output, r.output
    with open_store(store_url) as s:
        assert [e.batch_max for e in webhooks.list_endpoints(s)] == [1, 25]
    r = run("webhooks", "remove", "2")
    assert r.exit_code == 0
    r = run("webhooks", "remove", "1")
    assert r.exit_code == 0 and "removed webhook endpoint 1" in r.output
    r = run("webhooks", "deliveries", "1")
    assert "cancelled" in r.output
    assert "no webhook endpoints" in run("webhooks", "list").output


def test_a_paused_endpoint_keeps_its_events_until_resumed(store: Store, receiver: Receiver) -> None:
    """Disable = pause (a receiver down for maintenance): events before and during the pause are
    queued, none is sent or cancelled while it lasts, and all go out once it is enabled again."""
    e = hook(store, receiver)
    notify(store, key="before-pause")
    assert not webhooks.set_enabled(store, e.id, False).enabled
    notify(store, key="during-pause")
    report = run_dispatch(store)
    assert receiver.processed == {}
    rows = outbox.list_notifications(store)
    assert sorted(r.key for r in rows) == ["before-pause", "during-pause"]
    assert {r.state for r in rows} == {"pending"} and {r.attempts for r in rows} == {0}
    assert webhooks.set_enabled(store, e.id, True).enabled
    report = run_dispatch(store)
    receiver.wait_for(2)
    assert receiver.processed == {"before-pause": 1, "during-pause": 1}, report
    with pytest.raises(webhooks.EndpointNotFoundError):
        webhooks.set_enabled(store, 999, True)


def test_admin_api_pauses_endpoints_and_sets_mail_preferences(
    store: Store, receiver: Receiver
) -> None:
    keys = _seed_users(store)
    app = create_app(Settings(text_analysis="off", model_refresh="on_request"), store=store)
    with TestClient(app) as c:
        admin, analyst = keys["root"], keys["ana"]
        made = hook(store, receiver)
        url = f"/api/v1/admin/webhooks/{made.id}"
        assert c.patch(url, json={"enabled": False}, headers=analyst).status_code == 403
        r = c.patch(url, json={"enabled": False}, headers=admin)
        assert r.status_code == 200 and r.json()["enabled"] is False
        assert c.patch(url, json={"enabled": "maybe"}, headers=admin).status_code == 422
        assert c.patch(url, json={"enabled": True, "url": "x"}, headers=admin).status_code == 422
        r = c.patch("/api/v1/admin/webhooks/999", json={"enabled": True}, headers=admin)
        assert r.status_code == 404
        assert c.patch(url, json={"enabled": True}, headers=admin).json()["enabled"] is True

        prefs = "/api/v1/admin/users/ana/notifications"
        r = c.get(prefs, headers=admin)
        assert r.status_code == 404 and "corridor users notify ana" in r.json()["error"]["message"]
        body = {"email": "ana@example.com", "mode": "digest", "digest": "hourly"}
        assert c.put(prefs, json=body, headers=analyst).status_code == 403
        r = c.put(prefs, json=body, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json() | {"last_digest_at": None} == body | {
            "username": "ana",
            "last_digest_at": None,
        }
        assert c.get(prefs, headers=admin).json()["mode"] == "digest"
        assert mail.get_preference(store, "ana") is not None
        bad = c.put(prefs, json=body | {"mode": "loud"}, headers=admin)
        assert bad.status_code == 422
        bad = c.put(prefs, json=body | {"email": "nobody"}, headers=admin)
        assert bad.status_code == 422 and "not an e-mail address" in bad.text
        r = c.put("/api/v1/admin/users/nobody/notifications", json=body, headers=admin)
        assert r.status_code == 404 and "no user 'nobody'" in r.text


def test_cli_pauses_endpoints_and_sets_mail_preferences(store_url: str, receiver: Receiver) -> None:
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli_app, [*args, "--store", store_url], env={"COLUMNS": "200"})

    with open_store(store_url) as s:
        made = hook(s, receiver)
        accounts.add_user(s, "lena", "lena-pass-1", "analyst")
    r = run("webhooks", "disable", str(made.id))
    assert r.exit_code == 0 and "paused" in r.output, r.output
    r = run("webhooks", "enable", str(made.id))
    assert r.exit_code == 0 and "resumed" in r.output, r.output
    r = run("webhooks", "disable", "999")
    assert r.exit_code != 0
    r = run("users", "notify", "lena", "--email", "lena@example.com", "--mode", "digest")
    assert r.exit_code == 0 and "lena gets a daily digest at lena@example.com" in r.output
    r = run("users", "notify", "nobody", "--email", "x@example.com")
    assert r.exit_code != 0 and "no user 'nobody'" in str(r.exception or r.output)


# -- batches: an endpoint that takes several events per request -----------------------------
def batch_dispatch(store: Store, *, owner: str = OWNER, exclusive: bool = False) -> Any:
    with webhooks.WebhookSender(store, timeout_s=5.0) as s:
        return outbox.dispatch(
            store,
            {"webhook": s.deliver},
            batch_senders={"webhook": s.deliver_batch},
            owner=owner,
            base_s=60.0,
            lease_s=30,
            workers=1,  # one request at a time: the batches arrive in order
            exclusive=exclusive,
        )


def _events(got: Received) -> list[str]:
    assert got.verified and got.payload is not None and got.payload["type"] == "batch", got
    return [e["id"] for e in got.payload["data"]["events"]]


def test_a_batch_goes_as_one_request_and_is_retried_whole_under_its_id(
    store: Store, receiver: Receiver
) -> None:
    hook(store, receiver, batch_max=3)
    for i in range(7):
        notify(store, key=f"case-{i}-opened")
    receiver.script = [(503, {}, 0.0)]  # the first request fails, the rest go through
    report = batch_dispatch(store)
    assert (report.sent, report.messages, report.delivered, report.retrying) == (7, 3, 4, 3)
    make_due(store)
    report = batch_dispatch(store)
    assert (report.sent, report.messages, report.delivered) == (3, 1, 3)
    got = receiver.wait_for(4)
    # (the receiver records a request after answering it: two may be recorded out of order)
    assert sorted(_events(g) for g in got) == [
        ["case-0-opened", "case-1-opened", "case-2-opened"],
        ["case-0-opened", "case-1-opened", "case-2-opened"],  # the retry: the same events
        ["case-3-opened", "case-4-opened", "case-5-opened"],
        ["case-6-opened"],
    ]
    first, retry = (g for g in got if _events(g)[0] == "case-0-opened")
    assert retry.webhook_id == first.webhook_id, "a retried batch keeps its webhook-id"
    assert len({g.webhook_id for g in got}) == 3 and all(
        g.webhook_id.startswith("batch_") for g in got
    )
    event = first.payload["data"]["events"][0]  # type: ignore[index]
    assert event["type"] == "case.opened" and event["data"] == {"case": 1} and event["timestamp"]
    assert receiver.processed == {g.webhook_id: 1 for g in got}
    rows = {n.key: n for n in outbox.list_notifications(store)}
    assert {n.state for n in rows.values()} == {"delivered"}
    assert rows["case-0-opened"].batch_key == first.webhook_id
    log = outbox.list_attempts(store, rows["case-1-opened"].id)
    assert [(a.attempt, a.status_code) for a in log] == [(1, 503), (2, 200)]
    assert [a.status_code for a in outbox.list_attempts(store, rows["case-4-opened"].id)] == [200]


def test_a_batch_claimed_by_a_dead_sender_is_sent_as_it_was_formed(
    store: Store, receiver: Receiver
) -> None:
    """The batch is written with the claim: a sender that dies after claiming (before or while
    sending) leaves it to the next, which sends the same events under the same webhook-id — and
    a claim of one row brings the rest of its batch."""
    hook(store, receiver, batch_max=4)
    for i in range(6):
        notify(store, key=f"k{i}")
    dead = outbox.claim(store, "dead-process", limit=10)
    formed = {n.key: n.batch_key for n in dead}
    assert len(set(formed.values())) == 2 and None not in formed.values()
    # the lease of the dead sender holds the rows for anyone but an exclusive dispatcher
    assert outbox.claim(store, "someone", limit=10) == []
    with store.transaction() as tx:  # its lease runs out
        tx.execute("UPDATE outbox SET lease_until = ?", [datetime.now(UTC) - timedelta(seconds=1)])
    one_row = outbox.claim(store, "careful", limit=1, lease_s=0.0)
    assert len(one_row) == 4 and {n.batch_key for n in one_row} == {formed["k0"]}
    with store.transaction() as tx:
        tx.execute("UPDATE outbox SET lease_until = ?", [datetime.now(UTC) - timedelta(seconds=1)])
    report = batch_dispatch(store, exclusive=True)
    assert (report.sent, report.messages, report.delivered) == (6, 2, 6)
    got = receiver.wait_for(2)
    assert {g.webhook_id: tuple(_events(g)) for g in got} == {
        key: tuple(sorted((k for k, b in formed.items() if b == key), key=lambda k: int(k[1:])))
        for key in set(formed.values())
    }
    # sent again by hand, a row goes alone or in a new batch; its event keeps its id
    row = next(n for n in outbox.list_notifications(store) if n.key == "k5")
    outbox.redeliver(store, row.id)
    batch_dispatch(store)
    again = receiver.wait_for(3)[2]
    assert _events(again) == ["k5"] and again.webhook_id not in formed.values()


def test_a_claim_of_many_batches_leases_every_row_and_writes_each_batch(
    store: Store, receiver: Receiver
) -> None:
    """A claim whose rows fall into more batches than it leases one by one (one statement
    joining a staged table) leases, counts and batches every row as a claim of few does."""
    hook(store, receiver, batch_max=2)
    for i in range(9):
        notify(store, key=f"m{i}")
    claimed = outbox.claim(store, "many", limit=20)
    assert len(claimed) == 9 and all(n.attempts == 1 and n.lease_owner == "many" for n in claimed)
    stored = {n.key: n for n in outbox.list_notifications(store)}
    assert {k: n.batch_key for k, n in stored.items()} == {n.key: n.batch_key for n in claimed}
    sizes = sorted(
        sum(1 for n in claimed if n.batch_key == b) for b in {n.batch_key for n in claimed}
    )
    assert sizes == [1, 2, 2, 2, 2]
    assert all(n.attempts == 1 and n.lease_owner == "many" for n in stored.values())


def test_batch_size_is_checked_where_an_endpoint_is_made(store: Store, receiver: Receiver) -> None:
    with pytest.raises(webhooks.InvalidEndpointError, match="batch_max 0"):
        webhooks.add_endpoint(store, receiver.url, allow_private=True, batch_max=0)
    keys = _seed_users(store)
    app = create_app(Settings(text_analysis="off", model_refresh="on_request"), store=store)
    with TestClient(app) as c:
        url = "/api/v1/admin/webhooks"
        body = {"url": receiver.url, "allow_private": True}
        r = c.post(url, json={**body, "batch_max": 1001}, headers=keys["root"])
        assert r.status_code == 422 and "batch_max" in r.text
        r = c.post(url, json={**body, "batch_max": 50}, headers=keys["root"])
        assert r.status_code == 201 and r.json()["batch_max"] == 50
        assert [e["batch_max"] for e in c.get(url, headers=keys["root"]).json()] == [50]
    assert webhooks.list_endpoints(store)[0].batch_max == 50


def test_event_filters_name_events_an_endpoint_is_sent(store: Store, receiver: Receiver) -> None:
    """An endpoint's filter takes known types, prefixes of them and ``*``; a type or prefix
    that matches none (a typo) is refused, so no endpoint waits for events that never come."""
    for good in (["case.opened", "alert.*"], ["*"], ["case.*"], []):
        made = webhooks.add_endpoint(store, receiver.url, allow_private=True, event_types=good)
        assert list(made.event_types) == good
    for bad in (["case.opend"], ["cases.*"], ["digest"], ["report"], ["survey.invitation"]):
        with pytest.raises(webhooks.InvalidEndpointError, match="matches no event"):
            webhooks.add_endpoint(store, receiver.url, allow_private=True, event_types=bad)
    assert len(webhooks.list_endpoints(store)) == 4


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:99999/x", "Port out of range"),
        ("http://127.0.0.1:-1/x", "Port could not be cast"),
        ("http://127.0.0.1:0/x", "port 0 cannot be reached"),
        ("http://exa mple.com/x", "holds a space"),
    ],
)
def test_webhook_urls_that_cannot_be_reached_are_refused(store: Store, url: str, says: str) -> None:
    """URLs the URL parser refuses, or that no request could ever reach, are a clear refusal
    (before: an uncaught ValueError, a 500 over the API and a traceback in the CLI)."""
    with pytest.raises(webhooks.InvalidEndpointError, match=re.escape(says)):
        webhooks.add_endpoint(store, url, allow_private=True)
    assert webhooks.list_endpoints(store) == []


@pytest.mark.parametrize(
    "email", ["a@b\r\nBcc: x@y.com", "a@b.com\x00", "a@b.com, c@d.com", "Lena <lena@example.com>"]
)
def test_notification_addresses_are_one_plain_address(store: Store, email: str) -> None:
    """A preference's address is one plain address: a line break, a NUL, a list or a display
    name is refused when it is set (before, it was stored and every mail to it then failed)."""
    with pytest.raises(mail.PreferenceError, match="one plain e-mail address"):
        mail.set_preference(store, "lena", email)
    assert mail.get_preference(store, "lena") is None
    assert mail.set_preference(store, "lena", " lena@example.com ").email == "lena@example.com"
