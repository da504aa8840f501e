"""Alert rules on both engines: record rules fire in the batch's transaction on every ingest
path (with cooldown de-duplication, scope, text analysis and promises), aggregate rules over
the registered analyses, and dry runs that write nothing. On a small simulated company the
rules fire on the planted effects (detractors, the expectation drift, the ripples of the two
harmful operational events, the billing error's drop in the gap at the invoice) and the quiet
touch points and null events stay quiet."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import time_machine
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import ENGINES, make_store_url
from corridor.analytics.feedback import rollup_rows
from corridor.api.app import create_app
from corridor.cli.main import app as cli_app
from corridor.ingest.files import import_dataset
from corridor.ingest.pipeline import Ingestor
from corridor.loop import aggregate_rules, batch_rows, cases, record_rules, text_rules
from corridor.loop.dryrun import dry_run
from corridor.loop.rule_params import NUMBERS, parameters
from corridor.loop.rules import (
    DEFINITION_KEYS,
    Rule,
    RuleError,
    RuleNotFoundError,
    add_rule,
    disable_rule,
    get_rule,
    list_rules,
)
from corridor.settings import Settings
from corridor.simulate import simulate
from corridor.store import Store, open_store
from corridor.text import jobs

TS = pa.timestamp("us", tz="UTC")


def feedback(rows: list[dict[str, Any]]) -> pa.Table:
    """Feedback records: each row's missing fields left out, times in UTC."""
    now = datetime.now(UTC)
    base = {"source": "survey", "occurred_at": now, "touchpoint": "checkout"}
    full = [{**base, **r} for r in rows]
    names = sorted({k for r in full for k in r})
    cols = {n: [r.get(n) for r in full] for n in names}
    return pa.table({n: pa.array(v, TS) if n == "occurred_at" else v for n, v in cols.items()})


def alerts(store: Store) -> list[tuple[str, str]]:
    return [tuple(r) for r in store.query("SELECT rule_id, subject FROM alerts ORDER BY 1, 2")]


# -- declaring rules ------------------------------------------------------------------------------
def test_rules_are_checked_stored_listed_and_disabled(store):
    made = add_rule(store, Rule("detractors", "detractor", scope={"department": "logistics"}),
                    actor="ana")  # fmt: skip
    assert made.family == "record" and made.enabled and made.created_by == "ana"
    assert made.cooldown_s == 7 * 86400 and made.scope == {"department": ["logistics"]}
    assert made.name == "a detractor (NPS ≤ 6) [department logistics]"
    drift = add_rule(store, Rule("drift", "drift"), actor="ana")
    assert drift.family == "aggregate" and drift.cooldown_s == 90 * 86400
    change = add_rule(
        store,
        Rule("gap-drop", "change", {"analysis": "gaps", "column": "mean_gap", "alpha": "0.01"},
             cooldown_s=0),
        actor="ana",
    )  # fmt: skip
    assert change.definition["alpha"] == 0.01 and change.get("period") == "week"
    assert [r.rule_id for r in list_rules(store)] == ["detractors", "drift", "gap-drop"]
    for bad, words in (
        (Rule("detractors", "detractor"), "exists already"),
        (Rule("x y", "detractor"), "rule id"),
        (Rule("x", "sentiment"), "unknown rule kind"),
        (Rule("x", "detractor", {"below": 3}), "takes no below"),
        (Rule("x", "score_below", {"field": "nps"}), "needs below"),
        (Rule("x", "score_below", {"field": "mood", "below": 3}), "field must be one of 'exp"),
        (Rule("x", "text", {}), "intents"),
        (Rule("x", "text", {"intents": ["rant"]}), "intents must be one of 'complaint'"),
        (Rule("x", "threshold", {"analysis": "gaps", "column": "nope", "below": 0}), "no column"),
        (Rule("x", "threshold", {"analysis": "gaps", "column": "mean_gap"}), "exactly one"),
        (Rule("x", "change", {"analysis": "gaps", "column": "mean_gap_low"}), "p-value"),
        (Rule("x", "change", {"analysis": "nope", "column": "x"}), "unknown analysis"),
        (Rule("x", "detractor", scope={"colour": ["red"]}), "unknown scope"),
        (Rule("x", "detractor", priority="asap"), "priority"),
        (Rule("x", "change", {"analysis": "gaps", "column": "mean_gap", "alpha": 2}), "alpha"),
    ):
        with pytest.raises(RuleError, match=words):
            add_rule(store, bad, actor="ana")
    off = disable_rule(store, "detractors", actor="ana")
    assert not off.enabled and off.disabled_at is not None
    assert get_rule(store, "detractors").enabled is False
    with pytest.raises(RuleNotFoundError):
        disable_rule(store, "nope", actor="ana")


# -- record rules on ingest -------------------------------------------------------------------
def test_detractors_fire_once_per_customer_and_touch_point_within_the_cooldown(store, ingestor):
    add_rule(store, Rule("detractors", "detractor", cooldown_s=86400), actor="ana")
    now = datetime.now(UTC)
    ingestor.ingest("feedback", feedback([
        {"feedback_id": "f1", "person_id": "p1", "nps": 6, "occurred_at": now - timedelta(hours=3)},
        {"feedback_id": "f2", "person_id": "p1", "nps": 2, "occurred_at": now - timedelta(hours=1)},
        {"feedback_id": "f3", "person_id": "p1", "nps": 1, "touchpoint": "support_call"},
        {"feedback_id": "f4", "person_id": "p2", "nps": 7},  # a passive: no alert
        {"feedback_id": "f5", "person_id": "p3", "experience": 2},  # no NPS: no alert
    ]))  # fmt: skip
    assert alerts(store) == [
        ("detractors", "person=p1|touchpoint=checkout"),
        ("detractors", "person=p1|touchpoint=support_call"),
    ]
    # the same records again (a retried request), and a new one within the cooldown: nothing
    ingestor.ingest("feedback", feedback([{"feedback_id": "f2", "person_id": "p1", "nps": 2}]))
    ingestor.ingest("feedback", feedback([{"feedback_id": "f6", "person_id": "p1", "nps": 0}]))
    assert len(alerts(store)) == 2
    # after the cooldown the customer is alerted again, and joins their open case
    later = now + timedelta(days=2)
    with time_machine.travel(later, tick=False):
        ingestor.ingest("feedback", feedback([
            {"feedback_id": "f7", "person_id": "p1", "nps": 3, "occurred_at": later}]))  # fmt: skip
    assert len(alerts(store)) == 3
    found, total = cases.list_cases(store, None)
    assert total == 2
    checkout = next(c for c in found if c["touchpoint"] == "checkout")
    assert checkout["alerts"] == 2 and checkout["department"] == "ecommerce"
    assert checkout["title"] == "Detractor: NPS 6 at checkout (customer p1)"
    # history of records does not fire (older than max_age when they arrive), a dry run shows it
    ingestor.ingest("feedback", feedback([
        {"feedback_id": "old", "person_id": "p9", "nps": 0, "occurred_at": now - timedelta(days=30)}
    ]))  # fmt: skip
    assert len(alerts(store)) == 3
    hits, _, _ = dry_run(store, None, get_rule(store, "detractors"), None, None)
    assert {h.subject for h in hits} >= {"person=p9|touchpoint=checkout"}
    assert len(alerts(store)) == 3  # the dry run wrote nothing


