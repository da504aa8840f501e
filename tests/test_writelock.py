"""The store's write lock: a request waiting for it goes before background writers (the work
after a commit, the text worker, the scheduler's jobs), which still get it within
``WriteLock.YIELD_S``; it is reentrant; and a real store's transactions use it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from corridor.ingest.after_commit import AfterCommitWorker
from corridor.loop.scheduler import JobContext, JobSpec, Scheduler
from corridor.settings import Settings
from corridor.store import Store
from corridor.store.writelock import WriteLock, background, is_background


def _hold(lock: WriteLock, started: threading.Event, release: threading.Event) -> None:
    with lock:
        started.set()
        release.wait(5)


def _take(lock: WriteLock, order: list[str], name: str, *, bg: bool) -> None:
    if bg:
        with background(), lock:
            order.append(name)
    else:
        with lock:
            order.append(name)


def _wait_for_waiters(lock: WriteLock, foreground: int) -> None:
    deadline = time.monotonic() + 5
    while lock._foreground_waiting < foreground and time.monotonic() < deadline:
        time.sleep(0.005)


def _beside_two(
    busy: Callable[[], None],
    probe: Callable[[], None],
    stop: threading.Event,
    *,
    warm: float,
    run: float | None = None,
) -> None:
    """Two threads run ``busy`` until ``stop``; after ``warm`` seconds ``probe`` runs in a
    thread of its own, until it returns (at most 5 s) or, with ``run``, for that long; then
    ``stop`` is set and every thread joined."""
    threads = [threading.Thread(target=busy, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(warm)
    probing = threading.Thread(target=probe, daemon=True)
    probing.start()
    if run is None:
        probing.join(5)
    else:
        time.sleep(run)
    stop.set()
    for t in [probing, *threads]:
        t.join(5)


def test_a_waiting_request_goes_before_background_writers_that_came_first() -> None:
    lock = WriteLock()
    started, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(lock, started, release))
    holder.start()
    assert started.wait(5)
    order: list[str] = []
    workers = [
        threading.Thread(target=_take, args=(lock, order, f"bg{i}"), kwargs={"bg": True})
        for i in range(3)
    ]
    for w in workers:
        w.start()
    time.sleep(0.05)  # the background writers are waiting first
    request = threading.Thread(target=_take, args=(lock, order, "request"), kwargs={"bg": False})
    request.start()
    _wait_for_waiters(lock, 1)
    release.set()
    for t in [holder, request, *workers]:
        t.join(5)
    assert order[0] == "request", order
    assert sorted(order[1:]) == ["bg0", "bg1", "bg2"]


def test_background_writers_are_delayed_never_starved() -> None:
    """Requests that keep the lock busy (one waiting at every release, the other taking it
    again at once) hold a background writer back for about YIELD_S, then it goes next."""
    lock = WriteLock()
    stop = threading.Event()
    got: list[float] = []

    def requests() -> None:
        while not stop.is_set():
            with lock:
                time.sleep(0.002)

    def writer() -> None:
        started = time.monotonic()
        with background(), lock:
            got.append(time.monotonic() - started)

    _beside_two(requests, writer, stop, warm=0.05)
    assert got, "the background writer never got the lock"
    assert got[0] < WriteLock.YIELD_S + 1.0, got


def test_requests_are_not_kept_out_by_background_writers_taking_turns() -> None:
    """Two workers with a backlog (long transactions back to back, each overdue by the time
    the other releases) and a request now and then: the request waits for at most one
    background transaction besides the one running, not for ever (the overdue writers take
    turns with the requests, not with each other)."""
    lock = WriteLock()
    stop = threading.Event()
    waits: list[float] = []
    hold = 0.3  # > YIELD_S: the other worker is overdue at every release

    def worker() -> None:
        with background():
            while not stop.is_set():
                with lock:
                    time.sleep(hold)

    def request() -> None:
        while not stop.is_set():
            started = time.monotonic()
            with lock:
                waits.append(time.monotonic() - started)
            time.sleep(0.05)

    _beside_two(worker, request, stop, warm=0.35, run=2.5)
    assert len(waits) >= 3, waits
    assert max(waits) < 2 * hold + 0.3, waits


def test_reentrant_and_owned() -> None:
    lock = WriteLock()
    with lock, lock:  # a transaction inside a transaction of the same thread joins it
        assert lock._depth == 2
    assert lock._owner is None
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release()
    assert not is_background()
    with background():
        assert is_background()
        with background():
            assert is_background()
        assert is_background()
    assert not is_background()


def test_store_transactions_use_it_and_worker_threads_are_background(store: Store) -> None:
    """A store's writes go through its WriteLock; the after-commit worker's and the scheduler's
    job threads write as background writers, a caller's thread (a request) as foreground."""
    assert isinstance(store._write_lock, WriteLock)
    seen: dict[str, bool] = {}
    ran = threading.Event()

    def job(ctx: JobContext) -> None:
        seen["job"] = is_background()
        ran.set()

    s = Scheduler(store, Settings(auth="off"), [JobSpec("probe", 60, job)])
    s.start()
    try:
        assert ran.wait(10)
    finally:
        s.stop()
    worker = AfterCommitWorker(store, interval=60)
    original = worker.job

    def probe() -> None:
        seen["fold"] = is_background()
        original()

    worker.job = probe
    worker.start()
    try:
        assert worker.wait_idle(10)
    finally:
        worker.stop()
    assert seen == {"job": True, "fold": True}
    assert not is_background()
