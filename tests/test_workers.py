"""The background worker a server hands deferred work to (:class:`corridor.workers.PokedWorker`):
pokes that arrive while it settles make one round; a stop with ``drain`` does the work poked
before it; a failing round is logged and retried on the next poke."""

from __future__ import annotations

import threading
import time

from corridor.workers import PokedWorker


def test_pokes_within_the_settle_time_make_one_round():
    rounds: list[int] = []
    pending = [0]
    lock = threading.Lock()

    def job() -> None:
        with lock:
            rounds.append(pending[0])
            pending[0] = 0

    w = PokedWorker(job, name="t", interval=60, settle=1.0)
    w.start()
    assert w.wait_idle(10)
    rounds.clear()  # the round of the start (nothing pending)
    for _ in range(5):
        with lock:
            pending[0] += 1
        w.poke()
        time.sleep(0.01)
    assert w.wait_idle(10)
    w.stop()
    assert rounds == [5]


def test_a_stop_with_drain_does_the_work_poked_before_it():
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def job() -> None:
        if not done:
            started.set()
            release.wait(10)  # a round in progress when more work is poked and the stop comes
        done.append("round")

    for drain, expected in ((True, 2), (False, 1)):
        done.clear()
        started.clear()
        release.clear()
        w = PokedWorker(job, name="t", interval=60, drain=drain)
        w.start()
        assert started.wait(10)
        w.poke()  # more work, poked while the first round runs
        stopper = threading.Thread(target=w.stop)
        stopper.start()
        release.set()
        stopper.join(10)
        assert len(done) == expected


def test_a_failing_round_is_logged_and_the_next_poke_retries(caplog):
    calls: list[int] = []

    def job() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the store is away")

    w = PokedWorker(job, name="flaky", interval=60)
    w.start()
    assert w.wait_idle(10)
    w.poke()
    assert w.wait_idle(10)
    w.stop()
    assert len(calls) == 2 and "flaky failed; will retry" in caplog.text