def test_score_promise_and_scope(store, ingestor):
    add_rule(store, Rule("gaps", "score_below", {"field": "gap", "below": -3},
                         scope={"department": ["logistics"]}), actor="ana")  # fmt: skip
    add_rule(store, Rule("promises", "broken_promise", {"per": "record"}), actor="ana")
    ces = {"field": "ces", "below": 2, "per": "touchpoint"}
    add_rule(store, Rule("urgent-ces", "score_below", ces, priority="urgent", team="ces-squad"),
             actor="ana")  # fmt: skip
    now = datetime.now(UTC)
    ingestor.ingest("interactions", pa.table({
        "interaction_id": ["i1", "i2", "i3"], "person_id": ["p1", "p2", "p3"],
        "occurred_at": pa.array([now] * 3, TS),
        "touchpoint": ["checkout", "checkout", "home_delivery"],
        "channel": ["web", "web", "partner"],
        "partner_id": [None, None, "dhl"], "duration_minutes": [2.5, 7.0, 30.0],
    }))  # fmt: skip
    ingestor.ingest("feedback", feedback([
        # gap -5 at home delivery (logistics), through its interaction's partner
        {"feedback_id": "f1", "person_id": "p3", "interaction_id": "i3", "touchpoint": None,
         "expectation": 9, "experience": 4},
        # gap -5 at checkout: outside the rule's scope
        {"feedback_id": "f2", "person_id": "p1", "expectation": 9, "experience": 4},
        {"feedback_id": "f3", "person_id": "p1", "ces": 1},
        {"feedback_id": "f4", "person_id": "p2", "ces": 1},  # same touch point: one alert
    ]))  # fmt: skip
    assert alerts(store) == [
        ("gaps", "person=p3|touchpoint=home_delivery"),
        ("promises", "interactions=i2|promise=checkout-3min"),
        ("urgent-ces", "touchpoint=checkout"),
    ]
    found, _ = cases.list_cases(store, None)
    by_rule = {c["rule_id"]: c for c in found}
    delivery = by_rule["gaps"]
    assert delivery["partner_id"] == "dhl" and delivery["department"] == "logistics"
    assert cases.owner(delivery) == {"kind": "partner", "name": "dhl"}
    assert cases.owner(by_rule["urgent-ces"]) == {"kind": "team", "name": "ces-squad"}
    assert by_rule["urgent-ces"]["priority"] == "urgent"
    assert cases.owner(by_rule["promises"]) == {"kind": "department", "name": "ecommerce"}
    assert "duration_minutes 7, promised <= 3" in by_rule["promises"]["title"]


def _routing(ingestor: Ingestor, now: datetime) -> list[dict[str, Any]]:
    """Two persons and their interactions (one through dhl), stored; and feedback about them
    that reads its routing every way: its own touch point and partner or its interaction's, an
    unknown interaction and person, an anonymous record, one older than a week."""
    ingestor.ingest("people", pa.table({
        "person_id": ["p1", "p2"], "kind": ["customer"] * 2, "segment": ["enterprise", None],
        "region": ["north", "south"],
    }))  # fmt: skip
    ingestor.ingest("interactions", pa.table({
        "interaction_id": ["i1", "i2"], "person_id": ["p1", "p2"],
        "occurred_at": pa.array([now] * 2, TS), "touchpoint": ["home_delivery", "checkout"],
        "channel": ["partner", "web"], "partner_id": ["dhl", None],
    }))  # fmt: skip
    return [
        {"feedback_id": "f1", "person_id": "p1", "interaction_id": "i1", "touchpoint": None,
         "nps": 3, "expectation": 9.0, "experience": 4.5},
        {"feedback_id": "f2", "person_id": "p1", "interaction_id": "i1", "partner_id": "ups",
         "csat": 2, "emotion": -2},
        {"feedback_id": "f3", "person_id": "p2", "interaction_id": "i2", "ces": 1},
        {"feedback_id": "f4", "person_id": "p9", "interaction_id": "nowhere", "touchpoint": None},
        {"feedback_id": "f5", "person_id": None, "nps": 0},
        {"feedback_id": "f6", "person_id": "p2", "nps": 1, "occurred_at": now - timedelta(days=9)},
    ]  # fmt: skip


