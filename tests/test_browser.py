"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

A real ``corridor serve`` runs over a simulated company made by ``corridor demo`` (which also
creates one user per role). Each role signs in through the form, sees its pages and is refused
the others; an analyst clicks overview -> touch point -> customer; charts are checked to have
been drawn by plotly.js (SVG in the page), not merely that the page loaded. Screenshots are
saved under ``test-artifacts/screenshots/``.

Chromium comes from Debian's ``chromium`` package (``scripts/test`` installs it); set
``CORRIDOR_CHROMIUM`` to use another binary. Missing, the tests fail with that message.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corridor.store import open_store
from shared_builds import demo_store, private_copy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("CORRIDOR_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "corridor-demo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    # without the demo's rules: the loop's browser tests add their own and count their cases.
    # Made once a run; each module using this fixture (tests/test_browser_cases.py too) serves
    # a copy of its own
    demo = demo_store(tmp_path_factory, "--no-rules", "--customers", "800", "--months", "6")
    store = f"duckdb:///{private_copy(demo, tmp_path_factory.mktemp('browser'))}"
    with open_store(store) as s:
        users = {r[1]: r[0] for r in s.query("SELECT username, role FROM users")}
        email = s.query(  # a customer with an e-mail, a phone and records
            "SELECT i.id_value, p.canonical_id, f.id_value FROM identities i JOIN people p "
            "ON p.person_id = i.person_id JOIN identities f ON f.person_id = i.person_id "
            "AND f.id_type = 'phone' WHERE i.id_type = 'email' AND p.person_id IN "
            "(SELECT person_id FROM interactions) ORDER BY i.id_value LIMIT 1"
        )[0]
        partner = s.query("SELECT partner FROM users WHERE role = 'partner_manager'")[0][0]
    port = _free_port()
    log = tmp_path_factory.mktemp("browser-log") / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corridor.cli", "serve", "--store", store, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"corridor serve did not come up:\n{log.read_text()}")
            time.sleep(0.2)
        yield {
            "base": base,
            "email": email[0],
            "person": email[1],
            "phone": email[2],
            "partner": partner,
            **{f"user_{role}": name for role, name in users.items()},
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium; "
            "scripts/test does it) or set CORRIDOR_CHROMIUM"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    yield pg
    context.close()
    assert not errors, errors


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page, site, user: str) -> None:  # type: ignore[no-untyped-def]
    """With the keyboard only: the username field has focus, Tab to the password, Enter."""
    page.goto(site["base"] + "/login")
    # Chromium applies `autofocus` at a rendering step that may come after "load": typing before
    # it lands loses the first keys (CI saw a sign-in as "nalyst" bounce back to /login)
    page.wait_for_function("() => document.activeElement?.id === 'username'")
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)
    page.wait_for_load_state("networkidle")


def charts_drawn(page) -> int:  # type: ignore[no-untyped-def]
    """How many charts plotly.js has drawn (each leaves an SVG with its traces)."""
    page.wait_for_load_state("networkidle")
    figures = page.locator("[data-figure]").count()
    if figures:
        page.wait_for_function(
            "n => document.querySelectorAll('[data-rendered=true]').length >= n", arg=figures
        )
    empty = page.evaluate(
        """() => [...document.querySelectorAll('[data-rendered=true]')].filter(el =>
              el.querySelectorAll('svg.main-svg .scatterlayer .trace path,'
                                  + ' svg.main-svg .barlayer .trace path').length === 0).length"""
    )
    assert empty == 0, f"{empty} chart(s) hold no drawn traces"
    return figures


