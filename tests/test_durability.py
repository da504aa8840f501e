"""Nothing acknowledged is lost: a real server is killed (SIGKILL) while batches stream in,
restarted on the same store, the client re-sends what was not acknowledged (and a few batches
that were), and the store then holds every record exactly once."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from corridor.domain.corridor_map import CorridorMap
from corridor.store import open_store

BATCHES = 40
BATCH_SIZE = 2_000
KILL_AFTER_ACKS = 6
TOUCHPOINTS = {"ad_click": "web", "checkout": "app", "home_delivery": "partner"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``corridor serve`` in a process of its own, on loopback."""

    def __init__(self, store_url: str, log: Path) -> None:
        self.store_url = store_url
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.port = _free_port()
        cmd = [sys.executable, "-m", "corridor.cli", "serve", "--store", self.store_url]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1", "CORRIDOR_AUTH": "off"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.base}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"the server did not answer within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Graceful stop (the app closes the store); SIGKILL if it does not stop in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Every server a test starts is killed when it ends, whatever happened."""
    started: list[Server] = []
    yield started
    for s in started:
        s.kill()


def serve_with_map(
    store_url: str, cmap: CorridorMap, tmp_path: Path, servers: list[Server]
) -> Server:
    """A new store served by ``corridor serve`` (killed when the test ends), ``cmap`` loaded."""
    open_store(store_url).close()  # `corridor serve` serves an existing store, never makes one
    server = Server(store_url, tmp_path / "server.log")
    servers.append(server)
    server.start()
    r = httpx.put(f"{server.base}/api/v1/map", json=cmap.model_dump(exclude_none=True), timeout=30)
    assert r.status_code == 200, r.text
    return server


def post_until_killed(
    server: Server,
    path: str,
    bodies: list[bytes],
    *,
    kill_after: int,
    wait_s: float,
    jitter_s: float,
) -> dict[int, dict[str, Any]]:
    """Post the JSON ``bodies`` to ``path`` one after the other from a thread, and kill the
    server with SIGKILL once ``kill_after`` are acknowledged, at a random moment within
    ``jitter_s`` (somewhere inside a later request); returns the acknowledged replies by index.
    Once the server is dead nothing more is acknowledged."""
    acked: dict[int, dict[str, Any]] = {}
    enough = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.base, timeout=30) as c:
            for i, body in enumerate(bodies):
                try:
                    resp = c.post(path, content=body, headers={"content-type": "application/json"})
                except httpx.TransportError:
                    enough.set()
                    return  # the server died: everything from here on is unacknowledged
                if 200 <= resp.status_code < 300:
                    acked[i] = resp.json()
                    if len(acked) >= kill_after:
                        enough.set()

    sender = threading.Thread(target=client, daemon=True)
    sender.start()
    assert enough.wait(wait_s), f"no acknowledgements before the kill:\n{server.output()}"
    time.sleep(random.uniform(0.0, jitter_s))
    server.kill()
    sender.join(30)
    assert not sender.is_alive()
    return dict(acked)


def make_batches() -> list[list[dict[str, Any]]]:
    batches = []
    n = 0
    keys = list(TOUCHPOINTS)
    for _ in range(BATCHES):
        batch = []
        for _ in range(BATCH_SIZE):
            tp = keys[n % len(keys)]
            rec: dict[str, Any] = {
                "interaction_id": f"int-{n:07d}",
                "person_id": f"p{n % 997}",
                "occurred_at": f"2025-03-{1 + n % 28:02d}T{n % 24:02d}:00:00Z",
                "touchpoint": tp,
                "channel": TOUCHPOINTS[tp],
                "value": n % 100,
                "basket": n % 5,
            }
            if n % 50 == 0:  # shared identities: merges happen while the server dies
                rec["email"] = f"user{n % 401}@example.com"
            batch.append(rec)
            n += 1
        batches.append(batch)
    return batches


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_acknowledged_records_survive_sigkill(
    store_url: str, small_map: CorridorMap, tmp_path: Path, servers: list[Server]
) -> None:
    batches = make_batches()
    bodies = [orjson.dumps(b) for b in batches]
    server = serve_with_map(store_url, small_map, tmp_path, servers)
    first_acked = post_until_killed(
        server, "/api/v1/interactions", bodies, kill_after=KILL_AFTER_ACKS, wait_s=60, jitter_s=0.1
    )
    assert KILL_AFTER_ACKS <= len(first_acked) < BATCHES, "the kill came too late to matter"
    for reply in first_acked.values():
        assert reply["accepted"] == BATCH_SIZE and reply["rejected"] == 0

    # Restart on the same store; the client retries what was not acknowledged, and re-sends a
    # few batches that were (as a client does when a reply is lost).
    server.start()
    retry = [i for i in range(BATCHES) if i not in first_acked]
    again = sorted(first_acked)[:3]
    committed_unacked = 0
    with httpx.Client(base_url=server.base, timeout=60) as c:
        for i in retry + again:
            resp = c.post("/api/v1/interactions", content=bodies[i])
            assert resp.status_code == 200, resp.text
            reply = resp.json()
            assert reply["accepted"] == BATCH_SIZE and reply["rejected"] == 0
            if i in first_acked:
                assert reply["inserted"] == 0 and reply["duplicates"] == BATCH_SIZE
            else:
                committed_unacked += reply["duplicates"]
    # The batch in flight at the kill was committed whole or not at all, never in part.
    assert committed_unacked in (0, BATCH_SIZE), committed_unacked
    server.stop()

    expected_ids = [r["interaction_id"] for b in batches for r in b]
    with open_store(store_url) as store:
        total, distinct, value_sum = store.query(
            "SELECT count(*), count(DISTINCT interaction_id), sum(value) FROM interactions"
        )[0]
        stored = {row[0] for row in store.query("SELECT interaction_id FROM interactions")}
        merges = store.count("person_merges")
        logged = store.query(
            "SELECT sum(accepted) FROM ingest_batches WHERE kind = ?", ("interactions",)
        )
    assert total == distinct == len(expected_ids)
    assert stored == set(expected_ids)
    for i in first_acked:  # every acknowledged record, present exactly once
        assert {r["interaction_id"] for r in batches[i]} <= stored
    assert float(value_sum) == float(sum(r["value"] for b in batches for r in b))
    assert merges > 0
    assert int(logged[0][0]) >= len(expected_ids)
