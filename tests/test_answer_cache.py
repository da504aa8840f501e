"""Analysis answers kept until the data they read changes (``corridor.api.answer_cache``): a
repeated request is answered from the cache with the very same body; with the bound at 0, a
committed write to an analysed table (an ingest, a write beside the writer, a write through
another store object of the same file) makes the next answer fresh; writes to operational
tables (the scheduler's leases, cases) do not; each scope has its own answers; nothing is kept
on PostgreSQL, where other processes write unseen. With a bound, an answer behind a write is
served (and says how far behind it is) until it is more than the bound behind, a background
recomputation replaces it once it is half the bound behind, and a removal (a fence) is never
served around; concurrent requests for the same answer compute it once.

The data and users are ``test_auth``'s (Lena heads logistics, Paul manages partner dhl)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from corridor.analytics import gap_table
from corridor.api.app import create_app
from corridor.settings import Settings
from corridor.store import open_store
from corridor.store.base import Tx
from test_auth import key_for, login
from test_auth import seeded as seeded

GAPS = ("/api/v1/gaps", {"by": "touchpoint"})


def _n(c: TestClient, headers: dict[str, str]) -> int:
    r = c.get(GAPS[0], params=GAPS[1], headers=headers)
    assert r.status_code == 200, r.text
    return int(r.json()["n"])


def _feedback(i: int) -> pa.Table:
    return pa.table(
        {
            "feedback_id": [f"late{i}"],
            "person_id": ["p2"],
            "occurred_at": ["2025-03-20T12:00:00Z"],
            "touchpoint": ["home_delivery"],
            "source": ["survey"],
            "expectation": [8],
            "experience": [3],
        }
    )


def test_a_repeated_answer_comes_from_the_cache_until_the_data_changes(seeded, ingestor):
    app = create_app(Settings(model_refresh="on_request", answer_max_stale_s=0), store=seeded)
    cache = app.state.answers
    ana = key_for(seeded, "ana")
    with TestClient(app) as c:
        first = c.get(GAPS[0], params=GAPS[1], headers=ana)
        again = c.get(GAPS[0], params=GAPS[1], headers=ana)
        assert first.content == again.content
        if seeded.dialect == "postgres":  # other processes may write: nothing is kept
            assert cache.hits == 0 and seeded.data_version() is None
            return
        assert cache.hits == 1 and cache.misses == 1
        n = first.json()["n"]
        assert n == gap_table(seeded, by=["touchpoint"]).n

        # an ingest: the next answer counts the new record
        ingestor.ingest("feedback", _feedback(1))
        assert _n(c, ana) == n + 1 and cache.misses == 2

        # operational writes (a job's lease, a case) leave the answers standing
        before = seeded.data_version()
        with seeded.transaction() as tx:
            tx.execute(
                "INSERT INTO jobs (name, every_s, next_run_at, runs) VALUES (?, ?, ?, ?)",
                ("cache-test", 60.0, datetime.now(UTC), 0),
            )
        assert seeded.data_version() == before
        assert _n(c, ana) == n + 1 and cache.hits == 2

        # a write beside the main writer, and one through another store object of the file,
        # each make the next answer a fresh one (the gaps read the rollup, which a raw write
        # leaves as it is: the count is the same, but it was computed again)
        seeded.write_beside(
            lambda tx: tx.execute("UPDATE feedback SET nps = 1 WHERE feedback_id = ?", ("f1",))
        )
        assert _n(c, ana) == n + 1 and cache.misses == 3
        other = open_store(seeded.url)
        try:
            with other.transaction() as tx:
                tx.execute("UPDATE feedback SET nps = 2 WHERE feedback_id = ?", ("f1",))
        finally:
            other.close()
        assert _n(c, ana) == n + 1 and cache.misses == 4 and cache.hits == 2


def test_each_scope_has_its_own_answers(seeded):
    """The analyst's answer, kept, is never handed to the head of logistics: hers is computed
    in her scope (fewer records) and kept apart."""
    app = create_app(Settings(model_refresh="on_request"), store=seeded)
    ana, lena = key_for(seeded, "ana"), key_for(seeded, "lena")
    with TestClient(app) as c:
        everyone = _n(c, ana)
        logistics = _n(c, lena)
        assert logistics < everyone
        assert _n(c, ana) == everyone and _n(c, lena) == logistics
        rows = c.get(GAPS[0], params=GAPS[1], headers=lena).json()["rows"]
        assert {r["touchpoint"] for r in rows} == {"home_delivery"}
    if seeded.dialect != "postgres":
        assert app.state.answers.hits == 3  # the fourth request's answer was read thrice


def test_analysis_pages_are_kept_and_rendered_for_each_visit(seeded, ingestor):
    """The touch point page's data is kept (the second visit reads it) and rendered anew: the
    page names the signed-in user; a new record makes the next visit build it again (the bound
    at 0)."""
    app = create_app(Settings(model_refresh="on_request", answer_max_stale_s=0), store=seeded)
    cache = app.state.answers
    with TestClient(app, headers={"origin": "http://testserver"}) as c:
        login(c, "ana")
        first = c.get("/touchpoints/home_delivery")
        assert first.status_code == 200, first.text
        again = c.get("/touchpoints/home_delivery")
        assert again.status_code == 200 and "ana" in again.text
        if seeded.dialect == "postgres":
            assert cache.hits == 0
            return
        assert cache.hits == 1
        ingestor.ingest("feedback", _feedback(2))
        assert c.get("/touchpoints/home_delivery").status_code == 200
        assert cache.misses == 2 and cache.hits == 1
        # another scope's visit is built for it: the head of logistics sees her touch point
        c.post("/logout")
        login(c, "lena")
        assert c.get("/touchpoints/home_delivery").status_code == 200
        assert cache.misses == 3


@pytest.mark.parametrize(
    ("sql", "touched", "rewrote"),
    [
        ("INSERT INTO feedback (feedback_id) VALUES (?)", {"feedback"}, set()),
        ("  update Cases SET state = ?", {"cases"}, {"cases"}),
        ("DELETE FROM people WHERE person_id = ?", {"people"}, {"people"}),
        ("CREATE TABLE IF NOT EXISTS x (a INT)", {"x"}, {"x"}),
        ("SELECT 1", set(), set()),
        ("WITH a AS (SELECT 1) SELECT * FROM a", set(), set()),
        ("CHECKPOINT", set(), set()),
        # not known: counted as a change (and a rewrite) of anything
        ("COPY feedback FROM 'f.csv'", {"*"}, {"*"}),
    ],
)
def test_the_tables_a_statement_writes_are_read_off_it(sql, touched, rewrote):
    tx = SimpleNamespace(touched=set(), rewrote=set())
    Tx._note(tx, sql)  # type: ignore[arg-type]
    assert tx.touched == touched and tx.rewrote == rewrote
