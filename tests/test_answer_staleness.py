"""Kept answers behind the latest writes, within a bound, and one computation per answer at once
(``corridor.api.answer_cache``, ``corridor.store.versions``).

The clock of the store's version log is a stand-in the tests move (no sleeping, no timing): an
answer less than the bound behind is served with how far behind it is, one more than half the
bound behind is recomputed once in the background, one beyond the bound is never served; a
write that removes or rewrites records is served around whatever the bound; concurrent requests
for an answer nobody has wait for the one computation. Through the app: the
``Corridor-Data-Behind`` header, on both engines (PostgreSQL keeps nothing)."""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from corridor.api.answer_cache import BEHIND_HEADER, AnswerCache
from corridor.api.app import create_app
from corridor.settings import Settings
from corridor.store import versions
from corridor.store.versions import DataVersions
from test_auth import key_for
from test_auth import seeded as seeded

WAIT = 60  # seconds: only ever reached when something is stuck (a failure)


class Clock:
    """``time.monotonic`` of the version log, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(versions, "time", c)
    return c


class FakeStore:
    """What the cache asks of a store: its data version and how far behind a version is."""

    def __init__(self) -> None:
        self.versions = DataVersions()

    def data_version(self) -> int:
        return self.versions.version

    def data_behind(self, version: int) -> float | None:
        return self.versions.behind(version)


def _ask(cache: AnswerCache, store: Any, compute: Any) -> Any:
    return cache.get(store, "gaps", {"by": ["touchpoint"]}, None, compute, lambda _: 1)


def _settled(cache: AnswerCache) -> None:
    """Wait until no computation is in progress (a background one finishing)."""
    for flight in list(cache._flights.values()):
        assert flight.done.wait(WAIT)


def _release_once_joined(
    cache: AnswerCache, joined: int, release: threading.Event, threads: list[threading.Thread]
) -> None:
    """Start ``threads``, set ``release`` once ``joined`` of them wait for another's
    computation (or after WAIT seconds), and wait for them all."""
    for t in threads:
        t.start()
    for _ in range(WAIT * 100):
        if cache.joined == joined:
            break
        threading.Event().wait(0.01)
    release.set()
    for t in threads:
        t.join(WAIT)


def test_a_write_within_the_bound_serves_the_kept_answer_and_one_beyond_it_recomputes(clock):
    cache, store = AnswerCache(max_stale_s=10.0), FakeStore()
    made: list[int] = []

    def compute() -> str:
        made.append(1)
        return f"answer {len(made)} at version {store.data_version()}"

    first = _ask(cache, store, compute)
    assert first.value == "answer 1 at version 0" and first.behind_s == 0.0
    store.versions.bump()  # an ingest: the kept answer is behind from now on
    clock.now += 3
    kept = _ask(cache, store, compute)
    assert kept.value == first.value and kept.behind_s == 3.0
    assert len(made) == 1 and cache.refreshes == 0  # less than half the bound: no refresh yet

    clock.now += 3  # 6 s behind: served, and one recomputation starts in the background
    kept = _ask(cache, store, compute)
    assert kept.value == first.value and kept.behind_s == 6.0 and cache.refreshes == 1
    _settled(cache)
    assert len(made) == 2
    fresh = _ask(cache, store, compute)
    assert fresh.value == "answer 2 at version 1" and fresh.behind_s == 0.0

    store.versions.bump()
    clock.now += 11  # beyond the bound: never served, the request computes afresh
    late = _ask(cache, store, compute)
    assert late.value == "answer 3 at version 2" and late.behind_s == 0.0
    assert len(made) == 3 and cache.refreshes == 1


def test_closing_waits_for_a_background_recomputation_and_starts_no_more(clock):
    """At shutdown the app closes the cache before its store: a recomputation running in the
    background reads the store, so close() waits for it, and none starts after (a store
    closed under one failed the suite's teardown: 'connection is busy')."""
    cache, store = AnswerCache(max_stale_s=10.0), FakeStore()
    running, release = threading.Event(), threading.Event()
    done: list[str] = []

    def compute() -> str:
        if cache.computed > 1:  # the background one
            running.set()
            assert release.wait(WAIT)
            done.append("background")
        return f"version {store.data_version()}"

    _ask(cache, store, compute)
    store.versions.bump()
    clock.now += 6
    _ask(cache, store, compute)  # served behind; the recomputation starts
    assert running.wait(WAIT) and cache.refreshes == 1
    closing = threading.Thread(target=cache.close)
    closing.start()
    closing.join(0.2)
    assert closing.is_alive() and done == []  # waiting for the recomputation
    release.set()
    closing.join(WAIT)
    assert not closing.is_alive() and done == ["background"]
    store.versions.bump()
    clock.now += 6
    assert _ask(cache, store, compute).behind_s == 6.0 and cache.refreshes == 1  # none started


def test_a_removal_is_never_served_around(clock):
    """An erasure (a write that removed or rewrote records) fences off every answer computed
    before it, however large the bound."""
    cache, store = AnswerCache(max_stale_s=3600.0), FakeStore()
    made: list[int] = []

    def compute() -> int:
        made.append(1)
        return len(made)

    assert _ask(cache, store, compute).value == 1
    store.versions.bump()
    assert _ask(cache, store, compute).value == 1  # an ingest: within the bound
    store.versions.bump(fence=True)
    assert _ask(cache, store, compute).value == 2 and len(made) == 2


def test_with_the_bound_at_0_every_write_makes_the_next_answer_fresh(clock):
    cache, store = AnswerCache(max_stale_s=0.0), FakeStore()
    made: list[int] = []

    def compute() -> int:
        made.append(1)
        return len(made)

    assert _ask(cache, store, compute).value == _ask(cache, store, compute).value == 1
    store.versions.bump()
    assert _ask(cache, store, compute).value == 2 and cache.refreshes == 0


def test_concurrent_misses_compute_once():
    """Six requests for an answer nobody has: one computes, five wait for it and get it."""
    cache, store = AnswerCache(max_stale_s=0.0), FakeStore()
    release = threading.Event()
    made: list[int] = []

    def compute() -> str:
        made.append(1)
        assert release.wait(WAIT)
        return "the answer"

    got: list[str] = []
    threads = [
        threading.Thread(target=lambda: got.append(_ask(cache, store, compute).value))
        for _ in range(6)
    ]
    _release_once_joined(cache, 5, release, threads)  # the five others wait for the one
    assert got == ["the answer"] * 6 and len(made) == 1
    assert cache.misses == 6 and cache.joined == 5 and cache.computed == 1


def test_a_failed_computation_fails_those_waiting_for_it():
    cache, store = AnswerCache(), FakeStore()
    release = threading.Event()

    def compute() -> str:
        assert release.wait(WAIT)
        raise ValueError("no answer")

    errors: list[BaseException] = []

    def ask() -> None:
        try:
            _ask(cache, store, compute)
        except ValueError as e:
            errors.append(e)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    _release_once_joined(cache, 2, release, threads)
    assert len(errors) == 3 and cache.computed == 1
    assert _ask(cache, store, lambda: "now one").value == "now one"  # nothing kept of it


def test_the_api_says_how_far_behind_an_answer_is(seeded, ingestor, clock):
    """Within the bound an ingest leaves the kept answer (the header says how far behind it
    is); an erasure-like rewrite makes the next one fresh; beyond the bound, fresh."""
    app = create_app(Settings(model_refresh="on_request", answer_max_stale_s=60), store=seeded)
    ana = key_for(seeded, "ana")
    params = {"by": "touchpoint"}
    with TestClient(app) as c:
        first = c.get("/api/v1/gaps", params=params, headers=ana)
        assert first.status_code == 200 and first.headers[BEHIND_HEADER] == "0"
        n = first.json()["n"]
        table = pa.table({"feedback_id": ["behind1"], "person_id": ["p2"],
                          "occurred_at": ["2025-03-20T12:00:00Z"],
                          "touchpoint": ["home_delivery"], "source": ["survey"],
                          "expectation": [8], "experience": [3]})  # fmt: skip
        assert ingestor.ingest("feedback", table).inserted == 1
        if seeded.dialect == "postgres":  # nothing kept: every answer is of the latest data
            again = c.get("/api/v1/gaps", params=params, headers=ana)
            assert again.json()["n"] == n + 1 and again.headers[BEHIND_HEADER] == "0"
            return
        clock.now += 20
        kept = c.get("/api/v1/gaps", params=params, headers=ana)
        assert kept.content == first.content and kept.headers[BEHIND_HEADER] == "20.0"
        clock.now += 41  # beyond the bound
        fresh = c.get("/api/v1/gaps", params=params, headers=ana)
        assert fresh.json()["n"] == n + 1 and fresh.headers[BEHIND_HEADER] == "0"

        # a removal: computed again at once (a raw write leaves the rollup as it is, so the
        # count stays; the ingest path's erasure refreshes it)
        computed = app.state.answers.computed
        seeded.write_beside(
            lambda tx: tx.execute("DELETE FROM feedback WHERE feedback_id = ?", ("behind1",))
        )
        after = c.get("/api/v1/gaps", params=params, headers=ana)
        assert after.headers[BEHIND_HEADER] == "0"
        assert app.state.answers.computed == computed + 1