def test_batch_rows_built_in_arrow_equal_the_rules_query(store, ingestor):
    """A feedback batch whose texts are analysed later is read for the record rules from its
    transaction's look-ups, in Arrow (corridor.loop.batch_rows): the same rows, value for value,
    as the rules' SQL over it, on both engines: the record's touch point and partner, else its
    interaction's; the touch point's department; the person's segment and region; nulls for an
    unknown interaction, person or touch point; records older than the cutoff left out."""
    now = datetime.now(UTC)
    rows = _routing(ingestor, now)
    rows[4]["touchpoint"] = "not_on_the_map"  # (not stored: the batch is only read)
    batch = feedback(rows)
    oldest = now - timedelta(days=1)
    with store.transaction() as tx:
        read = {
            "interactions": rollup_rows.lookup(
                tx, "interactions", ("interaction_id", "touchpoint", "channel", "partner_id"),
                ["i1", "i2", "nowhere"],
            ),
            "people": rollup_rows.lookup(tx, "people", rollup_rows.PEOPLE_COLUMNS, ["p1", "p2"]),
        }  # fmt: skip
        got = batch_rows.feedback_rows(batch, read, batch_rows.departments(tx), oldest)
        tx.stage("_rows_batch", batch)
        sql = record_rules.FEEDBACK_SQL_UNANALYSED.format(src="_rows_batch")
        want = tx.fetch_arrow(
            f"{record_rules.batch_sql(sql, tx.dialect)} WHERE b.occurred_at >= ?", (oldest,)
        )
    assert got.column_names == list(record_rules.COLUMNS["feedback"])

    def by_id(t: pa.Table) -> list[dict[str, Any]]:
        return sorted(t.to_pylist(), key=lambda r: r["record_id"])

    assert by_id(got) == by_id(want)
    assert [r["record_id"] for r in by_id(got)] == ["f1", "f2", "f3", "f4", "f5"]
    f1, f2 = by_id(got)[:2]
    assert (f1["touchpoint"], f1["partner_id"], f1["department"]) == (
        "home_delivery", "dhl", "logistics")  # fmt: skip
    assert (f2["partner_id"], f2["segment"], f2["region"]) == ("ups", "enterprise", "north")


def test_text_rule_rows_read_by_key_equal_the_rules_query(store, ingestor):
    """The text rules read the records a background analysis stored by key, in Arrow
    (text_rules.read_rows: the records, their interactions and persons by key, the analysis as
    just stored or read by key): the same rows, value for value, as the rules' SQL joining the
    tables, on both engines; nulls for an unknown interaction, person or touch point, for an
    anonymous record and for a record without analysis; an erased (absent) record gives none.
    """
    now = datetime.now(UTC)
    ingestor.ingest("feedback", feedback(_routing(ingestor, now)))
    analysis = pa.table({
        "feedback_id": ["f1", "f3", "f5"], "intent": ["complaint", "praise", "question"],
        "theme_id": ["t1", None, "t2"],
    })  # fmt: skip
    with store.transaction() as tx:
        tx.stage("_analysis", analysis)
        tx.execute(
            "INSERT INTO text_analysis (feedback_id, sentiment, sentiment_label, intent, "
            "emotions, theme_id, model, analyzed_at) SELECT feedback_id, 0, 'neutral', intent, "
            "'', theme_id, 'lexicon', ? FROM _analysis",
            [now],
        )
    ids = ["f1", "f2", "f3", "f4", "f5", "f6", "erased"]
    with store.transaction() as tx:
        given = text_rules.read_rows(tx, ids, analysis)
        read = text_rules.read_rows(tx, ids)
        marks = ", ".join("?" for _ in ids)
        sql = record_rules.batch_sql(record_rules.FEEDBACK_SQL.format(src="feedback"), tx.dialect)
        want = tx.fetch_arrow(f"{sql} WHERE b.feedback_id IN ({marks})", ids)
    assert given.column_names == list(record_rules.COLUMNS["feedback"])

    def by_id(t: pa.Table) -> list[dict[str, Any]]:
        return sorted(t.to_pylist(), key=lambda r: r["record_id"])

    assert by_id(given) == by_id(want) == by_id(read)
    assert [r["record_id"] for r in by_id(given)] == ["f1", "f2", "f3", "f4", "f5", "f6"]
    f1 = by_id(given)[0]
    assert (f1["touchpoint"], f1["partner_id"], f1["department"], f1["intent"]) == (
        "home_delivery", "dhl", "logistics", "complaint")  # fmt: skip


def test_text_rule_rows_to_read_before_the_analysis_is_stored(store, ingestor):
    """The background worker reads, before the transaction that stores an analysis (beside the
    writer), the rows of the records a text rule can fire on that their batches did not hand
    over (text_rules.rows_to_read): those records only, as rows_of builds them (the rows
    read_rows joins with the analysis); nothing without a text rule, or when every candidate
    was handed over. Both engines."""
    now = datetime.now(UTC)
    ingestor.ingest("feedback", feedback(_routing(ingestor, now)))
    analysis = pa.table({
        "feedback_id": ["f1", "f2", "f3", "f5"],
        "intent": ["complaint", "praise", "complaint", None], "theme_id": [None, None, None, "t2"],
    })  # fmt: skip
    with store.transaction() as tx:
        assert text_rules.rows_to_read(tx, analysis, None) is None  # no text rule
    add_rule(store, Rule("complaints", "text", {"intents": ["complaint"]}), actor="ana")
    with store.transaction() as tx:
        read = text_rules.rows_to_read(tx, analysis, None)
        assert read is not None and sorted(read.column("record_id").to_pylist()) == ["f1", "f3"]
        ids = read.column("record_id").to_pylist()
        assert read.to_pylist() == text_rules.rows_of(tx, ids).to_pylist()
        f1 = read.filter(pc.equal(read["record_id"], "f1"))
        left = text_rules.rows_to_read(tx, analysis, f1)
        assert left is not None and left.column("record_id").to_pylist() == ["f3"]
        both = pa.concat_tables([f1, left], promote_options="permissive")
        assert text_rules.rows_to_read(tx, analysis, both) is None
        joined, missing = batch_rows.analysed_rows(both, analysis, ["f1", "f3"])
        assert missing == []
        assert joined.to_pylist() == text_rules.read_rows(tx, ["f1", "f3"], analysis).to_pylist()


