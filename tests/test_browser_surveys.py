"""A hosted survey in Chromium (issue 15): a customer answers from a personal link on a
360x740 phone with the keyboard alone — the first page in German (the browser's language), then
leaves half-way ("save and finish later"); later, on another device, the same link resumes
where they stopped, they switch the form to English with the keyboard, finish and send. The
answer is then in ``corridor gaps`` for its touch point, and the reused link is refused with a
clear page (410).

A real ``corridor serve`` over a small store of its own (the small corridor map, one
interaction, the delivery survey). Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pyarrow as pa
import pytest

from conftest import SMALL_MAP
from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.pipeline import Ingestor
from corridor.store import open_store
from corridor.surveys import catalog, definition, links
from survey_fixtures import delivery
from test_browser import browser, shot  # noqa: F401  (fixtures, used by name)

pytestmark = pytest.mark.slow

PHONE = {"width": 360, "height": 740}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corridor.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        timeout=120,
    )


@pytest.fixture(scope="module")
def survey_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    path = tmp_path_factory.mktemp("survey-browser") / "corridor.duckdb"
    store_url = f"duckdb:///{path}"
    with open_store(store_url) as s:
        ing = Ingestor(s)
        ing.load_map(CorridorMap.from_dict(SMALL_MAP))
        ing.ingest("interactions", pa.table({
            "interaction_id": ["i-981"], "person_id": ["c-42"],
            "occurred_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
            "touchpoint": ["home_delivery"], "channel": ["partner"],
        }))  # fmt: skip
        ing.close()
        catalog.save(s, definition.parse(delivery()))
        _, token = links.create(
            s, "delivery-pulse", person_id="c-42", interaction_id="i-981", channel="email"
        )
        _, anonymous = links.create(s, "delivery-pulse", anonymous=True, channel="web")
    port = _free_port()
    log = tmp_path_factory.mktemp("survey-browser-log") / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corridor.cli", "serve", "--store", store_url, "--port",
             str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
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
        yield {"base": base, "store": store_url, "link": f"{base}/s/{token}",
               "anonymous": anonymous}  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def phone(browser, locale: str):  # type: ignore[no-untyped-def]  # noqa: F811
    context = browser.new_context(viewport=PHONE, locale=locale, device_scale_factor=2,
                                  is_mobile=True, has_touch=True)  # fmt: skip
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))

    def failed(r) -> None:  # type: ignore[no-untyped-def]
        """An asset that fails (the pages' own 422 and 410 are the documents themselves)."""
        kind = r.request.resource_type
        if r.status >= 400 and kind != "document" and "favicon" not in r.url:
            errors.append(f"{r.status} {r.url}")

    page.on("response", failed)
    return context, page, errors


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(el => !el.labels || el.labels.length === 0).map(el => el.name)"""


def tab_to(page, selector: str, most: int = 60) -> None:  # type: ignore[no-untyped-def]
    """Press Tab until the element ``selector`` has the focus (the keyboard only)."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def choose(page, name: str, value: int, low: int = 0) -> None:  # type: ignore[no-untyped-def]
    """A rating by keyboard: Tab into the group, Space checks the first option, arrows move."""
    tab_to(page, f"input[name={name}]")
    page.keyboard.press("Space")
    for _ in range(value - low):
        page.keyboard.press("ArrowRight")
    assert page.evaluate(f"document.querySelector('input[name={name}]:checked').value") == str(
        value
    )


def send(page) -> None:  # type: ignore[no-untyped-def]
    """Enter on the focused button, and wait for the page it brings."""
    with page.expect_navigation():
        page.keyboard.press("Enter")


def gaps_at_delivery(store: str) -> list[dict[str, object]]:
    """``corridor gaps`` for the delivery touch point, through the running server."""
    r = _cli("gaps", "--by", "touchpoint", "--where", "touchpoint=home_delivery",
             "--format", "json", "--store", store)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return list(json.loads(r.stdout)["rows"])


def answered(store: str) -> int:
    """How many answers ``corridor gaps`` counts at the delivery touch point."""
    rows = gaps_at_delivery(store)
    return int(rows[0]["n"]) if rows else 0  # type: ignore[call-overload]


@contextmanager
def brand_site(html: str) -> Iterator[str]:
    """A brand's own web site: one page, served from another origin than Corridor's."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def no_overflow(page) -> None:  # type: ignore[no-untyped-def]
    """Nothing wider than the phone: no sideways scrolling."""
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_customer_answers_on_a_phone_by_keyboard_in_two_languages(browser, survey_site):  # noqa: F811
    link = survey_site["link"]
    # -- on the phone, in German (the browser's language) ---------------------------------------
    context, page, errors = phone(browser, "de-DE")
    reply = page.goto(link)
    assert reply.status == 200
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.locator("h1").inner_text() == "Wie war Ihre Lieferung?"
    assert "Seite 1 von 2" in page.inner_text("main")
    no_overflow(page)
    # every field has a label a screen reader reads; each group of options is named by its
    # question
    assert page.evaluate(UNLABELLED) == []
    assert page.get_by_role("radiogroup", name="Wie war es? (Pflichtfeld)").count() == 1
    assert page.get_by_role("radio", name="8").count() == 3
    shot(page, "survey-phone-de")
    # sending without the required answer: the error is tied to its field
    tab_to(page, "button[value=next]")
    send(page)
    group = page.locator("#q-experience")
    assert group.get_attribute("aria-invalid") == "true"
    assert "err-experience" in group.get_attribute("aria-describedby")
    assert "Bitte beantworten" in page.locator("#err-experience").inner_text()
    shot(page, "survey-phone-de-error")
    choose(page, "expectation", 8)
    choose(page, "experience", 3)
    tab_to(page, "button[value=next]")
    send(page)
    assert "Seite 2 von 2" in page.inner_text("main")
    assert page.get_by_label("Was lief schief?").count() == 1  # asked: experience below 5
    tab_to(page, "textarea[name=what_went_wrong]")
    page.keyboard.type("Das Paket kam eine Woche zu spät.")
    # leave half-way: save and finish later
    tab_to(page, "button[value=save]")
    send(page)
    assert "gespeichert" in page.locator("[role=status]").inner_text()
    context.close()
    assert not errors, errors
    # -- later, on another phone: the same link resumes; switch to English by keyboard ---------
    context, page, errors = phone(browser, "en-GB")
    page.goto(link)
    assert "Seite 2 von 2" in page.inner_text("main")  # the language they chose is kept
    assert page.locator("textarea").input_value() == "Das Paket kam eine Woche zu spät."
    assert page.evaluate(UNLABELLED) == []
    tab_to(page, "#lang")
    page.keyboard.press("ArrowUp")  # Deutsch -> English
    assert page.locator("#lang").input_value() == "en"
    tab_to(page, ".lang button")
    send(page)
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Page 2 of 2" in page.inner_text("main")
    assert page.get_by_label("What went wrong?").input_value() == (
        "Das Paket kam eine Woche zu spät."
    )
    no_overflow(page)
    tab_to(page, "input[name=issue]")
    page.keyboard.press("Space")  # the first choice: it came late
    shot(page, "survey-phone-en")
    tab_to(page, "button[value=submit]")
    send(page)
    assert page.locator("h1").inner_text() == "Thank you"
    assert "Thank you for your answers!" in page.inner_text("main")
    shot(page, "survey-phone-thanks")
    # -- the link again: refused, clearly -------------------------------------------------------
    reply = page.goto(link)
    assert reply.status == 410
    assert page.locator("h1").inner_text() == "Already answered"
    assert "answered already" in page.inner_text("main")
    assert page.locator("form").count() == 0
    shot(page, "survey-phone-used")
    context.close()
    assert not errors, errors
    # -- the answer is feedback at its touch point ------------------------------------------------
    (row,) = gaps_at_delivery(survey_site["store"])
    assert row["touchpoint"] == "home_delivery" and row["n"] == 1
    assert row["mean_gap"] == pytest.approx(3 - 8)


def test_the_brand_s_own_page_embeds_the_form_and_nothing_else_frames_it(browser, survey_site):  # noqa: F811
    """A page of the brand's own site (another origin) loads survey-embed.js, which frames the
    embeddable form; a plain survey page in an iframe is refused by the browser."""
    base, token = survey_site["base"], survey_site["anonymous"]
    brand = (
        "<!doctype html><html><head><title>Brand shop</title></head><body><h1>Your order</h1>"
        f'<div data-corridor-survey="{token}" data-lang="de" data-height="900"></div>'
        f'<iframe id="plain" src="{base}/s/{token}" title="not allowed"></iframe>'
        f'<script src="{base}/static/survey-embed.js" async></script></body></html>'
    )
    from playwright.sync_api import expect

    before = answered(survey_site["store"])
    context = browser.new_context(viewport={"width": 1000, "height": 1200})
    page = context.new_page()
    with brand_site(brand) as shop:  # another origin: the same host, another port
        page.goto(f"{shop}/order")
        page.wait_for_selector("[data-corridor-survey] iframe")
        embedded = page.frame_locator("[data-corridor-survey] iframe")
        expect(embedded.locator("h1")).to_have_text("Wie war Ihre Lieferung?")
        embedded.locator("label[for=q-expectation-9]").click()  # 8 of 0..10
        embedded.locator("label[for=q-experience-10]").click()  # 9
        embedded.locator("button[value=next]").click()
        expect(embedded.locator("main")).to_contain_text("Seite 2 von 2")
        embedded.locator("button[value=submit]").click()
        expect(embedded.locator("main")).to_contain_text("Danke für Ihre Antworten!")
        shot(page, "survey-embedded")
        # the plain page in an iframe: the browser refuses to show it (X-Frame-Options DENY,
        # frame-ancestors 'none')
        plain = page.locator("#plain").element_handle().content_frame()
        assert plain is not None and plain.url == "chrome-error://chromewebdata/", plain.url
    context.close()
    assert answered(survey_site["store"]) == before + 1


def test_the_survey_commands_go_through_the_running_server(survey_site, tmp_path):
    """While the server holds the DuckDB file, ``corridor surveys`` goes through its API."""
    store = survey_site["store"]
    changed = tmp_path / "delivery.yaml"
    changed.write_text(json.dumps(delivery(link_days=14)))
    r = _cli("surveys", "load", str(changed), "--store", store)
    assert r.returncode == 0 and "version 2" in r.stdout, r.stdout + r.stderr
    assert "went through it" in r.stderr
    r = _cli("surveys", "link", "delivery-pulse", "--person", "c-7", "--format", "json",
             "--store", store)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (made,) = json.loads(r.stdout)
    assert made["url"] == f"{survey_site['base']}/s/{made['token']}" and made["version"] == 2
    assert httpx.get(made["url"]).status_code == 200
    r = _cli("surveys", "revoke", "delivery-pulse", made["link_id"], "--store", store)
    assert r.returncode == 0, r.stderr
    assert httpx.get(made["url"]).status_code == 410
    listed = json.loads(_cli("surveys", "list", "--format", "json", "--store", store).stdout)
    assert [(s["survey_id"], s["version"]) for s in listed] == [("delivery-pulse", 2)]
