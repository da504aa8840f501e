"""The closed loop's pages in Chromium (issue 14.6), over the same live demo server as
``tests/test_browser.py``: an analyst adds a detractor rule through the API and detractors
arrive at the department head's touch points and at another department's; the department head
finds their cases in the inbox, filters them, opens one with the keyboard, adds a note and
resolves it; an agent sees the customer's open case on the timeline, read only.

Screenshots go to ``test-artifacts/screenshots/`` with the others.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from test_browser import (  # noqa: F401  (fixtures, used by name)
    PASSWORD,
    browser,
    page,
    shot,
    sign_in,
    site,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loop_site(site: dict[str, str]) -> Iterator[dict[str, str]]:  # noqa: F811
    """The demo with a detractor rule and five detractors: three at the department head's
    touch points (one from the site's customer, with a text), two at another department's."""
    base = site["base"]
    with httpx.Client(base_url=base, headers={"origin": base}, timeout=60) as c:
        r = c.post("/login", data={"username": site["user_analyst"], "password": PASSWORD})
        assert r.status_code in (200, 303), r.text
        r = c.post("/api/v1/rules", json={"rule_id": "detractors", "kind": "detractor"})
        assert r.status_code == 201, r.text
        dept = site["user_department_head"].removeprefix("head-")
        tps = c.get("/api/v1/map").json()["touchpoints"]
        mine = [t["key"] for t in tps if t["department"] == dept]
        other = next(t for t in tps if t["department"] != dept)
        now = datetime.now(UTC).isoformat()
        rows = [
            {"feedback_id": f"loop-{i}", "person_id": person, "occurred_at": now,
             "touchpoint": tp, "source": "survey", "nps": nps, **extra}
            for i, (person, tp, nps, extra) in enumerate([
                (site["person"], mine[0], 1, {"text": "The parcel came a week late, opened."}),
                ("loop-p2", mine[-1], 3, {}),
                ("loop-p3", mine[0], 5, {}),
                ("loop-p4", other["key"], 2, {}),
                ("loop-p5", other["key"], 4, {}),
            ])
        ]  # fmt: skip
        r = c.post("/api/v1/feedback", json=rows)
        assert r.status_code in (200, 201) and r.json()["accepted"] == 5, r.text
        # the rules fire right after the commit (the server's work after the commit)
        deadline = time.monotonic() + 30
        while (listed := c.get("/api/v1/cases").json())["total"] < 5:
            assert time.monotonic() < deadline, listed
            time.sleep(0.1)
        assert listed["total"] == 5, listed
    yield {**site, "dept": dept, "tp": mine[0], "other_tp": other["key"]}


def headings_in_order(pg) -> list[str]:  # type: ignore[no-untyped-def]
    """Problems with the page's outline: not exactly one h1, or a level skipped."""
    levels = pg.evaluate(
        "() => [...document.querySelectorAll('main h1, main h2, main h3, main h4')]"
        ".map(h => +h.tagName[1])"
    )
    found = [] if levels.count(1) == 1 else [f"{levels.count(1)} h1"]
    found += [f"h{a} -> h{b}" for a, b in itertools.pairwise(levels) if b > a + 1]
    return found


def unlabelled(pg) -> list[str]:  # type: ignore[no-untyped-def]
    return pg.evaluate(  # type: ignore[no-any-return]
        """() => [...document.querySelectorAll(
              'input:not([type=hidden]), select, textarea')]
              .filter(el => !el.labels || el.labels.length === 0).map(el => el.name)"""
    )


def tab_to(pg, selector: str, limit: int = 120) -> None:  # type: ignore[no-untyped-def]
    """Press Tab until the focused element matches ``selector``."""
    for _ in range(limit):
        pg.keyboard.press("Tab")
        if pg.evaluate("s => document.activeElement.matches(s)", selector):
            return
    pytest.fail(f"{selector} is not reachable with Tab")


def test_department_head_works_a_case_with_the_keyboard(page, loop_site):  # noqa: F811
    demo = loop_site
    sign_in(page, demo, demo["user_department_head"])
    page.get_by_role("link", name="Cases", exact=True).click()
    page.wait_for_url("**/cases")
    rows = page.locator("table.cases tbody tr")
    assert rows.count() == 3  # their department's three, not the other two
    assert "new 3" in " ".join(page.locator(".counts").inner_text().split())
    # the SLA state is in words in every row, not only in colour
    for text in page.locator("table.cases .sla").all_inner_texts():
        assert "due in" in text or "breached" in text or "paused" in text
    assert unlabelled(page) == [] and headings_in_order(page) == []
    shot(page, "cases-inbox-department-head")

    # filter by touch point with the keyboard: the select, then Enter on Apply
    page.locator("#f-touchpoint").focus()
    page.locator("#f-touchpoint").select_option(demo["tp"])
    tab_to(page, "form.filters button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/cases?*touchpoint={demo['tp']}*")
    assert rows.count() == 2
    assert "Showing 1–2 of 2 cases." in page.locator("#shown").inner_text()

    # open the site customer's case with the keyboard: Tab to its link, Enter
    link = page.locator("table.cases tbody a", has_text=demo["person"])
    href = link.get_attribute("href")
    assert href is not None
    tab_to(page, f'table.cases a[href="{href}"]')
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{href}")
    assert "Detractor: NPS 1" in page.locator("h1").inner_text()
    assert "The parcel came a week late" in page.locator(".case-evidence").inner_text()
    assert page.locator("table.timeline tr.fired").count() == 1
    assert unlabelled(page) == [] and headings_in_order(page) == []
    shot(page, "case-page-department-head")

    # a note: focus the field through its label, type, Tab to its button, Enter
    page.get_by_label("Note (the first note is the first response)").focus()
    page.keyboard.type("Called the customer; the depot held the parcel.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**?done=note")
    assert page.get_by_role("status").first.inner_text() == "Note added."
    assert "the depot held the parcel" in page.locator(".case-notes").inner_text()
    assert "response due" not in page.locator("h1 + .lead").inner_text()  # responded

    # resolve it: the state, a root cause, then the button
    page.get_by_label("New state").select_option("resolved")
    page.get_by_label("Root cause (needed to resolve)").select_option("partner")
    page.get_by_label("Note (optional)").focus()
    page.keyboard.type("Depot process fixed with the carrier.")
    page.keyboard.press("Enter")  # submits the state form from its text field
    page.wait_for_url("**?done=state")
    facts = page.locator("dl.facts").inner_text()
    assert "resolved" in facts and "A partner acting for us" in facts
    history = page.locator(".case-history tbody").inner_text()
    assert "changed the state from new to resolved" in history
    assert "added a note" in history
    shot(page, "case-page-resolved")

    # another department's case by URL: the same 404 as an unknown id
    r = page.goto(demo["base"] + "/cases?state=all")
    assert r is not None and r.status == 200
    assert page.locator("table.cases tbody tr").count() == 3
    r = page.goto(demo["base"] + "/cases/case-000000000000")
    assert r is not None and r.status == 404


def test_the_inbox_fits_a_phone(browser, loop_site):  # noqa: F811
    context = browser.new_context(viewport={"width": 390, "height": 844})
    pg = context.new_page()
    try:
        sign_in(pg, loop_site, loop_site["user_analyst"])
        for path in ("/cases", "/rules"):
            pg.goto(loop_site["base"] + path)
            wide = pg.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 0, f"{path} is {wide}px wider than a phone"
            shot(pg, f"phone{path.replace('/', '-')}")
        pg.goto(loop_site["base"] + "/cases")
        pg.locator("table.cases tbody a").first.click()
        pg.wait_for_url("**/cases/case-*")
        wide = pg.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, f"the case page is {wide}px wider than a phone"
        shot(pg, "phone-case")
    finally:
        context.close()


def test_agent_sees_the_open_case_on_the_timeline_read_only(page, loop_site):  # noqa: F811
    demo = loop_site
    sign_in(page, demo, demo["user_agent"])
    page.goto(f"{demo['base']}/customers/loop-p4")  # the other department's detractor
    links = page.locator("section.open-cases a")
    assert links.count() == 1
    links.first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/cases/case-*")
    assert "Read only" in page.locator(".case-actions").inner_text()
    assert page.locator(".case-actions form").count() == 0
    assert page.get_by_role("link", name="Rules").count() == 0
    shot(page, "case-page-agent")


def test_analyst_tests_a_rule_on_past_data(page, loop_site):  # noqa: F811
    sign_in(page, loop_site, loop_site["user_analyst"])
    page.get_by_role("link", name="Rules", exact=True).click()
    page.wait_for_url("**/rules")
    row = page.locator("#rule-detractors")
    assert "record" in row.inner_text() and row.locator("td.n").inner_text() == "5"
    assert unlabelled(page) == [] and headings_in_order(page) == []
    shot(page, "rules-analyst")
    row.get_by_role("button", name="Test detractors on past data").click()
    page.wait_for_url("**/rules/detractors/test*")
    assert "alerts from" in page.get_by_role("status").inner_text()
    assert page.locator("table tbody tr").count() >= 5  # the demo's detractors too