def test_rules_fire_alike_whether_texts_are_analysed_in_the_batch_or_later(store, small_map):
    """The same batch through an ingest that analyses texts in the batch (the rules' SQL) and
    through one that leaves them to the background (rows built in Arrow): the same alerts."""
    add_rule(store, Rule("det", "detractor", {"per": "record"}), actor="ana")
    add_rule(store, Rule("gap", "score_below", {"field": "gap", "below": -3, "per": "record"},
                         scope={"department": ["logistics"]}), actor="ana")  # fmt: skip
    now = datetime.now(UTC)
    fired = {}
    for analyse in (True, False):
        ing = Ingestor(store, analyze_text=analyse)
        ing.load_map(small_map)
        p = "a" if analyse else "b"
        ing.ingest("interactions", pa.table({
            "interaction_id": [f"{p}i1", f"{p}i2"], "person_id": ["p1", "p2"],
            "occurred_at": pa.array([now] * 2, TS),
            "touchpoint": ["home_delivery", "checkout"], "channel": ["partner", "web"],
            "partner_id": ["dhl", None],
        }))  # fmt: skip
        ing.ingest("feedback", feedback([
            {"feedback_id": f"{p}f1", "person_id": "p1", "interaction_id": f"{p}i1",
             "touchpoint": None, "expectation": 9, "experience": 2, "nps": 4},
            {"feedback_id": f"{p}f2", "person_id": "p2", "interaction_id": f"{p}i2", "nps": 9},
            {"feedback_id": f"{p}f3", "person_id": "p3", "nps": 6, "text": "slow and rude"},
        ]))  # fmt: skip
        ing.close()
        fired[p] = [
            (rule, subject.replace(f"={p}", "="), *rest)
            for rule, subject, *rest in store.query(
                "SELECT rule_id, subject, touchpoint, department, partner_id, summary FROM alerts "
                f"WHERE record_id LIKE '{p}%' ORDER BY 1, 2"
            )
        ]
    assert fired["a"] == fired["b"]
    assert [r[:2] for r in fired["b"]] == [
        ("det", "feedback=f1"), ("det", "feedback=f3"), ("gap", "feedback=f1"),
    ]  # fmt: skip


def test_text_rules_fire_inline_and_after_background_analysis(store, small_map):
    add_rule(store, Rule("complaints", "text", {"intents": ["complaint"]}), actor="ana")
    angry = "The parcel never arrived and nobody answers the phone. Terrible service!"
    happy = "Lovely staff, quick and friendly, thank you so much!"
    inline = Ingestor(store)
    inline.load_map(small_map)
    try:
        inline.ingest("feedback", feedback([
            {"feedback_id": "t1", "person_id": "p1", "text": angry},
            {"feedback_id": "t2", "person_id": "p2", "text": happy},
        ]))  # fmt: skip
    finally:
        inline.close()
    assert alerts(store) == [("complaints", "person=p1|touchpoint=checkout")]
    later = Ingestor(store, analyze_text=False)
    try:
        later.ingest("feedback", feedback([
            {"feedback_id": "t3", "person_id": "p3", "text": angry}]))  # fmt: skip
        assert len(alerts(store)) == 1  # not analysed yet
        jobs.analyze_pending(store)
    finally:
        later.close()
    assert alerts(store)[-1] == ("complaints", "person=p3|touchpoint=checkout")
    jobs.analyze_pending(store, redo=True)  # analysed again: no second alert
    assert len(alerts(store)) == 2
    # after the background analysis too, a text rule's scope reads the record's interaction
    # (touch point, partner) and person
    scoped = Rule("complaints-dhl", "text", {"intents": ["complaint"]}, scope={"partner": ["dhl"]})
    add_rule(store, scoped, actor="ana")
    later = Ingestor(store, analyze_text=False)
    try:
        later.ingest("interactions", pa.table({
            "interaction_id": ["i9"], "person_id": ["p4"],
            "occurred_at": pa.array([datetime.now(UTC)], TS), "touchpoint": ["home_delivery"],
            "channel": ["partner"], "partner_id": ["dhl"],
        }))  # fmt: skip
        later.ingest("feedback", feedback([
            {"feedback_id": "t4", "person_id": "p4", "interaction_id": "i9", "touchpoint": None,
             "text": angry},
            {"feedback_id": "t5", "person_id": "p5", "text": happy},
            {"feedback_id": "t6", "person_id": "p6", "text": angry},  # not dhl's
        ]))  # fmt: skip
        jobs.analyze_pending(store)
    finally:
        later.close()
    assert alerts(store)[2:] == [
        ("complaints", "person=p4|touchpoint=home_delivery"),
        ("complaints", "person=p6|touchpoint=checkout"),
        ("complaints-dhl", "person=p4|touchpoint=home_delivery"),
    ]


