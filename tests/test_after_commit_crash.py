"""Queued feedback survives a crash, exactly once (issue 17's upkeep after the commit, issue 14's
record rules): a real ``corridor serve`` (a process of its own) takes batches of new feedback,
each of which only queues its records for the work after the commit; it is killed with SIGKILL
while batches are acknowledged and some of them not yet folded; restarted on the same store,
it folds what was left. Every acknowledged detractor then has exactly one alert (a rule per
record), and the rollup's answers equal the base tables'."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest

from corridor.analytics import gap_table, metric_table
from corridor.analytics.feedback import rollup, rollup_pending
from corridor.domain.corridor_map import CorridorMap
from corridor.store import open_store
from test_durability import (  # noqa: F401  (servers: a fixture, used by name)
    Server,
    post_until_killed,
    serve_with_map,
    servers,
)

BATCHES = 60
BATCH_SIZE = 200
KILL_AFTER_ACKS = 8


def batches(touchpoints: list[str]) -> list[list[dict[str, Any]]]:
    now = datetime.now(UTC) - timedelta(hours=1)
    out, n = [], 0
    for _ in range(BATCHES):
        batch = []
        for _ in range(BATCH_SIZE):
            batch.append({
                "feedback_id": f"fb-{n:06d}", "person_id": f"p{n % 499}",
                "occurred_at": (now - timedelta(minutes=n % 600)).isoformat(),
                "touchpoint": touchpoints[n % len(touchpoints)], "source": "survey",
                "nps": n % 11, "expectation": float(n % 10), "experience": float((n * 7) % 11),
            })  # fmt: skip
            n += 1
        out.append(batch)
    return out


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_queued_feedback_survives_sigkill_exactly_once(
    store_url: str,
    small_map: CorridorMap,
    tmp_path: Path,
    servers: list[Server],  # noqa: F811
) -> None:
    server = serve_with_map(store_url, small_map, tmp_path, servers)
    rule = {"rule_id": "each", "kind": "detractor", "definition": {"per": "record"}}
    r = httpx.post(f"{server.base}/api/v1/rules", json=rule, timeout=30)
    assert r.status_code == 201, r.text
    data = batches([t.key for t in small_map.touchpoints])
    replies = post_until_killed(
        server,
        "/api/v1/feedback",
        [orjson.dumps(b) for b in data],
        kill_after=KILL_AFTER_ACKS,
        wait_s=90,
        jitter_s=0.05,
    )
    assert all(reply["accepted"] == BATCH_SIZE for reply in replies.values())
    acked = set(replies)
    with open_store(store_url) as store:
        left = rollup_pending.waiting(store)
    assert len(acked) < BATCHES, "the kill came too late to matter"

    # restarted, the server folds what the dead one left; the client sends the rest
    server.start()
    with httpx.Client(base_url=server.base, timeout=30) as c:
        for i in range(BATCHES):
            if i not in acked:
                assert c.post("/api/v1/feedback", json=data[i]).status_code == 200
    server.stop()  # a graceful stop folds what is queued

    with open_store(store_url) as store:
        assert rollup_pending.waiting(store) == 0 and rollup.is_current(store)
        detractors = {rec["feedback_id"] for batch in data for rec in batch if rec["nps"] <= 6}
        fired = store.query("SELECT record_id, count(*) FROM alerts GROUP BY record_id")
        assert {rid for rid, _ in fired} == detractors
        assert all(n == 1 for _, n in fired), "each detractor alerted exactly once"
        assert store.count("feedback") == BATCHES * BATCH_SIZE
        base = {t: store.table(t) for t in ("feedback", "interactions", "people", "touchpoints")}
        for table in (gap_table, metric_table):
            got, want = table(store, by=["touchpoint"]), table(base, by=["touchpoint"])
            pd.testing.assert_frame_equal(got.frame, want.frame, check_exact=True)
    print(f"killed with {left} queued records; {len(acked)} of {BATCHES} batches acknowledged")
