"""Reads run concurrently under the store's rule (``Store.reading``): a slow analysis does not
stall a quick one on a real server, on both engines; each reader has a backend of its own, and
the number of readers at once is bounded."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow as pa
import pytest
import uvicorn

from corridor.analytics.estimators import importance
from corridor.api.app import create_app
from corridor.settings import Settings
from corridor.store import Store
from test_drivers import _person_data

WAIT = 60  # seconds: only ever reached when a request is stalled (a failure)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(ingestor, store) -> Iterator[str]:
    """The app over the store, served by uvicorn in a thread; yields its base URL."""
    people, fb, ix = _person_data()
    for kind, df in (("people", people), ("interactions", ix), ("feedback", fb)):
        report = ingestor.ingest(kind, pa.Table.from_pandas(df, preserve_index=False))
        assert report.rejected == 0, report
    app = create_app(Settings(auth="off"), store=store)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not srv.started:
            assert time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=20)


def test_a_slow_analysis_does_not_stall_a_quick_one(server, monkeypatch):
    """Key drivers with 10,000 bootstrap resamples (seconds) is started; once it is inside its
    bootstrap, holding its read, /gaps is asked and answers while drivers is still running.
    The drivers analysis waits for the quick answer before it resamples, so the order is
    certain; with one reader at a time the quick one would wait for it (and fail here)."""
    in_bootstrap, quick_done = threading.Event(), threading.Event()
    real = importance.bootstrap

    def bootstrap(*args: Any, **kwargs: Any) -> Any:
        in_bootstrap.set()
        quick_done.wait(WAIT)
        return real(*args, **kwargs)

    monkeypatch.setattr(importance, "bootstrap", bootstrap)
    order: list[str] = []
    replies: dict[str, httpx.Response] = {}

    def slow() -> None:
        replies["drivers"] = httpx.get(
            f"{server}/api/v1/drivers", params={"bootstrap": 10_000}, timeout=2 * WAIT
        )
        order.append("drivers")

    t = threading.Thread(target=slow)
    t.start()
    try:
        assert in_bootstrap.wait(WAIT), "the drivers analysis did not start"
        replies["gaps"] = httpx.get(
            f"{server}/api/v1/gaps", params={"by": "touchpoint"}, timeout=WAIT
        )
        order.append("gaps")
        assert t.is_alive()  # drivers is still running
    finally:
        quick_done.set()
        t.join(2 * WAIT)
    assert order == ["gaps", "drivers"]
    assert replies["gaps"].status_code == 200, replies["gaps"].text
    assert {r["touchpoint"] for r in replies["gaps"].json()["rows"]} >= {"support_call"}
    assert replies["drivers"].status_code == 200, replies["drivers"].text
    body = replies["drivers"].json()
    assert body["query"]["bootstrap"] == 10_000
    assert {r["driver"] for r in body["rows"]} == {"support_call", "home_delivery"}


def test_readers_get_backends_of_their_own_and_are_bounded(store: Store):
    """max_readers threads read at once, each on its own backend; one more waits for a slot."""
    n = store.max_readers
    inside = threading.Barrier(n + 1)
    release = threading.Event()
    backends: list[Any] = []
    counts: list[int] = []

    def reader() -> None:
        with store.reading():
            backends.append(store.ibis)
            counts.append(int(store.table("people").count().execute()))
            inside.wait(WAIT)
            release.wait(WAIT)

    threads = [threading.Thread(target=reader) for _ in range(n)]
    for t in threads:
        t.start()
    inside.wait(WAIT)  # all n are reading at once
    assert len({id(b) for b in backends}) == n
    entered = threading.Event()

    def one_more() -> None:
        with store.reading():
            entered.set()

    extra = threading.Thread(target=one_more)
    extra.start()
    assert not entered.wait(0.3)  # no slot free: it waits
    release.set()
    assert entered.wait(WAIT)
    for t in [*threads, extra]:
        t.join(WAIT)
    assert counts == [0] * n
    # a nested block holds the same slot and backend; outside, the thread has its own
    with store.reading():
        held = store.ibis
        with store.reading():
            assert store.ibis is held
    assert store.ibis is not held and store.ibis is store.ibis