def test_text_rules_fire_alike_on_rows_handed_over_by_the_batch_and_on_rows_read(store, small_map):
    """A server's ingest hands the batch and the text rules' rows of it (its transaction's
    look-ups) to the background worker with the poke; the worker analyses the texts handed over
    (jobs.analyze_handed) and the text rules fire on those rows, reading only the records not
    handed over. The same batch with its rows handed over (one record's left out: read by
    query) and found by the sweep (jobs.analyze_pending): the same alerts, scope (partner,
    department) and age cutoff included; and a text is analysed, and fires, once."""
    add_rule(store, Rule("complaints", "text", {"intents": ["complaint"]}), actor="ana")
    add_rule(store, Rule("complaints-dhl", "text", {"intents": ["complaint"]},
                         scope={"partner": ["dhl"]}), actor="ana")  # fmt: skip
    add_rule(store, Rule("complaints-service", "text", {"intents": ["complaint"]},
                         scope={"department": ["service"]}), actor="ana")  # fmt: skip
    angry = "The parcel never arrived and nobody answers the phone. Terrible service!"
    happy = "Lovely staff, quick and friendly, thank you so much!"
    now = datetime.now(UTC)
    fired = {}
    for p in ("a", "b"):
        handed: list[tuple[pa.Table, pa.Table | None]] = []
        ing = Ingestor(store, analyze_text=False)
        ing.load_map(small_map)
        ing.on_pending_text = lambda batch, rows, handed=handed: handed.append((batch, rows))
        try:
            ing.ingest("interactions", pa.table({
                "interaction_id": [f"{p}i1"], "person_id": [f"{p}p1"],
                "occurred_at": pa.array([now], TS), "touchpoint": ["home_delivery"],
                "channel": ["partner"], "partner_id": ["dhl"],
            }))  # fmt: skip
            ing.ingest("feedback", feedback([
                {"feedback_id": f"{p}f1", "person_id": f"{p}p1", "interaction_id": f"{p}i1",
                 "touchpoint": None, "text": angry},
                {"feedback_id": f"{p}f2", "person_id": f"{p}p2", "text": happy},
                {"feedback_id": f"{p}f3", "person_id": f"{p}p3", "text": angry},
                {"feedback_id": f"{p}f4", "person_id": f"{p}p4", "text": angry,
                 "touchpoint": "support_call"},
                {"feedback_id": f"{p}f5", "person_id": f"{p}p5", "text": angry,
                 "occurred_at": now - timedelta(days=30)},
            ]))  # fmt: skip
        finally:
            ing.close()
        batch, rows = handed[-1]
        assert rows is not None and batch.column("text").to_pylist()[:2] == [angry, happy]
        assert sorted(rows.column("record_id").to_pylist()) == [f"{p}f{i}" for i in range(1, 6)]
        if p == "a":  # one record's rows not handed over: read by the query
            keep = pa.array([r != "af3" for r in rows.column("record_id").to_pylist()])
            analysis = pa.table({"feedback_id": ["af3", "af1"], "intent": [None, "complaint"],
                                 "theme_id": ["t1", None]})  # fmt: skip
            got, missing = batch_rows.analysed_rows(rows.filter(keep), analysis, ["af1", "af3"])
            assert missing == ["af3"]
            assert got.select(["record_id", "intent", "theme_id", "partner_id"]).to_pylist() == [
                {"record_id": "af1", "intent": "complaint", "theme_id": None, "partner_id": "dhl"}
            ]
            assert jobs.analyze_handed(store, batch, known=rows.filter(keep)) == 5
            assert jobs.analyze_handed(store, batch, known=rows) == 0  # analysed already
            assert jobs.analyze_pending(store).analysed == 0
        else:
            assert jobs.analyze_pending(store).analysed == 5
            assert jobs.analyze_handed(store, batch, known=rows) == 0  # found by the sweep
        fired[p] = [
            (
                rule,
                subject.replace(f"person={p}", "person="),
                *rest,
                summary.replace(f"customer {p}p", "customer p"),
            )
            for rule, subject, *rest, summary in store.query(
                "SELECT rule_id, subject, touchpoint, department, partner_id, region, summary "
                f"FROM alerts WHERE record_id LIKE '{p}%' ORDER BY 1, 2"
            )
        ]
    assert fired["a"] == fired["b"]
    assert [r[:2] for r in fired["a"]] == [
        ("complaints", "person=p1|touchpoint=home_delivery"),
        ("complaints", "person=p3|touchpoint=checkout"),
        ("complaints", "person=p4|touchpoint=support_call"),
        ("complaints-dhl", "person=p1|touchpoint=home_delivery"),
        ("complaints-service", "person=p4|touchpoint=support_call"),
    ]  # fmt: skip


def test_rules_fire_on_every_ingest_path(store, ingestor, tmp_path):
    add_rule(store, Rule("detractors", "detractor"), actor="ana")
    now = datetime.now(UTC).isoformat()
    csv = tmp_path / "feedback.csv"
    csv.write_text(
        "feedback_id,person_id,occurred_at,touchpoint,source,nps\n"
        f"c1,p1,{now},checkout,survey,1\nc2,p2,{now},checkout,survey,10\n"
    )
    from corridor.ingest.files import import_file

    import_file(ingestor, csv, "feedback")
    app = create_app(Settings(auth="off"), store=store)
    with TestClient(app) as c:
        r = c.post("/api/v1/feedback", json={"feedback_id": "h1", "person_id": "p3",
                   "occurred_at": now, "touchpoint": "support_call", "source": "survey",
                   "nps": 3})  # fmt: skip
        assert r.status_code == 200, r.text
    assert alerts(store) == [
        ("detractors", "person=p1|touchpoint=checkout"),
        ("detractors", "person=p3|touchpoint=support_call"),
    ]


# -- the CLI ----------------------------------------------------------------------------------
def test_rules_commands(store_url, small_map):
    with open_store(store_url) as s:
        ing = Ingestor(s)
        ing.load_map(small_map)
        ing.ingest("feedback", feedback([
            {"feedback_id": "f1", "person_id": "p1", "nps": 2,
             "occurred_at": datetime.now(UTC) - timedelta(days=40)}]))  # fmt: skip
        ing.close()
    run = CliRunner()

    def cli(*args: str) -> Any:
        r = run.invoke(cli_app, [*args, "--store", store_url], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.output

    out = cli("rules", "add", "detractors", "--kind", "detractor", "--department", "ecommerce",
              "--cooldown", "2d", "--priority", "high")  # fmt: skip
    assert "added rule detractors: a detractor (NPS ≤ 6) [department ecommerce]" in out
    cli("rules", "add", "gap-drop", "--kind", "change", "--analysis", "gaps", "--column",
        "mean_gap", "--alpha", "0.01", "--period", "month")  # fmt: skip
    import json

    listed = json.loads(cli("rules", "list", "--format", "json"))
    assert [r["rule_id"] for r in listed] == ["detractors", "gap-drop"]
    assert listed[0]["cooldown_s"] == 2 * 86400 and listed[0]["priority"] == "high"
    assert "detractors" in cli("rules", "list")
    out = cli("rules", "test", "detractors")
    assert "would have fired 1 alerts" in out
    body = json.loads(cli("rules", "test", "detractors", "--format", "json"))
    assert body["n"] == 1 and body["alerts"][0]["department"] == "ecommerce"
    cli("rules", "disable", "detractors")
    assert json.loads(cli("rules", "list", "--format", "json"))[0]["enabled"] is False
    bad = run.invoke(cli_app, ["rules", "add", "x", "--kind", "nope", "--store", store_url])
    assert bad.exit_code != 0
    huge = run.invoke(cli_app, ["rules", "add", "x", "--kind", "forecast", "--below", "-1",
                                "--min-n", "1" + "0" * 400, "--store", store_url])  # fmt: skip
    # a RuleError, which `corridor` (cli.main) prints as one line: not an OverflowError
    assert isinstance(huge.exception, RuleError), huge.exception
    assert "min_n must lie in [0, 1e+09]" in str(huge.exception)


# -- a simulated company: planted effects ---------------------------------------------------------
CUSTOMERS, MONTHS, SEED = 3000, 12, 7
END = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module", params=ENGINES)
def company(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, Any]]]:
    """3,000 customers over 2025 (seed 7: the drift at support_chat in July, a regional carrier
    change hurting home_delivery and shipping_notice in the north in May, a billing error at
    the invoice in September), imported once per engine; tests get its URL and truth."""
    root: Path = tmp_path_factory.mktemp("company")
    result = simulate(CUSTOMERS, MONTHS, SEED, root / "data", fmt="parquet")
    url = make_store_url(str(request.param), root, request)
    with open_store(url) as store:
        ingestor = Ingestor(store)
        try:
            import_dataset(ingestor, root / "data")
        finally:
            ingestor.close()
    yield url, result.truth


