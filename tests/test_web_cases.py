"""The closed loop's pages on both engines: the case inbox, the case page and its forms, the
rules page, and the customer page's open cases, each for the roles that may see them.

A department head sees and counts only their department's cases, cannot open another
department's case by URL nor post to it (the same 404 page as an unknown id, and nothing is
written); every form writes its line of history; an agent reads, never works, a case.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.ingest.pipeline import Ingestor
from corridor.loop import cases
from corridor.loop.rules import Rule, add_rule
from corridor.settings import Settings
from corridor.web.case_views import sla_words

TS = pa.timestamp("us", tz="UTC")
PASSWORD = "case-pages-password"
OWN = {"origin": "http://testserver"}
USERS = {
    "ana": ("analyst", {}),
    "lena": ("department_head", {"department": "logistics"}),
    "eric": ("department_head", {"department": "ecommerce"}),
    "paul": ("partner_manager", {"partner": "dhl"}),
    "aggie": ("agent", {}),
}


def ingest_feedback(ingestor: Ingestor, rows: list[dict[str, Any]]) -> None:
    base = {"source": "survey", "occurred_at": datetime.now(UTC), "touchpoint": "checkout"}
    full = [{**base, **r} for r in rows]
    names = sorted({k for r in full for k in r})
    cols = {n: [r.get(n) for r in full] for n in names}
    ingestor.ingest(
        "feedback",
        pa.table({n: pa.array(v, TS) if n == "occurred_at" else v for n, v in cols.items()}),
    )


@pytest.fixture
def world(store, ingestor):
    """Users of every role and three new cases from a detractor rule: p1 at checkout
    (ecommerce), p2 at home delivery through dhl (logistics), p3 at the support call
    (service)."""
    for name, (role, extra) in USERS.items():
        accounts.add_user(store, name, PASSWORD, role, **extra)
    add_rule(store, Rule("detractors", "detractor"), actor="ana")
    now = datetime.now(UTC)
    ingestor.ingest("interactions", pa.table({
        "interaction_id": ["i2"], "person_id": ["p2"], "occurred_at": pa.array([now], TS),
        "touchpoint": ["home_delivery"], "channel": ["partner"], "partner_id": ["dhl"],
    }))  # fmt: skip
    ingest_feedback(ingestor, [
        {"feedback_id": "f1", "person_id": "p1", "nps": 2, "text": "The payment page froze."},
        {"feedback_id": "f2", "person_id": "p2", "nps": 3, "touchpoint": None,
         "interaction_id": "i2", "expectation": 8, "experience": 3},
        {"feedback_id": "f3", "person_id": "p3", "nps": 4, "touchpoint": "support_call"},
    ])  # fmt: skip
    found, _ = cases.list_cases(store, None)
    return {c["touchpoint"]: c["case_id"] for c in found}


@pytest.fixture
def app(store, world):
    return create_app(Settings(), store=store)


def signed_in(app, user: str) -> TestClient:
    c = TestClient(app, headers=OWN)
    r = c.post("/login", data={"username": user, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c


def case_links(page: str) -> set[str]:
    return set(re.findall(r'href="/cases/(case-[0-9a-f]+)"', page))


def counts(page: str) -> dict[str, int]:
    return {s: int(n) for s, n in re.findall(r"<span>(\w+)</span> <strong>(\d+)</strong>", page)}


# -- the inbox --------------------------------------------------------------------------------
def test_the_inbox_lists_and_counts_only_the_cases_in_scope(app, world):
    checkout, delivery, support = world["checkout"], world["home_delivery"], world["support_call"]
    with TestClient(app) as c:
        r = c.get("/cases", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/cases"
    with signed_in(app, "lena") as c:
        page = c.get("/cases")
        assert page.status_code == 200
        assert case_links(page.text) == {delivery}
        assert counts(page.text) == {"new": 1, "open": 0, "pending": 0, "resolved": 0,
                                     "closed": 0, "all": 1}  # fmt: skip
        assert "Showing 1–1 of 1 case." in page.text
        assert 'href="/cases" aria-current="page">Cases</a>' in page.text
        assert 'href="/rules"' in page.text  # department heads read the rules
        # a filter never widens: another department's touch point is refused, not shown
        assert c.get("/cases", params={"touchpoint": "checkout"}).status_code == 422
        assert c.get("/cases", params={"state": "bogus"}).status_code == 422
        mine = c.get("/cases", params={"mine": "yes"})
        assert case_links(mine.text) == set() and "No cases match" in mine.text
        # a page number past the end (or past any offset the engines take) shows the last page
        for page_number in ("7", "184467440737095517", "99999999999999999999", "-5"):
            far = c.get("/cases", params={"page": page_number})
            assert far.status_code == 200, (page_number, far.text[:300])
            assert case_links(far.text) == {delivery} and "Showing 1–1 of 1 case." in far.text
    with signed_in(app, "paul") as c:
        assert case_links(c.get("/cases").text) == {delivery}
    with signed_in(app, "ana") as c:
        page = c.get("/cases")
        assert case_links(page.text) == {checkout, delivery, support}
        assert counts(page.text)["new"] == 3
        only = c.get("/cases", params={"touchpoint": "support_call", "priority": "normal"})
        assert case_links(only.text) == {support}
        assert counts(only.text)["all"] == 1  # the counts follow the other filters
        assert case_links(c.get("/cases", params={"state": "closed"}).text) == set()
        assert case_links(c.get("/cases", params={"sla": "on time"}).text) == {
            checkout, delivery, support}  # fmt: skip
        assert case_links(c.get("/cases", params={"sla": "breached"}).text) == set()
    with signed_in(app, "aggie") as c:
        page = c.get("/cases")
        assert case_links(page.text) == {checkout, delivery, support}
        assert "read only" in page.text and 'href="/rules"' not in page.text


def test_sla_state_in_words():
    now = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
    base = {"state": "open", "first_response_at": None, "first_response_breached_at": None,
            "resolution_breached_at": None, "resolution_due": now + timedelta(days=4)}  # fmt: skip
    due = {**base, "first_response_due": now + timedelta(hours=3, minutes=5)}
    assert sla_words(due, now) == {"text": "response due in 3 h", "tone": "soon"}
    late = {**base, "first_response_due": now - timedelta(hours=2)}
    assert sla_words(late, now) == {"text": "response breached 2 h ago", "tone": "breached"}
    answered = {**late, "first_response_at": now - timedelta(hours=1)}
    assert sla_words(answered, now) == {"text": "resolution due in 4 d", "tone": "ok"}
    paused = {**due, "state": "pending"}
    assert sla_words(paused, now) == {"text": "paused (pending)", "tone": "paused"}
    done = {**due, "state": "resolved"}
    assert sla_words(done, now) == {"text": "resolved in time", "tone": "met"}


# -- one case ---------------------------------------------------------------------------------
def test_a_case_outside_the_scope_is_the_same_404_by_url_and_by_form(app, store, world):
    checkout = world["checkout"]
    with signed_in(app, "lena") as c:
        unknown = c.get("/cases/case-000000000000")
        other = c.get(f"/cases/{checkout}")
        assert unknown.status_code == other.status_code == 404
        assert other.text.replace(checkout, "ID") == unknown.text.replace("case-000000000000", "ID")
        assert "The payment page froze" not in other.text
        for path, body in [
            ("assign", {"assignee": "me"}),
            ("notes", {"text": "mine now"}),
            ("state", {"state": "pending"}),
            ("priority", {"priority": "urgent"}),
        ]:
            r = c.post(f"/cases/{checkout}/{path}", data=body, follow_redirects=False)
            assert r.status_code == 404, (path, r.text)
            assert "No such case" in r.text
    untouched = cases.get_case(store, None, checkout)
    assert untouched["assignee"] is None and len(untouched["history"]) == 1
    with signed_in(app, "aggie") as c:  # an agent reads an open case, never works it
        page = c.get(f"/cases/{checkout}")
        assert page.status_code == 200 and "Read only" in page.text
        assert 'action="/cases/' not in page.text
        r = c.post(f"/cases/{checkout}/notes", data={"text": "hi"}, follow_redirects=False)
        assert r.status_code == 403
    assert len(cases.get_case(store, None, checkout)["history"]) == 1
    # a form posted from another site is refused before it reaches the case
    with signed_in(app, "eric") as c:
        r = c.post(f"/cases/{checkout}/notes", data={"text": "x"},
                   headers={"origin": "http://evil.example"})  # fmt: skip
        assert r.status_code == 403
    assert len(cases.get_case(store, None, checkout)["history"]) == 1


def test_the_case_page_shows_the_evidence_and_the_customer(app, world):
    checkout = world["checkout"]
    with signed_in(app, "eric") as c:
        page = c.get(f"/cases/{checkout}")
        assert page.status_code == 200
        text = html.unescape(page.text)
        assert "Detractor: NPS 2 at checkout (customer p1)" in text
        assert "nps <strong>2</strong>" in text
        assert "The payment page froze." in text  # the feedback text, from the timeline
        assert 'href="/customers/p1"' in text and "fired this case" in text
        assert "department ecommerce" in text and "response due in" in text
        assert "Rule <strong>" in text and "a detractor (NPS ≤ 6)" in text
        # he may give it to himself or to whoever else may work it: not lena
        options = re.findall(r'<option value="(\w+)"', text.split('id="assign-to"')[1])
        assert options[:1] == ["me"] and "lena" not in options and "ana" in options


def test_each_form_writes_its_line_of_history(app, store, world):
    delivery = world["home_delivery"]
    url = f"/cases/{delivery}"
    with signed_in(app, "lena") as c:
        r = c.post(f"{url}/assign", data={"assignee": "me"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"{url}?done=assigned"
        assert "Assignment saved." in c.get(r.headers["location"]).text
        c.post(f"{url}/notes", data={"text": "Asked dhl what happened."})
        c.post(f"{url}/state", data={"state": "pending", "note": "waiting on dhl"})
        bad = c.post(f"{url}/state", data={"state": "resolved", "note": "re-routed"})
        assert bad.status_code == 422 and "resolving needs a root cause" in bad.text
        assert 'value="re-routed"' in bad.text  # what was typed is kept
        empty = c.post(f"{url}/notes", data={"text": "   "})
        assert empty.status_code == 422 and "a note needs some text" in empty.text
        # the forms check what the API checks: no control character in a note (a NUL would
        # be sent back raw in the page), no case given to someone who may not see it
        for path, form in (("notes", {"text": "a\x00b"}),
                           ("state", {"state": "open", "note": "esc \x1b[31m"}),
                           ("assign", {"assignee": "eric"}),
                           ("assign", {"assignee": "aggie"})):  # fmt: skip
            refused = c.post(f"{url}/{path}", data=form)
            assert refused.status_code == 422, (path, form, refused.text[:300])
            assert "\x00" not in refused.text and "\x1b" not in refused.text
        # a textarea's lines come as CR LF from a browser: a note of several lines is kept
        c.post(f"{url}/notes", data={"text": "Called.\r\nLeft a message."})
        c.post(f"{url}/priority", data={"priority": "high"})
        r = c.post(f"{url}/state", data={"state": "resolved", "root_cause": "partner",
                                         "note": "re-routed"}, follow_redirects=False)  # fmt: skip
        assert r.status_code == 303
        page = html.unescape(c.get(url).text)
        assert "resolved in time" in page and "Partner" in page
        mine = c.get("/cases", params={"mine": "yes", "state": "all"})
        assert case_links(mine.text) == {delivery}
    history = cases.get_case(store, None, delivery)["history"]
    assert [(e["actor"], e["action"], e["old_value"], e["new_value"]) for e in history] == [
        ("rule:detractors", "opened", None, "new"),
        ("lena", "assigned", None, "lena"),
        ("lena", "note", None, None),
        ("lena", "state", "new", "pending"),
        ("lena", "note", None, None),
        ("lena", "priority", "normal", "high"),
        ("lena", "state", "pending", "resolved"),
    ]
    assert history[2]["note"] == "Asked dhl what happened."
    assert history[4]["note"] == "Called.\r\nLeft a message."
    with signed_in(app, "ana") as c:
        page = html.unescape(c.get(url).text)
        for line in ("assigned it to lena", "added a note", "changed the state from new to pending",
                     "changed the priority from normal to high"):  # fmt: skip
            assert line in page


def test_the_customer_page_lists_the_open_cases_it_may_show(app, world):
    checkout = world["checkout"]
    with signed_in(app, "aggie") as c:
        page = c.get("/customers/p1")
        assert page.status_code == 200 and f'href="/cases/{checkout}"' in page.text
    with signed_in(app, "eric") as c:
        assert f'href="/cases/{checkout}"' in c.get("/customers/p1").text
    with signed_in(app, "ana") as c:
        page = c.get("/customers/p3")
        assert f'href="/cases/{checkout}"' not in page.text
        assert f'href="/cases/{world["support_call"]}"' in page.text


# -- rules ------------------------------------------------------------------------------------
def test_the_rules_page_lists_adds_disables_and_tests(app, store, world):
    with signed_in(app, "ana") as c:
        page = c.get("/rules")
        assert page.status_code == 200
        row = page.text.split('id="rule-detractors"')[1].split("</tr>")[0]
        assert "record" in row and "everywhere" in row and "7d" in row and "yes" in row
        assert re.search(r'class="n">3<', row)  # three alerts in the last 30 days
        bad = c.post("/rules", data={"rule_id": "late", "kind": "score_below",
                                     "definition": "{field: gap}"})  # fmt: skip
        assert bad.status_code == 422 and "not JSON" in bad.text and 'value="late"' in bad.text
        bad = c.post("/rules", data={"rule_id": "late", "kind": "score_below",
                                     "definition": '{"field": "gap"}'})  # fmt: skip
        assert bad.status_code == 422 and "needs below" in html.unescape(bad.text)
        for definition, says in (('{"promises": 5}', "promises must be a list of names"),
                                 ('{"below": -1, "min_n": 1' + "0" * 400 + "}", "min_n must"),
                                 ('{"period": "year"}', "period must be one of")):  # fmt: skip
            kind = "broken_promise" if "promises" in definition else (
                "forecast" if "min_n" in definition else "drift")  # fmt: skip
            bad = c.post("/rules", data={"rule_id": "late", "kind": kind,
                                         "definition": definition})  # fmt: skip
            assert bad.status_code == 422 and says in html.unescape(bad.text), bad.text[:300]
        r = c.post(
            "/rules",
            data={"rule_id": "late", "kind": "score_below", "priority": "high",
                  "definition": '{"field": "gap", "below": -3}', "cooldown": "2d",
                  "scope_department": "logistics, service", "sla_policy": "default"},
            follow_redirects=False,
        )  # fmt: skip
        assert r.status_code == 303 and r.headers["location"] == "/rules?added=late"
        page = c.get("/rules").text
        assert "gap below -3" in page and "department logistics, service" in page
        ask = c.post("/rules/late/disable")
        assert ask.status_code == 200 and "Disable rule late?" in ask.text
        done = c.post("/rules/late/disable", data={"confirm": "yes"}, follow_redirects=False)
        assert done.headers["location"] == "/rules?disabled=late"
        assert not next(r for r in _rules(store) if r.rule_id == "late").enabled
        test = c.get("/rules/detractors/test")
        assert test.status_code == 200 and "<strong>3</strong> alerts" in test.text
        assert c.get("/rules/nope/test").status_code == 404
    with signed_in(app, "lena") as c:
        page = c.get("/rules")
        assert page.status_code == 200 and 'action="/rules"' not in page.text  # read only
        row = page.text.split('id="rule-detractors"')[1].split("</tr>")[0]
        assert re.search(r'class="n">1<', row)  # her department's alert only
        assert c.post("/rules", data={"rule_id": "x", "kind": "detractor"}).status_code == 403
        assert c.post("/rules/detractors/disable", data={"confirm": "yes"}).status_code == 403
        test = c.get("/rules/detractors/test")
        assert "<strong>1</strong> alert " in test.text and "home_delivery" in test.text
    with signed_in(app, "aggie") as c:
        assert c.get("/rules").status_code == 403
        assert 'href="/cases"' in c.get("/customers").text


def _rules(store) -> list[Rule]:
    from corridor.loop.rules import list_rules

    return list_rules(store)


def test_a_page_never_prints_a_control_character():
    """Whatever a stored or typed text holds, a template prints its control characters as
    U+FFFD (line breaks and tabs kept); markup the code made is left alone."""
    from markupsafe import Markup

    from corridor.web.routes import _env

    page = _env.from_string("<p>{{ v }}</p><p>{{ m }}</p>")
    out = page.render(v="a\x00b\x1b[31m\r\n\tc <x>", m=Markup("<b>\tok</b>"))
    assert out == "<p>a\ufffdb\ufffd[31m\r\n\tc &lt;x&gt;</p><p><b>\tok</b></p>"
