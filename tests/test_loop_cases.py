"""Cases on both engines: opened and joined by alerts, routed to their owner, worked through
their states with a full history and a notification per change (written in the change's
transaction), scoped by role through the API (a department head cannot read or change another
department's case by URL: 404, as an unknown id), and verified from the customer's side after
resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pytest
import time_machine
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.auth.scope import Principal, Role, Scope
from corridor.cli.main import app as cli_app
from corridor.errors import CorridorError, PermissionDeniedError
from corridor.ingest.pipeline import Ingestor
from corridor.loop import aggregate_rules, cases, casestore, mail, verify, webhooks
from corridor.loop.cases import CaseError, CaseNotFoundError
from corridor.loop.outbox_rows import WEBHOOK_EVENTS
from corridor.loop.rules import Rule, add_rule
from corridor.settings import Settings
from corridor.store import open_store

TS = pa.timestamp("us", tz="UTC")
PASSWORD = "case-password-1"
USERS = {
    "root": ("admin", {}),
    "ana": ("analyst", {}),
    "lena": ("department_head", {"department": "logistics"}),
    "eric": ("department_head", {"department": "ecommerce"}),
    "paul": ("partner_manager", {"partner": "dhl"}),
    "aggie": ("agent", {}),
}


def ingest_feedback(ingestor: Ingestor, rows: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    base = {"source": "survey", "occurred_at": now, "touchpoint": "checkout"}
    full = [{**base, **r} for r in rows]
    names = sorted({k for r in full for k in r})
    cols = {n: [r.get(n) for r in full] for n in names}
    ingestor.ingest(
        "feedback",
        pa.table({n: pa.array(v, TS) if n == "occurred_at" else v for n, v in cols.items()}),
    )


def events(store) -> list[str]:
    return [r[0] for r in store.query("SELECT event_type FROM outbox WHERE target_kind = "
                                      "'webhook' ORDER BY id")]  # fmt: skip


@pytest.fixture
def world(store, ingestor):
    """Users of every role; three open cases: p1 at checkout (ecommerce), p2 at home delivery
    through partner dhl (logistics), p3 at the support call (service)."""
    for name, (role, extra) in USERS.items():
        accounts.add_user(store, name, PASSWORD, role, **extra)
    webhooks.add_endpoint(store, "https://hooks.example.com/corridor")
    add_rule(store, Rule("detractors", "detractor", reopen_unverified=True), actor="ana")
    now = datetime.now(UTC)
    ingestor.ingest("interactions", pa.table({
        "interaction_id": ["i2"], "person_id": ["p2"], "occurred_at": pa.array([now], TS),
        "touchpoint": ["home_delivery"], "channel": ["partner"], "partner_id": ["dhl"],
    }))  # fmt: skip
    ingest_feedback(ingestor, [
        {"feedback_id": "f1", "person_id": "p1", "nps": 2},
        {"feedback_id": "f2", "person_id": "p2", "nps": 3, "touchpoint": None,
         "interaction_id": "i2"},
        {"feedback_id": "f3", "person_id": "p3", "nps": 4, "touchpoint": "support_call"},
    ])  # fmt: skip
    found, _ = cases.list_cases(store, None)
    return {c["touchpoint"]: c["case_id"] for c in found}


# -- the life of a case ---------------------------------------------------------------------------
def test_a_case_from_alert_to_closure_with_its_history_and_notifications(store, ingestor, world):
    case_id = world["checkout"]
    mail.set_preference(store, "eric", "eric@example.com")  # heads ecommerce: mailed at once
    case = cases.get_case(store, None, case_id)
    assert case["state"] == "new" and case["owner"] == {"kind": "department", "name": "ecommerce"}
    assert [a["record_id"] for a in case["alerts_fired"]] == ["f1"]
    assert case["alerts_fired"][0]["evidence"]["record"]["nps"] == 2
    assert events(store).count("case.opened") == 3 and events(store).count("alert.fired") == 3

    cases.assign(store, None, case_id, "eric", actor="ana")
    with pytest.raises(CaseError, match="no user"):
        cases.assign(store, None, case_id, "nobody", actor="ana")
    cases.add_note(store, None, case_id, "Called the customer back.", actor="eric")
    with pytest.raises(CaseError, match="needs some text"):
        cases.add_note(store, None, case_id, "  ", actor="eric")
    cases.change_state(store, None, case_id, "open", actor="eric")
    with pytest.raises(CaseError, match="open already"):
        cases.change_state(store, None, case_id, "open", actor="eric")
    with pytest.raises(CaseError, match="resolving needs a root cause"):
        cases.change_state(store, None, case_id, "resolved", actor="eric")
    with pytest.raises(CaseError, match="not 'gremlins'"):
        cases.change_state(store, None, case_id, "resolved", root_cause="gremlins", actor="eric")
    with pytest.raises(CaseError, match="no operational event"):
        cases.change_state(store, None, case_id, "resolved", root_cause="process",
                           root_cause_event="ops-nope", actor="eric")  # fmt: skip
    done = cases.change_state(store, None, case_id, "resolved", root_cause="process",
                              note="checkout timeout raised", actor="eric")  # fmt: skip
    assert done["state"] == "resolved" and done["root_cause"] == "process"
    assert done["verification"] == "pending" and done["verify_after"] == done["resolved_at"]
    cases.change_state(store, None, case_id, "closed", actor="eric")
    with pytest.raises(CaseError, match="closed is final"):
        cases.change_state(store, None, case_id, "open", actor="eric")

    history = cases.get_case(store, None, case_id)["history"]
    assert [(e["actor"], e["action"], e["old_value"], e["new_value"]) for e in history] == [
        ("rule:detractors", "opened", None, "new"),
        ("ana", "assigned", None, "eric"),
        ("eric", "note", None, None),
        ("eric", "state", "new", "open"),
        ("eric", "state", "open", "resolved"),
        ("eric", "state", "resolved", "closed"),
    ]
    assert history[2]["note"] == "Called the customer back."
    assert history[4]["note"] == "checkout timeout raised"
    c = cases.get_case(store, None, case_id)
    assert c["first_response_at"] == history[2]["changed_at"]  # the note, not the assignment
    mine = [r[0] for r in store.query(
        "SELECT event_type FROM outbox WHERE target_kind = 'webhook' "
        "AND payload::VARCHAR LIKE ? ORDER BY id", (f"%{case_id}%",))]  # fmt: skip
    assert mine == ["case.opened", "alert.fired", "case.assigned", "case.note_added",
                    "case.state_changed", "case.state_changed", "case.state_changed"]  # fmt: skip
    mailed = store.query("SELECT DISTINCT target FROM outbox WHERE target_kind = 'email'")
    assert mailed == [("eric@example.com",)]
    # the same cause after the case was resolved opens a new case (after the cooldown)
    later = datetime.now(UTC) + timedelta(days=8)
    with time_machine.travel(later, tick=False):
        ingest_feedback(ingestor, [{"feedback_id": "f9", "person_id": "p1", "nps": 1,
                                    "occurred_at": later}])  # fmt: skip
    found, _ = cases.list_cases(store, None, filters={"person_id": ["p1"]})
    assert len(found) == 2 and found[0]["state"] == "new" and found[0]["case_id"] != case_id


def test_a_failed_change_writes_neither_the_change_nor_its_notification(store, world):
    before = store.count("outbox"), store.count("case_events")
    with pytest.raises(CaseError):
        cases.change_state(store, None, world["checkout"], "resolved", root_cause="x", actor="a")
    assert (store.count("outbox"), store.count("case_events")) == before


def test_root_causes_are_configurable(store, world):
    keys = [c["key"] for c in cases.list_root_causes(store)]
    assert "process" in keys and "operational_event" in keys
    cases.set_root_causes(store, [("carrier", "The carrier"), ("weather", "Weather")])
    assert cases.list_root_causes(store) == [
        {"key": "carrier", "label": "The carrier"},
        {"key": "weather", "label": "Weather"},
    ]
    with pytest.raises(CaseError, match="one of carrier, weather"):
        cases.change_state(store, None, world["checkout"], "resolved", root_cause="process",
                           actor="a")  # fmt: skip
    with pytest.raises(CaseError):
        cases.set_root_causes(store, [("a", "A"), ("a", "B")])
    with pytest.raises(CaseError, match="distinct keys"):  # the same once stripped, as stored
        cases.set_root_causes(store, [("a", "A"), (" a", "B")])
    assert [c["key"] for c in cases.list_root_causes(store)] == ["carrier", "weather"]


# -- scope, by URL and API --------------------------------------------------------------------
def key(store, user: str) -> dict[str, str]:
    _, secret = accounts.create_key(store, user, "test")
    return {"Authorization": f"Bearer {secret}"}


def test_each_role_sees_and_works_only_the_cases_of_its_scope(store, world):
    checkout, delivery, support = world["checkout"], world["home_delivery"], world["support_call"]
    app = create_app(Settings(), store=store)
    h = {u: key(store, u) for u in USERS}
    with TestClient(app) as c:

        def listed(user: str, **params: Any) -> set[str]:
            r = c.get("/api/v1/cases", params=params, headers=h[user])
            assert r.status_code == 200, r.text
            assert r.json()["total"] == len(r.json()["cases"])
            return {x["case_id"] for x in r.json()["cases"]}

        assert listed("root") == listed("ana") == {checkout, delivery, support}
        assert listed("lena") == {delivery}  # logistics: home delivery
        assert listed("eric") == {checkout}
        assert listed("paul") == {delivery}  # partner dhl delivered it
        # a filter never widens: outside the view it is refused, as the inbox page refuses it
        for user, params, says in (
            ("lena", {"department": "ecommerce"}, "no department 'ecommerce' in your view"),
            ("lena", {"touchpoint": "checkout"}, "no touch point 'checkout' in your view"),
            ("paul", {"partner": "ups"}, "no partner 'ups' in your view"),
        ):
            r = c.get("/api/v1/cases", params=params, headers=h[user])
            assert r.status_code == 422 and r.json()["error"]["message"] == says, r.text
        assert listed("lena", department="logistics") == {delivery}
        assert listed("paul", partner="dhl", touchpoint="home_delivery") == {delivery}
        assert listed("aggie") == {checkout, delivery, support}  # open cases of customers

        # another department's case, by URL: 404, worded as for an unknown id
        unknown = c.get("/api/v1/cases/case-nope", headers=h["lena"])
        other = c.get(f"/api/v1/cases/{checkout}", headers=h["lena"])
        assert unknown.status_code == other.status_code == 404
        assert other.json()["error"]["message"] == unknown.json()["error"]["message"].replace(
            "case-nope", checkout
        )
        assert c.get(f"/api/v1/cases/{delivery}", headers=h["lena"]).status_code == 200
        # nor can she change it, whatever the change
        changes = [
            ("assign", {"assignee": "lena"}),
            ("notes", {"text": "mine now"}),
            ("state", {"state": "pending"}),
            ("priority", {"priority": "urgent"}),
        ]
        for path, body in changes:
            r = c.post(f"/api/v1/cases/{checkout}/{path}", json=body, headers=h["lena"])
            assert r.status_code == 404, (path, r.text)
            r = c.post(f"/api/v1/cases/{support}/{path}", json=body, headers=h["paul"])
            assert r.status_code == 404, (path, r.text)
        untouched = cases.get_case(store, None, checkout)
        assert untouched["assignee"] is None and len(untouched["history"]) == 1
        # her own department's case she works
        r = c.post(f"/api/v1/cases/{delivery}/notes", json={"text": "asked dhl"},
                   headers=h["lena"])  # fmt: skip
        assert r.status_code == 200 and r.json()["first_response_at"] is not None
        body = {"state": "resolved", "root_cause": "partner", "note": "re-routed"}
        r = c.post(f"/api/v1/cases/{delivery}/state", headers=h["paul"], json=body)
        assert r.status_code == 200 and r.json()["state"] == "resolved"
        history = c.get(f"/api/v1/cases/{delivery}", headers=h["lena"]).json()["history"]
        assert [e["actor"] for e in history] == ["rule:detractors", "lena", "paul"]

        # an agent sees a customer's open cases on the timeline, read only
        r = c.get("/api/v1/people/p1/cases", headers=h["aggie"])
        assert r.status_code == 200 and [x["case_id"] for x in r.json()] == [checkout]
        assert c.get(f"/api/v1/cases/{checkout}", headers=h["aggie"]).status_code == 200
        r = c.post(f"/api/v1/cases/{checkout}/notes", json={"text": "hi"}, headers=h["aggie"])
        assert r.status_code == 403
        assert c.get(f"/api/v1/cases/{delivery}", headers=h["aggie"]).status_code == 404  # resolved
        assert c.get("/api/v1/people/p1/cases", headers=h["lena"]).json() == []
        assert c.get("/api/v1/rules", headers=h["aggie"]).status_code == 403

        # rules: every role but agent reads them; only admins and analysts change them
        assert c.get("/api/v1/rules", headers=h["lena"]).status_code == 200
        body = {"rule_id": "mine", "kind": "detractor"}
        assert c.post("/api/v1/rules", json=body, headers=h["lena"]).status_code == 403
        assert c.post("/api/v1/rules", json=body, headers=h["ana"]).status_code == 201
        # a dry run shows a department head the alerts of her scope only
        r = c.get("/api/v1/rules/detractors/test", headers=h["lena"])
        assert r.status_code == 200, r.text
        assert [a["touchpoint"] for a in r.json()["alerts"]] == ["home_delivery"]
        assert c.get("/api/v1/rules/detractors/test", headers=h["ana"]).json()["n"] == 3
        r = c.get("/api/v1/cases", params={"nonsense": "1"}, headers=h["ana"])
        assert r.status_code == 422 and "unknown query parameter(s) nonsense" in r.text


def test_case_api_refuses_bad_input(store, world):
    app = create_app(Settings(auth="off"), store=store)
    checkout = world["checkout"]
    with TestClient(app) as c:
        for path, body in (
            ("state", {"state": "done"}),
            ("state", {"state": "resolved"}),
            ("priority", {"priority": "asap"}),
            ("notes", {"text": ""}),
            ("notes", {"text": "bell \x07"}),
            ("assign", {"assignee": "x", "extra": 1}),
        ):
            r = c.post(f"/api/v1/cases/{checkout}/{path}", json=body)
            assert r.status_code == 422, (path, body, r.text)
        for body in (
            {"rule_id": "x", "kind": "nope"},
            {"rule_id": "x", "kind": "threshold", "definition": {"analysis": "gaps"}},
            {"rule_id": "x", "kind": "detractor", "definition": {"max_nps": "NaN"}},
            {"rule_id": "x", "kind": "detractor", "cooldown": "soon"},
            {"rule_id": "x y", "kind": "detractor"},
        ):
            r = c.post("/api/v1/rules", json=body)
            assert r.status_code == 422, (body, r.text)
        # a scope the corridor map does not have: a rule that could never fire, refused
        for scope, says in (
            ({"touchpoint": ["chekout"]}, "did you mean 'checkout'?"),
            ({"department": ["logistcs"]}, "did you mean 'logistics'?"),
        ):
            r = c.post("/api/v1/rules", json={"rule_id": "x", "kind": "detractor", "scope": scope})
            assert r.status_code == 422 and says in r.json()["error"]["message"], r.text
        r = c.post("/api/v1/rules", json={"rule_id": "x", "kind": "detractor",
                                          "scope": {"touchpoint": ["checkout"]}})  # fmt: skip
        assert r.status_code in (200, 201), r.text
        # a case goes only to someone who may work it; an unknown user gets the same answer
        # (no list of who exists); nothing is written or notified for a refusal
        notified = len(events(store))
        for who in ("lena", "aggie", "nobody"):  # another department's head; an agent; no one
            r = c.post(f"/api/v1/cases/{checkout}/assign", json={"assignee": who})
            assert r.status_code == 422, (who, r.text)
            assert f"no user {who!r} who may work this case" in r.json()["error"]["message"]
        assert len(events(store)) == notified
        assert cases.get_case(store, None, checkout)["assignee"] is None
        for who, case in (("eric", checkout), ("ana", checkout), ("paul", world["home_delivery"])):
            r = c.post(f"/api/v1/cases/{case}/assign", json={"assignee": who})
            assert r.status_code == 200 and r.json()["assignee"] == who, (who, r.text)
        with pytest.raises(CaseError, match="control characters"):
            cases.add_note(store, None, checkout, "a\x00b")
        with pytest.raises(CaseError, match="control characters"):
            cases.change_state(store, None, checkout, "open", note="\x1b[2J")
        assert c.get("/api/v1/rules/nope").status_code == 404
        assert c.get("/api/v1/rules/nope/test").status_code == 404
        r = c.get("/api/v1/rules/detractors/test", params={"since": "2025-02-30"})
        assert r.status_code == 422
        # a range from a later time to an earlier one is a slip, not "no alerts" or "no cases"
        backwards = {"since": "2026-01-01", "until": "2025-01-01"}
        for path in ("/api/v1/rules/detractors/test", "/api/v1/case-report"):
            r = c.get(path, params=backwards)
            assert r.status_code == 422, (path, r.text)
            assert "must be before until" in r.json()["error"]["message"]
        # a state or priority outside their lists is refused with the list, not matched to no
        # case; the valid ones still filter, comma-separated or repeated
        for params, allowed in (({"state": "opne"}, "new, open, pending, resolved, closed"),
                                ({"priority": "asap"}, "low, normal, high, urgent"),
                                ({"state": ["new", "clsoed"]}, "new, open")):  # fmt: skip
            r = c.get("/api/v1/cases", params=params)
            assert r.status_code == 422, (params, r.text)
            message = r.json()["error"]["message"]
            assert allowed in message and "unknown" in message, message
        assert c.get("/api/v1/cases", params={"state": "new,open"}).json()["total"] == 3
        assert c.get("/api/v1/cases", params={"state": ["resolved"]}).json()["total"] == 0
        assert c.get("/api/v1/cases", params={"priority": "normal"}).json()["total"] == 3
        spec = c.get("/openapi.json").json()["paths"]["/api/v1/cases"]["get"]["parameters"]
        described = {p["name"]: p.get("description", "") for p in spec}
        assert "pending" in described["state"] and "urgent" in described["priority"]
        r = c.put("/api/v1/sla-policies/de", json={"calendar": {"holidays": "DE"}})
        assert r.status_code == 200 and r.json()["calendar"]["holidays"] == "DE"
        r = c.put("/api/v1/sla-policies/xx", json={"calendar": {"holidays": "XX"}})
        assert r.status_code == 422
        assert [p["name"] for p in c.get("/api/v1/sla-policies").json()] == ["default", "de"]


# -- verification ---------------------------------------------------------------------------------
def test_a_customer_case_is_verified_by_their_next_feedback(store, ingestor, world):
    checkout, support = world["checkout"], world["support_call"]
    for case_id in (checkout, support):
        cases.change_state(store, None, case_id, "resolved", root_cause="staff", actor="eric")
    assert verify.verify_due(store) == 0  # no feedback yet: too early to tell
    assert cases.get_case(store, None, checkout)["verification"] == "too_early"
    later = datetime.now(UTC) + timedelta(days=9)  # past the rule's cooldown
    with time_machine.travel(later, tick=False):
        ingest_feedback(ingestor, [
            {"feedback_id": "n1", "person_id": "p1", "nps": 9, "occurred_at": later},
            {"feedback_id": "n3", "person_id": "p3", "nps": 2, "touchpoint": "support_call",
             "occurred_at": later},
        ])  # fmt: skip
        assert verify.verify_due(store) == 2
    fixed = cases.get_case(store, None, checkout)
    assert fixed["verification"] == "verified" and fixed["state"] == "closed"
    assert fixed["verification_detail"]["feedback_id"] == "n1"
    again = cases.get_case(store, None, support)
    # still a detractor: not verified, reopened as the rule says
    assert again["verification"] == "not_verified" and again["state"] == "open"
    assert [e["action"] for e in again["history"]][-2:] == ["verification", "state"]
    assert "case.verification" in events(store)
    # every event this life of a case sent is one an endpoint's filter may name
    assert set(events(store)) <= set(WEBHOOK_EVENTS)


def test_a_touch_point_case_is_verified_on_the_gap_weeks_after_against_before(store, ingestor):
    add_rule(store, Rule("gap-low", "threshold", {"analysis": "gaps", "column": "mean_gap",
                         "below": -2, "period": "week", "min_n": 20}), actor="ana")  # fmt: skip
    fixed_at = datetime(2025, 6, 2, 12, tzinfo=UTC)  # a Monday
    before = [fixed_at - timedelta(days=7) + timedelta(hours=3 * i) for i in range(30)]
    after = [fixed_at + timedelta(days=7) + timedelta(hours=3 * i) for i in range(30)]
    rows = [{"feedback_id": f"b{i}", "person_id": f"q{i}", "occurred_at": t, "expectation": 8,
             "experience": 4 + i % 3} for i, t in enumerate(before)]  # fmt: skip
    rows += [{"feedback_id": f"a{i}", "person_id": f"q{i}", "occurred_at": t, "expectation": 8,
              "experience": 8 + i % 2} for i, t in enumerate(after)]  # fmt: skip
    ingest_feedback(ingestor, rows)
    with time_machine.travel(fixed_at, tick=False):
        assert aggregate_rules.evaluate(store) == 1  # the week before: mean gap -3
        (case,), _ = cases.list_cases(store, None)
        assert case["touchpoint"] == "checkout" and case["person_id"] is None
        done = cases.change_state(store, None, case["case_id"], "resolved",
                                  root_cause="process", actor="eric")  # fmt: skip
    assert done["verify_after"] == fixed_at + timedelta(weeks=4)
    with time_machine.travel(fixed_at + timedelta(weeks=1), tick=False):
        assert verify.verify_due(store) == 0  # not due yet
    with time_machine.travel(fixed_at + timedelta(weeks=4, hours=1), tick=False):
        assert verify.verify_due(store) == 1
    c = cases.get_case(store, None, case["case_id"])
    d = c["verification_detail"]
    assert c["verification"] == "verified" and c["state"] == "closed"
    assert d["n_before"] == 30 and d["n_after"] == 30 and d["change_low"] > 0
    assert d["mean_gap_before"] == pytest.approx(-3.0) and d["mean_gap_after"] == pytest.approx(0.5)


# -- the CLI ----------------------------------------------------------------------------------
def test_cases_commands(store_url, small_map):
    with open_store(store_url) as s:
        ing = Ingestor(s)
        ing.load_map(small_map)
        add_rule(s, Rule("detractors", "detractor"), actor="ana")
        ingest_feedback(ing, [{"feedback_id": "f1", "person_id": "p1", "nps": 2}])
        ing.close()
        (case,), _ = cases.list_cases(s, None)
    case_id = case["case_id"]
    run = CliRunner()

    def cli(*args: str) -> str:
        r = run.invoke(cli_app, [*args, "--store", store_url], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.output

    assert case_id in cli("cases", "list")
    cli("cases", "assign", case_id, "eric")
    cli("cases", "note", case_id, "called back")
    cli("cases", "state", case_id, "pending")
    out = cli("cases", "resolve", case_id, "--root-cause", "staff", "--note", "coached")
    assert f"{case_id} resolved (staff)" in out
    import json

    shown = json.loads(cli("cases", "show", case_id, "--format", "json"))
    assert shown["assignee"] == "eric" and shown["state"] == "resolved"
    assert [e["action"] for e in shown["history"]] == [
        "opened", "assigned", "note", "state", "state"]  # fmt: skip
    assert shown["history"][1]["actor"].endswith("(cli)")
    assert "process" in cli("cases", "causes")
    listed = json.loads(cli("cases", "list", "--state", "resolved", "--format", "json"))
    assert listed["total"] == 1
    # a list option takes commas as the API does, and repetition
    both = json.loads(cli("cases", "list", "--state", "resolved,new", "--format", "json"))
    again = json.loads(cli("cases", "list", "--state", "resolved", "--state", "new",
                           "--format", "json"))  # fmt: skip
    assert both["total"] == again["total"] == listed["total"]
    report = json.loads(cli("cases", "report", "--format", "json"))
    assert report["rows"][0]["group"] == "ecommerce" and report["rows"][0]["resolved_n"] == 1
    assert "ecommerce" in cli("cases", "report")
    bad = run.invoke(cli_app, ["cases", "resolve", case_id, "--root-cause", "x", "--store",
                               store_url])  # fmt: skip
    assert bad.exit_code != 0
    # a Corridor error, which `corridor` (cli.main.main) prints as one line and exits 2 on
    for args, says in ((["list", "--state", "opne"], "unknown state 'opne'"),
                       (["report", "--since", "2026-01-01", "--until", "2025-01-01"],
                        "must be before until")):  # fmt: skip
        bad = run.invoke(cli_app, ["cases", *args, "--store", store_url])
        assert isinstance(bad.exception, CorridorError), (args, bad.output, bad.exception)
        assert says in str(bad.exception)


def test_scope_helpers_agree_with_the_sql_filter(store, world):
    for principal in (
        Principal("lena", Role.DEPARTMENT_HEAD, department="logistics"),
        Principal("paul", Role.PARTNER_MANAGER, partner="dhl"),
        Principal("aggie", Role.AGENT),
        Principal("ana", Role.ANALYST),
    ):
        scope = Scope.of(principal, None)
        listed = {c["case_id"] for c in cases.list_cases(store, scope)[0]}
        every = cases.list_cases(store, None)[0]
        seen = {
            c["case_id"]
            for c in every
            if scope.sees_case(
                c["department"], c["partner_id"], person_id=c["person_id"], state=c["state"]
            )
        }
        assert listed == seen, principal
        for c in every:
            if c["case_id"] not in seen:
                with pytest.raises(CaseNotFoundError):
                    cases.get_case(store, scope, c["case_id"])
            elif principal.role is Role.AGENT:
                with pytest.raises(PermissionDeniedError):
                    cases.add_note(store, scope, c["case_id"], "hello")


# -- the report per department ---------------------------------------------------------------------
def test_report_per_department_by_hand(store, ingestor):
    from corridor.loop import reports, sla

    webhooks.add_endpoint(store, "https://hooks.example.com/corridor")
    add_rule(store, Rule("detractors", "detractor"), actor="ana")
    monday = datetime(2025, 6, 2, 10, tzinfo=UTC)
    with time_machine.travel(monday, tick=False):
        ingestor.ingest("interactions", pa.table({
            "interaction_id": ["i2"], "person_id": ["p2"], "occurred_at": pa.array([monday], TS),
            "touchpoint": ["home_delivery"], "channel": ["web"]}))  # fmt: skip
        ingest_feedback(ingestor, [
            {"feedback_id": "f1", "person_id": "p1", "nps": 2, "occurred_at": monday},
            {"feedback_id": "f2", "person_id": "p2", "nps": 2, "occurred_at": monday,
             "touchpoint": "home_delivery"},
        ])  # fmt: skip
    found, _ = cases.list_cases(store, None)
    shop = next(c["case_id"] for c in found if c["department"] == "ecommerce")
    # ecommerce: a note after 2 business hours, then pending until Tuesday 12:00, resolved on
    # Wednesday 10:00, and verified by the customer's next feedback
    with time_machine.travel(monday + timedelta(hours=2), tick=False):
        cases.add_note(store, None, shop, "called back", actor="eric")
        cases.change_state(store, None, shop, "pending", actor="eric")
    with time_machine.travel(monday + timedelta(days=1, hours=2), tick=False):  # Tue 12:00
        cases.change_state(store, None, shop, "open", actor="eric")
    with time_machine.travel(monday + timedelta(days=2), tick=False):  # Wed 10:00
        cases.change_state(store, None, shop, "resolved", root_cause="staff", actor="eric")
    later = monday + timedelta(days=9)
    with time_machine.travel(later, tick=False):
        ingest_feedback(ingestor, [{"feedback_id": "f3", "person_id": "p1", "nps": 10,
                                    "occurred_at": later}])  # fmt: skip
        verify.verify_due(store)
        sla.escalate(store)  # logistics never answered: both clocks breached
    rows = {r["group"]: r for r in reports.case_report(store, None)}
    ecommerce, logistics = rows["ecommerce"], rows["logistics"]
    assert ecommerce["opened"] == 1 and ecommerce["open_now"] == 0
    assert ecommerce["first_response_median_min"] == 120
    # Mon 10:00 to Wed 10:00 is 960 business minutes, less the 480 spent pending
    # (Mon 12-17 = 300, Tue 9-12 = 180)
    assert ecommerce["resolution_median_min"] == 480 and ecommerce["resolved_n"] == 1
    assert ecommerce["breached"] == 0 and ecommerce["verified"] == 1
    assert ecommerce["verified_share"] == 1.0
    assert ecommerce["verified_share_low"] == pytest.approx(1 / (1 + 1.959964**2), abs=1e-4)
    assert logistics["opened"] == 1 and logistics["open_now"] == 1
    assert logistics["first_response_n"] == 0 and logistics["first_response_median_min"] is None
    assert logistics["breached"] == 1 and logistics["breached_share"] == 1.0
    assert logistics["verified_share"] is None
    # the API gives the same rows, and a department head her own department's only
    accounts.add_user(store, "lena", PASSWORD, "department_head", department="logistics")
    app = create_app(Settings(), store=store)
    with TestClient(app) as c:
        r = c.get("/api/v1/case-report", headers=key(store, "lena"))
        assert r.status_code == 200, r.text
        assert [x["group"] for x in r.json()["rows"]] == ["logistics"]
        r = c.get("/api/v1/case-report", params={"by": "touchpoint", "since": "2025-06-03"},
                  headers=key(store, "lena"))  # fmt: skip
        assert r.json()["rows"] == []


# -- a case and its notifications hold only what its owners may see ------------------------------
def _partner_interaction(ingestor: Ingestor, iid: str, partner: str, at: datetime) -> None:
    ingestor.ingest("interactions", pa.table({
        "interaction_id": [iid], "person_id": ["p2"], "occurred_at": pa.array([at], TS),
        "touchpoint": ["home_delivery"], "channel": ["partner"], "partner_id": [partner],
    }))  # fmt: skip


def _mailed(store, to: str) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT payload FROM outbox WHERE target_kind = 'email' AND target = ? ORDER BY id", [to]
    )
    return [orjson.loads(p) if isinstance(p, str | bytes) else p for (p,) in rows]


def test_another_partners_alert_opens_its_own_case_and_is_not_mailed_to_the_first(store, ingestor):
    """The same customer at the same touch point, served by dhl and then by ups, both
    detractors past the rule's cooldown while the first case is open: the ups alert opens a
    case of ups (it does not join dhl's), dhl's partner manager is mailed nothing about it and
    the dhl case's page holds no ups record; the customer's next feedback through ups does not
    verify the dhl case, their next one through dhl does."""
    accounts.add_user(store, "paul", PASSWORD, "partner_manager", partner="dhl")
    accounts.add_user(store, "uma", PASSWORD, "partner_manager", partner="ups")
    mail.set_preference(store, "paul", "paul@dhl.example")
    mail.set_preference(store, "uma", "uma@ups.example")
    add_rule(store, Rule("detractors", "detractor", cooldown_s=60), actor="ana")
    now = datetime.now(UTC)
    _partner_interaction(ingestor, "i-dhl", "dhl", now - timedelta(hours=3))
    ingest_feedback(ingestor, [{"feedback_id": "f-dhl", "person_id": "p2", "nps": 2,
                                "touchpoint": None, "interaction_id": "i-dhl",
                                "occurred_at": now - timedelta(hours=3)}])  # fmt: skip
    _partner_interaction(ingestor, "i-ups", "ups", now - timedelta(hours=2))
    ingest_feedback(ingestor, [{"feedback_id": "f-ups", "person_id": "p2", "nps": 1,
                                "touchpoint": None, "interaction_id": "i-ups",
                                "occurred_at": now - timedelta(hours=2)}])  # fmt: skip
    found, _ = cases.list_cases(store, None)
    by_partner = {c["partner_id"]: c for c in found}
    assert sorted(by_partner) == ["dhl", "ups"] and all(c["alerts"] == 1 for c in found)
    records = {
        to: {a["record_id"] for p in _mailed(store, to)
             for a in p["data"]["change"].get("alerts") or [p["data"]["change"].get("alert")]
             if a}
        for to in ("paul@dhl.example", "uma@ups.example")
    }  # fmt: skip
    assert records == {"paul@dhl.example": {"f-dhl"}, "uma@ups.example": {"f-ups"}}
    dhl = by_partner["dhl"]["case_id"]
    paul = Principal("paul", Role.PARTNER_MANAGER, None, "dhl")
    seen = cases.get_case(store, Scope.of(paul, None), dhl)
    assert [a["record_id"] for a in seen["alerts_fired"]] == ["f-dhl"]

    cases.change_state(store, None, dhl, "resolved", root_cause="partner", actor="root")
    for day, (fid, partner) in enumerate((("n-ups", "ups"), ("n-dhl", "dhl")), start=1):
        later = now + timedelta(days=day)
        with time_machine.travel(later, tick=False):
            _partner_interaction(ingestor, f"i-{fid}", partner, later)
            ingest_feedback(ingestor, [{"feedback_id": fid, "person_id": "p2", "nps": 10,
                                        "touchpoint": None, "interaction_id": f"i-{fid}",
                                        "occurred_at": later}])  # fmt: skip
            verify.verify_due(store)
        case = cases.get_case(store, None, dhl)
        if partner == "ups":  # another partner's record is no evidence, and is not mailed
            assert case["verification"] == "too_early"
            assert "n-ups" not in str(_mailed(store, "paul@dhl.example"))
    assert case["verification"] == "verified"
    assert case["verification_detail"]["feedback_id"] == "n-dhl"


def test_a_rules_cooldown_is_kept_per_partner(store, ingestor):
    """Within the rule's cooldown (a week), the same customer's detractor at the same touch
    point through ups after one through dhl raises an alert and a case of ups (ups' partner
    manager hears of it); a second detractor through dhl within the week raises none."""
    add_rule(store, Rule("detractors", "detractor"), actor="ana")
    now = datetime.now(UTC)
    for n, partner in enumerate(("dhl", "ups", "dhl")):
        at = now - timedelta(hours=3 - n)
        _partner_interaction(ingestor, f"i-{n}", partner, at)
        ingest_feedback(ingestor, [{"feedback_id": f"f-{n}", "person_id": "p2", "nps": 2,
                                    "touchpoint": None, "interaction_id": f"i-{n}",
                                    "occurred_at": at}])  # fmt: skip
    fired = store.query("SELECT record_id, partner_id FROM alerts ORDER BY occurred_at")
    assert [tuple(r) for r in fired] == [("f-0", "dhl"), ("f-1", "ups")]
    found, _ = cases.list_cases(store, None)
    assert sorted(c["partner_id"] for c in found) == ["dhl", "ups"]


def test_a_touch_point_case_names_no_customer_and_the_gap_verifies_it(store, ingestor):
    """A rule per touch point opens one case for the detractors of two customers at checkout:
    it names neither (it is on no customer's timeline), its alerts name each, and once resolved
    it is verified by the touch point's gap, not by the first customer's next feedback."""
    add_rule(store, Rule("hotspot", "detractor", {"per": "touchpoint"}, cooldown_s=60),
             actor="ana")  # fmt: skip
    now = datetime.now(UTC)
    ingest_feedback(ingestor, [
        {"feedback_id": "t1", "person_id": "p1", "nps": 2, "touchpoint": "checkout",
         "occurred_at": now - timedelta(hours=2)},
        {"feedback_id": "t2", "person_id": "p2", "nps": 1, "touchpoint": "checkout",
         "occurred_at": now - timedelta(hours=1)},
    ])  # fmt: skip
    (case,), _ = cases.list_cases(store, None)
    assert case["person_id"] is None and case["touchpoint"] == "checkout"
    assert cases.customer_cases(store, None, "p1") == []
    seen = cases.get_case(store, None, case["case_id"])
    assert sorted(a["person_id"] for a in seen["alerts_fired"]) == ["p1", "p2"]
    cases.change_state(store, None, case["case_id"], "resolved", root_cause="process",
                       actor="root")  # fmt: skip
    with store.transaction() as tx:
        stored = casestore.read_case(tx, case["case_id"])
        _, detail = verify.check(tx, stored, datetime.now(UTC) + timedelta(days=60))
    assert detail["method"].startswith("mean gap")


def test_a_removed_user_gets_no_digest_and_a_new_holder_of_the_name_no_old_case(store, world):
    """Removing a user removes their notification settings, cancels their digest lines and
    puts the cases given to them back in their owners' queues (a history line says why);
    someone added again under the name with another role is not mailed about a case they were
    assigned before and can no longer see."""
    checkout = world["checkout"]  # an ecommerce case
    mail.set_preference(store, "eric", "eric@example.com")  # ecommerce head: mailed at once
    mail.set_preference(store, "ana", "ana@example.com", mode="digest", digest="hourly")
    cases.assign(store, None, checkout, "eric", actor="root")
    cases.assign(store, None, world["support_call"], "ana", actor="root")
    waiting = store.query("SELECT count(*) FROM outbox WHERE target_kind = 'digest' AND "
                          "target = 'ana' AND state = 'pending'")[0][0]  # fmt: skip
    assert waiting >= 1
    accounts.remove_user(store, "ana")
    assert mail.get_preference(store, "ana") is None
    released = cases.get_case(store, None, world["support_call"])  # back in the owner's queue
    assert released["assignee"] is None
    last = released["history"][-1]
    assert (last["actor"], last["field"], last["old_value"], last["new_value"]) == (
        "system",
        "assignee",
        "ana",
        None,
    )
    assert last["note"] == "the user was removed"
    assert cases.list_cases(store, None, filters={"assignee": ["ana"]})[0] == []
    later = datetime.now(UTC) + timedelta(hours=2)
    assert mail.send_digests(store, now=later) == 0
    assert store.query("SELECT count(*) FROM outbox WHERE target_kind = 'digest' AND "
                       "target = 'ana' AND state = 'pending'")[0][0] == 0  # fmt: skip

    accounts.remove_user(store, "eric")  # eric comes back heading logistics
    accounts.add_user(store, "eric", PASSWORD, "department_head", department="logistics")
    mail.set_preference(store, "eric", "eric@example.com")
    before = len(_mailed(store, "eric@example.com"))
    cases.add_note(store, None, checkout, "still waiting for the carrier", actor="root")
    assert len(_mailed(store, "eric@example.com")) == before