@pytest.fixture
def company_store(company) -> Iterator[Store]:
    url, _ = company
    with open_store(url) as s:
        yield s
        with s.transaction() as tx:  # each test starts without rules, alerts or cases
            for table in ("alert_rules", "alerts", "cases", "case_events", "outbox"):
                tx.execute(f"DELETE FROM {table}")


def _rule(kind: str, definition: dict[str, Any] | None = None, **kw: Any) -> Rule:
    from corridor.loop.rules import check

    return check(Rule(kind, kind, definition or {}, **kw))


@pytest.mark.slow
def test_detractor_rule_finds_every_planted_detractor(company, company_store):
    store = company_store
    n = store.query("SELECT count(*) FROM feedback WHERE nps <= 6")[0][0]
    assert n > 100
    per_record = _rule("detractor", {"per": "record"}, cooldown_s=0)
    hits, _, _ = dry_run(store, None, per_record, None, None)
    assert len(hits) == n
    assert all(h.evidence["record"]["nps"] <= 6 for h in hits)
    # per customer and touch point with a cooldown of 30 days: fewer, none within 30 days of
    # another through the same partner
    per_customer = _rule("detractor", cooldown_s=30 * 86400)
    deduped, _, _ = dry_run(store, None, per_customer, None, None)
    assert 0 < len(deduped) < n
    last: dict[tuple[str, str | None], datetime] = {}
    for h in deduped:
        key = (h.subject, h.partner_id)
        if key in last:
            assert h.occurred_at - last[key] >= timedelta(days=30)
        last[key] = h.occurred_at


@pytest.mark.slow
def test_aggregate_rules_fire_on_the_planted_effects_and_quiet_ones_stay_quiet(
    company, company_store
):
    store, truth = company_store, company[1]
    # a new expectation drift: only the planted one, at its touch point, the month it starts
    drift = truth["drift"]
    hits = aggregate_rules.dry_run(store, _rule("drift", {"direction": "up"}), until=END)
    assert [h.touchpoint for h in hits] == [drift["touchpoint"]]
    assert hits[0].occurred_at.strftime("%Y-%m") == drift["date"][:7]
    assert hits[0].department == "service"
    # new harmful ripples: exactly the two planted events, none of the null events
    hits = aggregate_rules.dry_run(store, _rule("ripple"), until=END)
    planted = {r["event_id"]: r for r in truth["ripples"]}
    assert {h.event_id for h in hits} == set(planted)
    assert not {h.event_id for h in hits} & set(truth["null_events"]["operational"])
    for h in hits:
        r = planted[h.event_id]
        assert h.department == r["department"] and h.region == r["region"]
        assert set(h.evidence["touchpoints"]) == set(r["touchpoints"])
    # a significant drop of the mean gap against the previous month, per touch point: the
    # billing error's month at the invoice, and no other touch point in the whole year
    gap_drop = _rule("change", {"analysis": "gaps", "column": "mean_gap", "alpha": 0.01,
                                "period": "month", "min_n": 30}, cooldown_s=0)  # fmt: skip
    hits = aggregate_rules.dry_run(store, gap_drop, until=END)
    billing = next(r for r in truth["ripples"] if r["region"] is None)
    assert [(h.touchpoint, h.occurred_at.strftime("%Y-%m")) for h in hits] == [
        (billing["touchpoints"][0], billing["start"][:7])
    ]
    assert hits[0].evidence["row"]["delta_mean_gap"] < 0
    # a threshold: months of NPS under -60 at a touch point with 30 answers or more
    low = _rule("threshold", {"analysis": "nps", "column": "nps", "below": -60, "period":
                              "month"}, cooldown_s=0)  # fmt: skip
    for h in aggregate_rules.dry_run(store, low, until=END):
        assert h.evidence["row"]["nps"] < -60 and h.evidence["row"]["nps_n"] >= 30


@pytest.mark.slow
def test_scheduled_evaluation_raises_each_alert_once_and_routes_its_case(company, company_store):
    store, truth = company_store, company[1]
    billing = next(r for r in truth["ripples"] if r["region"] is None)
    at = datetime(2025, 10, 6, 8, tzinfo=UTC)  # September is complete
    with time_machine.travel(at, tick=False):
        add_rule(store, Rule("gap-drop", "change", {"analysis": "gaps", "column": "mean_gap",
                 "alpha": 0.01, "period": "month"}), actor="ana")  # fmt: skip
        add_rule(store, Rule("ripples", "ripple", priority="high"), actor="ana")
        assert aggregate_rules.evaluate(store) == 3  # the invoice's September, two ripples
        assert aggregate_rules.evaluate(store) == 0  # the next run: nothing new
    found, total = cases.list_cases(store, None)
    assert total == 3
    invoice = next(c for c in found if c["rule_id"] == "gap-drop")
    assert invoice["touchpoint"] == billing["touchpoints"][0]
    assert (
        invoice["department"]
        == store.query(
            "SELECT department FROM touchpoints WHERE key = ?", (invoice["touchpoint"],)
        )[0][0]
    )
    ripple = {c["root_cause_event"]: c for c in found if c["rule_id"] == "ripples"}
    assert set(ripple) == {r["event_id"] for r in truth["ripples"]}
    for event_id, c in ripple.items():
        r = next(x for x in truth["ripples"] if x["event_id"] == event_id)
        assert c["department"] == r["department"] and c["priority"] == "high"
        assert c["region"] == r["region"]
    assert store.query("SELECT evaluated_at FROM alert_rules WHERE rule_id = 'ripples'")[0][0]