def test_analyst_clicks_overview_to_touch_point_to_customer(page, site):
    sign_in(page, site, site["user_analyst"])
    assert page.url == site["base"] + "/"
    cards = page.locator("li.tp")
    assert cards.count() >= 30  # the simulated corridor's touch points
    assert charts_drawn(page) == 3  # NPS, CSAT, CES trends
    # the gap is in words as well as colour on every card
    for text in cards.all_inner_texts()[:10]:
        assert any(w in text for w in ("expectation", "as expected", "no ratings"))
    shot(page, "overview-analyst")

    page.locator('li.tp[data-touchpoint="home_delivery"] a').click()
    page.wait_for_url("**/touchpoints/home_delivery*")
    assert "/touchpoints/home_delivery" in page.url
    assert page.locator("h1").inner_text() == "Home delivery"
    assert charts_drawn(page) == 4  # three tiles and the gap trend with its band
    band = page.locator("[data-rendered=true] .main-svg .scatterlayer .trace.scatter")
    assert band.count() >= 3  # upper bound, lower bound filled, estimate
    # the gap trend continues with the forecast: its 95 % and 80 % bands (two traces each) and
    # its dashed line, and the legend under the chart says what the bands mean
    trend = page.locator("section[aria-labelledby=trend-h] .main-svg .scatterlayer .trace.scatter")
    assert trend.count() == 3 + 5
    assert page.locator("#forecast-legend").is_visible()
    assert "four times in five" in page.locator("#forecast-legend").inner_text()
    shot(page, "touchpoint-home-delivery")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert charts_drawn(page) == 4 and trend.count() == 3 + 5
    shot(page, "touchpoint-home-delivery-phone")
    page.set_viewport_size({"width": 1400, "height": 1000})

    link = page.locator(".comments a[href^='/customers/']").first
    person = link.get_attribute("href")
    link.click()
    page.wait_for_url(f"**{person}")
    assert page.locator("table.timeline tbody tr").count() >= 1
    assert charts_drawn(page) == 1
    shot(page, "customer-timeline")


def test_no_page_is_wider_than_a_phone(page, site):
    """At 390 px every page fits the screen: wide tables scroll inside the page and forms wrap
    (a table once made the department page 926 px wide, a form the admin page 661)."""
    sign_in(page, site, site["user_admin"])
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(site["base"] + "/departments")
    department = page.locator("main a[href^='/departments/']").first.get_attribute("href")
    paths = ["/", "/touchpoints/home_delivery", "/departments", department,
             f"/partners/{site['partner']}", "/customers?q=a", "/cases", "/rules", "/admin",
             "/admin/privacy", "/admin/surveys"]  # fmt: skip
    for path in paths:
        page.goto(site["base"] + str(path))
        page.wait_for_load_state("networkidle")
        assert "/login" not in page.url, path
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)


def test_department_head_sees_their_department_only(page, site):
    sign_in(page, site, site["user_department_head"])
    assert page.url.startswith(site["base"] + "/departments/")
    dept = page.url.rsplit("/", 1)[1]
    assert charts_drawn(page) >= 4
    shot(page, "department-head-home")
    names = page.locator("table tbody tr td:first-child a").all_inner_texts()
    assert names, "the department's touch points are listed"
    r = page.goto(site["base"] + "/touchpoints/checkout")
    assert r is not None and r.status == 403
    assert "Not in your view" in page.locator("h1").inner_text()
    r = page.goto(site["base"] + "/departments/marketing" if dept != "marketing" else "/")
    assert r is not None and r.status == 403
    shot(page, "department-head-refused")
    r = page.goto(site["base"] + "/")
    assert page.url.endswith(f"/departments/{dept}")  # the overview is for analysts


def test_partner_manager_sees_their_partner_against_the_brand(page, site):
    sign_in(page, site, site["user_partner_manager"])
    assert page.url == f"{site['base']}/partners/{site['partner']}"
    assert charts_drawn(page) >= 3
    assert "brand's own channels" in page.content()
    shot(page, "partner-manager-home")
    others = [p for p in ("service-01", "dealer-01", "agency-01") if p != site["partner"]]
    r = page.goto(f"{site['base']}/partners/{others[0]}")
    assert r is not None and r.status == 403


def test_agent_finds_a_customer_by_email_and_sees_the_timeline(page, site):
    sign_in(page, site, site["user_agent"])
    assert page.url == site["base"] + "/customers"
    page.get_by_label("Customer id, e-mail or phone").fill(site["email"].upper())
    page.keyboard.press("Enter")
    page.wait_for_url("**/customers?q=*")
    page.locator(".results a").first.click()
    page.wait_for_url(f"**/customers/{site['person']}")
    assert site["email"] in page.content()  # identities are listed
    assert charts_drawn(page) == 1
    shot(page, "agent-customer")
    for path in ("/", "/touchpoints/home_delivery", "/departments/logistics"):
        r = page.goto(site["base"] + path)
        assert r is not None
        if path == "/":
            assert page.url.endswith("/customers")
        else:
            assert r.status == 403, path


