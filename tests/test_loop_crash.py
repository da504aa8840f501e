"""No notification is lost to a crash: a real server (``corridor serve``, a process of its own)
delivers signed webhooks to a real HTTP receiver while test events are enqueued through the
admin API (each committed in a transaction of its own before the 201); the server is killed
with SIGKILL at random moments, over several trials, while notifications are committed but not
yet delivered; restarted on the same store, it delivers every acknowledged notification at least
once, and a receiver that honours ``webhook-id`` processes each exactly once. Also prints the
p95 from commit to webhook received on a quiet server (printed, not asserted: issue 14's target,
p95 < 2 s, is measured by ``benchmarks/loop.py`` and kept in docs/benchmarks.md)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corridor.loop import outbox
from corridor.store import open_store
from test_durability import Server
from test_loop_outbox import Receiver

TRIALS = 4
#: the receiver takes this long per webhook while the kills happen, so deliveries (a few in
#: parallel) lag well behind the commits on any machine and each kill finds some in flight
RECEIVER_DELAY_S = 0.25


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        s.kill()


class Sender:
    """Enqueues test events through the API as fast as it can until stopped; keeps the
    webhook-ids the server acknowledged (201: committed)."""

    def __init__(self, base: str, endpoint_id: int) -> None:
        self.base = base
        self.endpoint_id = endpoint_id
        self.acked: dict[str, float] = {}  # webhook-id -> when the request was sent
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=5) as c:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    r = c.post(f"/api/v1/admin/webhooks/{self.endpoint_id}/test")
                except httpx.TransportError:
                    return  # the server died under this request: not acknowledged
                if r.status_code == 201:
                    self.acked[r.json()["key"]] = sent


def arrived(receiver: Receiver) -> dict[str, float]:
    """webhook-id -> when it first arrived (verified)."""
    out: dict[str, float] = {}
    with receiver.arrived:
        for g in receiver.requests:
            if g.verified:
                out.setdefault(g.webhook_id, g.at)
    return out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_between_commit_and_delivery_loses_no_webhook(
    store_url: str,
    tmp_path: Path,
    servers: list[Server],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORRIDOR_TEXT_ANALYSIS", "off")
    monkeypatch.setenv("CORRIDOR_MODEL_REFRESH", "on_request")
    monkeypatch.setenv("CORRIDOR_WEBHOOK_TIMEOUT_S", "5")
    monkeypatch.setenv("CORRIDOR_OUTBOX_RETRY_BASE_S", "0.2")
    open_store(store_url).close()  # `corridor serve` serves an existing store
    receiver = Receiver().start()
    rng = random.Random(14)
    try:
        server = Server(store_url, tmp_path / "server.log")
        servers.append(server)
        server.start()
        r = httpx.post(
            f"{server.base}/api/v1/admin/webhooks",
            json={"url": receiver.url, "allow_private": True, "description": "crash test"},
        )
        assert r.status_code == 201, r.text
        endpoint = r.json()
        receiver.secret = endpoint["secret"]

        acked: set[str] = set()
        in_window = 0  # acknowledged but not yet received when the server died
        for _trial in range(TRIALS):
            receiver.delay = RECEIVER_DELAY_S
            sender = Sender(server.base, endpoint["id"])
            sender.thread.start()
            time.sleep(rng.uniform(0.3, 1.2))
            server.kill()  # SIGKILL: no shutdown, no flush
            sender.stop.set()
            sender.thread.join(10)
            acked |= set(sender.acked)
            in_window += len(set(sender.acked) - set(arrived(receiver)))
            server.start()  # the same store, a new process
        assert acked, "no test event was acknowledged"
        assert in_window > 0, "no kill fell between a commit and its delivery"

        receiver.delay = 0.0  # the backlog drains at full speed now
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not acked <= set(arrived(receiver)):
            time.sleep(0.1)
        missing = acked - set(arrived(receiver))
        assert not missing, f"{len(missing)} acknowledged notifications never arrived"
        assert all(receiver.processed[k] == 1 for k in acked), "processed exactly once"
        duplicates = receiver.duplicates

        # a quiet server: commit -> webhook received, p95 under 2 s
        receiver.delay = 0.0
        sent_at: dict[str, float] = {}  # webhook-id -> when its request was sent (before commit)
        with httpx.Client(base_url=server.base, timeout=5) as c:
            for _ in range(40):
                sent = time.monotonic()
                r = c.post(f"/api/v1/admin/webhooks/{endpoint['id']}/test")
                assert r.status_code == 201
                sent_at[r.json()["key"]] = sent
                time.sleep(0.05)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not set(sent_at) <= set(arrived(receiver)):
            time.sleep(0.05)
        got = arrived(receiver)
        assert set(sent_at) <= set(got), f"{len(set(sent_at) - set(got))} never arrived"
        latencies = sorted(got[k] - t for k, t in sent_at.items())
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(
            f"\n{store_url.split(':')[0]}: {len(acked)} acknowledged over {TRIALS} kills, "
            f"{in_window} in flight at a kill, {duplicates} redelivered and dropped; "
            f"commit -> received p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms"
        )

        # a first attempt that reached the receiver just before its server was killed is sent
        # again by the next server (the receiver drops it) and only then marked delivered: on a
        # busy machine that can still be under way here (1 run of the suite in ~4 failed the
        # check below at the stop); wait for it, as the guarantee is "eventually"
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=server.base, timeout=10) as c:
            while time.monotonic() < deadline:
                r = c.get("/api/v1/admin/deliveries", params={"state": "pending", "limit": 1000})
                if not acked & {n["key"] for n in r.json()}:
                    break
                time.sleep(0.2)
        server.stop()
    finally:
        receiver.stop()

    with open_store(store_url) as store:
        rows = outbox.list_notifications(store, limit=100_000)
    ours = [(r.key, r.state, r.attempts, r.last_error) for r in rows if r.key in acked]
    assert {r[0] for r in ours} == acked
    assert all(r[1] == "delivered" for r in ours), [r for r in ours if r[1] != "delivered"][:20]