@pytest.mark.slow
def test_record_rule_fires_live_on_the_company(company, company_store):
    """A record arriving now at the planted drift's touch point fires, routed to its owner."""
    store = company_store
    add_rule(store, Rule("detractors", "detractor"), actor="ana")
    ing = Ingestor(store)
    try:
        ing.ingest("feedback", feedback([
            {"feedback_id": "live-1", "person_id": "live-p", "touchpoint": "support_chat",
             "nps": 0}]))  # fmt: skip
    finally:
        ing.close()
    found, _ = cases.list_cases(store, None, filters={"touchpoint": ["support_chat"]})
    assert [c["person_id"] for c in found] == ["live-p"] and found[0]["department"] == "service"
    assert record_rules.WATCHES["feedback"][0] == "detractor"


def test_rules_and_promises_changed_through_another_store_are_seen_by_the_next_batch(
    store_url, small_map
):
    """The record rules and promises a batch is evaluated with are kept between batches by a
    digest the store makes of their rows: a rule added or disabled, or a map loaded, through
    another store object (another process, another connection) is seen by the very next batch."""
    first = open_store(store_url)
    ingestor = Ingestor(first)
    other: Store | None = None
    try:
        ingestor.load_map(small_map)
        now = datetime.now(UTC)
        ingestor.ingest("feedback", feedback([{"feedback_id": "f1", "person_id": "p1", "nps": 2}]))
        assert alerts(first) == []
        other = open_store(store_url)
        add_rule(other, Rule("detractors", "detractor", {"per": "record"}), actor="ana")
        ingestor.ingest("feedback", feedback([{"feedback_id": "f2", "person_id": "p1", "nps": 2}]))
        assert alerts(first) == [("detractors", "feedback=f2")]
        disable_rule(other, "detractors", actor="ana")
        ingestor.ingest("feedback", feedback([{"feedback_id": "f3", "person_id": "p1", "nps": 2}]))
        assert len(alerts(first)) == 1
        add_rule(other, Rule("promises", "broken_promise", {"per": "record"}), actor="ana")
        interaction = {
            "person_id": ["p1"],
            "occurred_at": pa.array([now], TS),
            "touchpoint": ["checkout"],
            "channel": ["web"],
            "duration_minutes": [7.0],
        }
        ingestor.ingest("interactions", pa.table({"interaction_id": ["i1"], **interaction}))
        assert ("promises", "interactions=i1|promise=checkout-3min") in alerts(first)
        # the promise relaxed by a map loaded elsewhere: 7 minutes keep it now
        doc = small_map.model_dump(exclude_none=True)
        for tp in doc["touchpoints"]:
            for promise in tp.get("promises", ()):
                if promise["key"] == "checkout-3min":
                    promise["target"] = "<= 10"
        loader = Ingestor(other)
        try:
            loader.load_map(type(small_map).model_validate(doc))
        finally:
            loader.close()
        ingestor.ingest("interactions", pa.table({"interaction_id": ["i2"], **interaction}))
        assert len(alerts(first)) == 2
    finally:
        ingestor.close()
        if other is not None:
            other.close()
        first.close()
    if not store_url.startswith("duckdb"):
        return
    # a DuckDB file written by another process while this one did not hold it: seen on opening
    import duckdb

    with duckdb.connect(store_url.removeprefix("duckdb:///")) as con:
        con.execute("UPDATE alert_rules SET enabled = TRUE WHERE rule_id = 'detractors'")
    with open_store(store_url) as again:
        ingestor = Ingestor(again)
        try:
            ingestor.ingest(
                "feedback", feedback([{"feedback_id": "f9", "person_id": "p1", "nps": 2}])
            )
        finally:
            ingestor.close()
        assert ("detractors", "feedback=f9") in alerts(again)


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        (Rule("c1", "detractor", cooldown_s=10**12), "longer than ten years"),
        (Rule("c2", "detractor", {"max_age": "999999999w"}), "longer than ten years"),
        (Rule("c3", "detractor", {"max_age": "1" + "0" * 400 + "d"}), "longer than ten years"),
        (Rule("c4", "detractor", {"max_nps": 50}), "max_nps must lie in [0, 10]"),
        (Rule("c5", "detractor", {"max_nps": True}), "max_nps must be a number"),
        (Rule("c6", "score_below", {"field": "nps", "below": float("nan")}), "finite"),
        (Rule("c7", "score_below", {"field": "nps", "below": "inf"}), "finite"),
        (Rule("c8", "drift", {"by": ["nonsense_dim"]}), "cannot group by nonsense_dim"),
        (Rule("c9", "drift", {"by": ["touchpoint", "touchpoint"]}), "touchpoint twice"),
        # what the API's body declares holds here too (it raised, or was stored and then
        # failed at every run): a huge whole number, a list given as a number, a period no
        # analysis has, a fraction where a count goes, names with control characters or too long
        (
            Rule("d1", "forecast", {"below": -1, "min_n": 10**400}),
            "min_n must lie in [0, 1e+09], got 1000000000000000000000000000000000000000…",
        ),
        (Rule("d2", "broken_promise", {"promises": 5}), "promises must be a list of names, got 5"),
        (Rule("d3", "drift", {"period": "year"}), "period must be one of 'day', 'week'"),
        (Rule("d4", "drift", {"period": "Month"}), "period must be one of"),
        (
            Rule(
                "d5",
                "threshold",
                {"analysis": "gaps", "column": "mean_gap", "below": 0, "lookback": 1.5},
            ),
            "lookback must be a whole number, got 1.5",
        ),
        (Rule("d6", "text", {"themes": ["a\x00b"]}), "themes[0]: control characters"),
        (Rule("d7", "text", {"themes": ["x" * 300]}), "themes[0]: string should have at most 200"),
        (Rule("d8", "detractor", name="a\x1bb"), "name: control characters are not allowed"),
        (Rule("d9", "detractor", scope={"region": ["x" * 201]}), "scope region: string should"),
    ],
)
def test_rules_that_could_never_run_are_refused_when_stored(store, rule, says):
    """Values a rule could store but never use are refused at once, on every path (the API, the
    CLI and the library share rules.check): a cooldown or age of more than ten years (a larger
    one overflowed the dates a rule subtracts it from and stopped every rule from firing),
    scores out of their scale or not finite, groupings that do not exist or come twice."""
    with pytest.raises(RuleError, match=re.escape(says)):
        add_rule(store, rule, actor="ana")
    assert list_rules(store) == []