def _search_and_open(page, site, query: str, cell: str) -> None:  # type: ignore[no-untyped-def]
    """From the customer search: type ``query``, press Enter, and open (with the keyboard) the
    result whose row shows ``cell``; the site's customer's timeline must open."""
    page.goto(site["base"] + "/customers")
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'q'")
    page.keyboard.type(query)
    page.keyboard.press("Enter")
    page.wait_for_url("**/customers?q=*")
    rows = page.locator("table.results tbody tr")
    assert rows.count() >= 1, page.content()
    link = rows.filter(has=page.locator("td", has_text=cell)).locator("a").first
    assert link.get_attribute("href") == f"/customers/{site['person']}"
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/customers/{site['person']}")
    assert page.locator("h1").inner_text() == f"Customer {site['person']}"
    assert site["email"] in page.content() and site["phone"] in page.content()


def test_agent_finds_a_customer_by_part_of_the_email_and_by_the_phones_last_digits(page, site):
    """Issue 13.3: part of an e-mail (its middle, in capitals) and the last four digits of the
    phone each find the customer, and the keyboard opens the right timeline."""
    sign_in(page, site, site["user_agent"])
    local, domain = site["email"].split("@")
    _search_and_open(page, site, f"{local[2:]}@{domain[:4]}".upper(), site["email"])
    shot(page, "agent-search-email-part")
    digits = "".join(c for c in site["phone"] if c.isdigit())
    _search_and_open(page, site, digits[-4:], site["phone"])
    page.goto(f"{site['base']}/customers?q={digits[-4:]}")
    assert "customer" in page.locator("[role=status]").first.inner_text()
    shot(page, "agent-search-phone-digits")


def test_accessibility_basics(page, site):
    page.goto(site["base"] + "/login")
    page.keyboard.press("Shift+Tab")  # from the focused username field back to the skip link
    page.keyboard.press("Shift+Tab")
    sign_in(page, site, site["user_analyst"])
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select')]
              .filter(el => !el.labels || el.labels.length === 0).map(el => el.name)"""
    )
    assert unlabelled == []
    unnamed = page.evaluate(
        "() => [...document.querySelectorAll('figure.chart')]"
        ".filter(f => !f.getAttribute('aria-label')).length"
    )
    assert unnamed == 0
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    # keyboard users reach the corridor cards and open one with Enter
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("() => !!document.activeElement.closest('li.tp')"):
            break
    else:
        pytest.fail("no touch point card is reachable with Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/touchpoints/**")
    page.wait_for_load_state("networkidle")


def test_a_cross_origin_form_post_at_a_signed_in_session_is_refused(page, site):
    """CSRF (issue 11.8): a page on another port of the same host auto-submits a text/plain form
    that would insert an interaction as the signed-in analyst. Chromium sends the session cookie
    (cookies are not bound to a port); Corridor refuses the post by its Origin, stores nothing."""
    import http.server
    import threading

    target = site["base"] + "/api/v1/interactions"
    sign_in(page, site, site["user_analyst"])
    tp = page.request.get(site["base"] + "/api/v1/map").json()["touchpoints"][0]
    # a whole, valid interaction: without the guard it is stored (text/plain read as JSON)
    record = (
        '{"interaction_id": "csrf-1", "person_id": "csrf-victim", "occurred_at": '
        f'"2025-01-02T10:00:00Z", "touchpoint": "{tp["key"]}", "channel": "{tp["channels"][0]}", '
        '"attributes": {"x": "'
    )
    attack = (
        "<!doctype html><title>prize</title>"
        f'<form id="f" method="post" action="{target}" enctype="text/plain">'
        f"<input type=\"hidden\" name='{record}' value='\"}}}}'>"
        "</form><script>document.getElementById('f').submit()</script>"
    ).encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(attack)))
            self.end_headers()
            self.wfile.write(attack)

        def log_message(self, *args: object) -> None:
            pass

    before = httpx.get(site["base"] + "/api/v1/health").json()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with page.expect_response(target) as caught:
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        reply = caught.value
        sent = reply.request.all_headers().get("cookie") or ""
        assert "corridor_session" in sent, "no session cookie sent: the test would prove nothing"
        assert reply.status == 403
        assert reply.json()["error"]["code"] == "cross_origin_refused"
    finally:
        server.shutdown()
        server.server_close()
    after = httpx.get(site["base"] + "/api/v1/health").json()
    assert after["counts"] == before["counts"]  # (its jobs' times move on by themselves)
    # the analyst's own page session is unharmed: a same-origin request still works
    assert page.request.get(site["base"] + "/api/v1/map").status == 200