#: a complete definition of each kind, to which a number is added
_COMPLETE: dict[str, dict[str, Any]] = {
    "score_below": {"field": "nps", "below": 5},
    "threshold": {"analysis": "gaps", "column": "mean_gap", "below": 0},
    "change": {"analysis": "gaps", "column": "mean_gap"},
    "forecast": {"ratio": 2},
}


@pytest.mark.parametrize("key", sorted(k for k, b in NUMBERS.items() if b[:2] != (None, None)))
def test_every_bound_the_api_declares_is_checked_on_every_path(store, key):
    """The bounds of a definition's numbers are declared once (rule_params.RuleDefinition, the
    API body's schema), and the check that the CLI and the library share (rules.check) refuses
    a value just outside each of them (the bound itself where it is open), saying where the
    value may lie; the value on a closed bound is kept."""
    bounds = NUMBERS[key]
    kind = next(k for k, keys in DEFINITION_KEYS.items() if key in keys)
    complete = _COMPLETE.get(kind, {})
    sides = [(bounds.low, bounds.open_low, -1.0), (bounds.high, bounds.open_high, 1.0)]
    for edge, open_, step in sides:
        if edge is not None:
            outside = edge if open_ else edge + step
            with pytest.raises(RuleError, match=re.escape(f"{key} must {bounds.words()}, got")):
                add_rule(store, Rule("r", kind, complete | {key: outside}), actor="ana")
    assert list_rules(store) == []
    kept = next(edge for edge, open_, _ in sides if edge is not None and not open_)
    add_rule(store, Rule("r", kind, complete | {key: kept}), actor="ana")
    assert list_rules(store)[0].definition[key] == kept


def test_a_number_given_as_text_is_read_as_the_api_reads_it(store):
    """``"30"`` for a count is 30, a whole number (the API's body reads it so too), not 30.0
    shown as "n ≥ 30.0"."""
    rule = add_rule(store, Rule("t", "threshold", {"analysis": "gaps", "column": "mean_gap",
                                                   "below": "0", "min_n": "30"}),
                    actor="ana")  # fmt: skip
    assert rule.definition["min_n"] == 30 and isinstance(rule.definition["min_n"], int)


def test_the_api_refuses_true_and_false_as_numbers(store):
    """JSON's true was read as 1 (``horizon: true`` stored a rule one period ahead)."""
    app = create_app(Settings(auth="off", scheduler="off"), store=store)
    with TestClient(app) as c:
        for definition in ({"max_nps": True}, {"horizon": True, "below": -1},
                           {"jump": True}, {"below": False, "field": "nps"}):  # fmt: skip
            kind = {"max_nps": "detractor", "horizon": "forecast", "jump": "churn_jump",
                    "below": "score_below"}[next(iter(definition))]  # fmt: skip
            r = c.post("/api/v1/rules", json={"rule_id": "b", "kind": kind,
                                              "definition": definition})  # fmt: skip
            assert r.status_code == 422, (definition, r.text)
            assert "must be a number, not true or false" in r.json()["error"]["message"]
    assert list_rules(store) == []


def test_the_cli_offers_every_parameter_the_api_declares():
    """``corridor rules add`` has an option for each parameter of the API's rule definition
    (generated from it: a new parameter needs no CLI code), with the API's description."""
    from corridor.cli.rules import rules_add

    shown = {p.name: p for p in inspect.signature(rules_add).parameters.values()}
    for key, (_, words) in parameters().items():
        name = {"promises": "promise", "intents": "intent", "themes": "theme"}.get(key, key)
        assert name in shown, f"corridor rules add has no --{name.replace('_', '-')}"
        assert words and shown[name].annotation.__metadata__[0].help == words
    assert "param" in shown  # (params: --param NAME=VALUE)


def test_rules_the_corridor_map_says_could_never_fire_are_refused(store, ingestor):
    """With a corridor map loaded, a scope whose touch points all belong to other departments
    than the scope's (a record is at one touch point, of one department), and a broken-promise
    rule naming a promise the map does not have, are refused with what the map has."""
    with pytest.raises(RuleError, match="no touch point of home_delivery belongs to ecommerce"):
        add_rule(store, Rule("r1", "detractor", scope={"department": ["ecommerce"],
                                                       "touchpoint": ["home_delivery"]}),
                 actor="ana")  # fmt: skip
    with pytest.raises(RuleError, match="no promise 'checkout-3mins' in the corridor map"):
        add_rule(store, Rule("r2", "broken_promise", {"promises": ["checkout-3mins"]}),
                 actor="ana")  # fmt: skip
    assert list_rules(store) == []
    add_rule(store, Rule("r3", "detractor", scope={"department": ["ecommerce", "logistics"],
                                                   "touchpoint": ["home_delivery"]}),
             actor="ana")  # fmt: skip
    add_rule(store, Rule("r4", "broken_promise", {"promises": ["checkout-3min"]}), actor="ana")
    assert [r.rule_id for r in list_rules(store)] == ["r3", "r4"]
