"""The CX report (issue 20): its figures are the analyses' own, a department head's report holds
nothing of another department, the PDF (Chromium, read back with pdftoppm and pdftotext) and
the e-mail (at a real SMTP server, both parts, charts as cid: images, the PDF attached) say the
same, and a scheduled report is queued once per period and user, across a restart.

One shared demo company (the browser tests' build), one Chromium for the module, one SMTP
server; the schedule's bookkeeping also runs on PostgreSQL with a few records.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from corridor.analytics.core.registry import get
from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.auth.scope import Principal, Role, Scope
from corridor.cli import app as cli_app
from corridor.errors import PermissionDeniedError
from corridor.loop import casestore, mail, outbox, scheduler, webhooks
from corridor.loop.reports import case_report
from corridor.privacy import audit, requests
from corridor.reports import content, render, schedules
from corridor.reports.model import Figure
from corridor.reports.pdf import printer, to_pdf
from corridor.reports.periods import ReportPeriod, ReportRequestError, Subject
from corridor.settings import Settings
from corridor.store import Store, open_store
from corridor.store.maps import load_map
from shared_builds import demo_store, private_copy

pytestmark = pytest.mark.slow

JUNE = ReportPeriod.last_full("month", "2025-07-01")
HEAD = Principal("head-logistics", Role.DEPARTMENT_HEAD, "logistics")
PASSWORD = "report-test-pass-1"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    demo = demo_store(tmp_path_factory, "--no-rules", "--customers", "800", "--months", "6")
    path = private_copy(demo, tmp_path_factory.mktemp("reports"))
    with open_store(f"duckdb:///{path}") as s:
        _cases(s)
    return path


@pytest.fixture(scope="module")
def company(store_path: Path) -> Iterator[Store]:
    with open_store(f"duckdb:///{store_path}") as s:
        yield s


@pytest.fixture(scope="module")
def chromium() -> Iterator[None]:
    """One Chromium for the module: every PDF made in this thread prints with it."""
    with printer():
        yield


def _cases(store: Store) -> None:
    """Cases opened in June 2025 through the loop's own store API: three at logistics (one past
    its SLA, one fix verified, one not), two at billing."""
    at = datetime(2025, 6, 10, 9, tzinfo=UTC)
    rows = []
    for i, (dept, tp, verification, breached) in enumerate([
        ("logistics", "home_delivery", "verified", True),
        ("logistics", "home_delivery", "not_verified", False),
        ("logistics", "shipping_notice", None, False),
        ("billing", "invoice", "verified", True),
        ("billing", "invoice", None, False),
    ]):  # fmt: skip
        rows.append({c: None for c in casestore.CASE_COLUMNS} | {
            "case_id": f"case-r{i}", "title": f"report test {i}", "rule_id": "r-test",
            "state": "open" if verification is None else "resolved", "priority": "normal",
            "department": dept, "touchpoint": tp, "opened_at": at, "updated_at": at,
            "alerts": 1, "sla_policy": "default", "paused_minutes": 0.0,
            "escalation_level": 0, "verification": verification,
            "resolution_breached_at": at if breached else None,
        })  # fmt: skip
    with store.transaction() as tx:
        casestore.insert_cases(tx, rows)


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:+.{digits}f}".replace("-", "−")


def _pdf_text(pdf: bytes, work: Path) -> tuple[str, list[Path]]:
    """The PDF's text (pdftotext) and its pages as PNG (pdftoppm)."""
    for tool in ("pdftotext", "pdftoppm"):
        assert shutil.which(tool), f"{tool} missing: apt-get install poppler-utils (scripts/test)"
    src = work / "report.pdf"
    src.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(src), str(work / "page")], check=True)
    out = subprocess.run(["pdftotext", "-layout", str(src), "-"], check=True, capture_output=True)
    text = re.sub(r"[ \t]+", " ", out.stdout.decode())
    return text, sorted(work.glob("page*.png"))


def test_department_heads_pdf_shows_the_analyses_numbers_and_nothing_else(
    company: Store, chromium: None, tmp_path: Path
) -> None:
    cmap = load_map(company)
    assert cmap is not None
    scope = Scope.of(HEAD, cmap)
    report = content.build_report(company, Subject("department", "logistics"), JUNE, scope=scope)
    pdf = to_pdf(render.html(report))
    assert pdf.startswith(b"%PDF")
    text, pages = _pdf_text(pdf, tmp_path)
    assert len(pages) >= 2 and all(p.stat().st_size > 2_000 for p in pages)

    # the headline is the analyses' own numbers for the department, June against May
    window = {"since": JUNE.previous_start, "until": JUNE.end, "period": "month", "by": []}
    own = {"department": ["logistics"]}
    gaps = get("gaps")(company, filters=own, **window).frame
    june = gaps[gaps["period_label"] == "2025-06"].iloc[0]
    assert f"{_fmt(june['mean_gap'])}" in text
    assert f"n = {int(june['n']):,}" in text
    assert f"{_fmt(june['mean_gap_low'])} to {_fmt(june['mean_gap_high'])}" in text
    assert f"p = {june['p_value_mean_gap']:.3f}" in text
    nps = get("nps")(company, filters=own, **window).frame
    nps_june = nps[nps["period_label"] == "2025-06"].iloc[0]
    assert _fmt(nps_june["nps"], 1) in text and f"n = {int(nps_june['nps_n']):,}" in text
    ces = get("ces")(company, filters=own, **window).frame
    assert f"{ces[ces['period_label'] == '2025-06'].iloc[0]['ces_mean']:.2f}" in text
    assert report.headline[0].n == int(june["n"]) and report.headline[0].n > 0

    # the cases section is the loop's own report for the head's scope: three logistics cases
    rows = case_report(company, scope, since=JUNE.start, until=JUNE.end)
    assert [r["group"] for r in rows] == ["logistics"]
    assert (report.cases.opened, report.cases.breached, report.cases.decided) == (3, 1, 2)
    assert report.cases.verified == rows[0]["verified"] == 1

    # nothing of another department: touch points, cases, quotes
    theirs = {t.key for t in cmap.touchpoints if t.department == "logistics"}
    others = {t.key for t in cmap.touchpoints} - theirs
    shown = {m.touchpoint for m in report.movers} | {d.touchpoint for d in report.drift}
    assert shown <= theirs
    # (keys that are plain words, such as invoice, may stand in customers' own words)
    assert not [k for k in others if "_" in k and k in text]
    texts = {
        r[0]
        for r in company.query(
            "SELECT f.text FROM feedback f JOIN touchpoints t ON t.key = f.touchpoint "
            "WHERE t.department = 'logistics' AND f.text IS NOT NULL"
        )
    }
    quotes = [q for t in report.themes for q in t.quotes]
    assert quotes and all(q in texts for q in quotes)
    assert all(len(t.quotes) <= 2 for t in report.themes)
    # ... and another department is refused, not emptied
    with pytest.raises(PermissionDeniedError, match="billing"):
        content.build_report(company, Subject("department", "billing"), JUNE, scope=scope)


def test_a_period_without_answers_says_so_and_still_renders(company: Store) -> None:
    empty = ReportPeriod.last_full("month", "2024-03-01")
    report = content.build_report(company, Subject(), empty)
    assert report.gap.n == 0 and report.trend == () and report.movers == ()
    assert report.notes and "No rated feedback" in report.notes[0]
    page = render.html(report)
    assert "February 2024" in page and "<svg" not in page
    assert "no answers in this period" in render.text(report)


def test_partner_managers_report_is_their_partners(company: Store) -> None:
    partner = company.query(
        "SELECT partner_id FROM feedback WHERE partner_id IS NOT NULL AND text IS NOT NULL "
        "AND occurred_at >= '2025-06-01' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    )[0][0]
    manager = Scope.of(Principal("pm", Role.PARTNER_MANAGER, partner=partner), load_map(company))
    report = content.build_report(company, Subject(), JUNE, scope=manager)
    assert report.subject == Subject("partner", partner)  # their own, and titled so
    own = get("gaps")(
        company, filters={"partner": [partner]}, since=JUNE.start, until=JUNE.end, by=[]
    ).frame
    assert report.gap.n == int(own["n"].iloc[0]) > 0
    assert report.ripple is None  # operations belong to departments
    theirs = {
        r[0]
        for r in company.query(
            "SELECT text FROM feedback WHERE partner_id = ? AND text IS NOT NULL", [partner]
        )
    }
    quotes = [q for t in report.themes for q in t.quotes]
    assert quotes and all(q in theirs for q in quotes)
    with pytest.raises(PermissionDeniedError):
        content.build_report(company, Subject("partner", "someone-else"), JUNE, scope=manager)


def test_a_missing_chromium_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from corridor.reports.pdf import PdfUnavailableError, chromium_path

    monkeypatch.setenv("CORRIDOR_CHROMIUM", "/nowhere/chromium")
    with pytest.raises(PdfUnavailableError, match="does not exist"):
        chromium_path()
    monkeypatch.delenv("CORRIDOR_CHROMIUM")
    monkeypatch.setenv("PATH", "/nowhere")
    with pytest.raises(PdfUnavailableError, match="apt-get install chromium") as e:
        chromium_path()
    assert e.value.status_code == 503 and "--format html" in str(e.value)


def test_change_in_words_follows_the_test() -> None:
    def fig(delta: float | None, p: float | None) -> Figure:
        return Figure("gaps", "Gap", -0.5, -0.9, -0.1, 40, "points", True, delta, p, 35)

    assert fig(-0.4, 0.003).change_words() == "worse, and the change is real: p = 0.003"
    assert fig(0.4, 0.2).change_words() == "better, but the change could be chance: p = 0.200"
    assert fig(None, None).change_words() == "no previous period to compare with"
    assert fig(0.0, None).change_words() == "unchanged"


# -- e-mail and schedules ----------------------------------------------------------------------
class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def _dispatch(store: Store, port: int) -> Any:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_from="cx@example.com")
    return outbox.dispatch(
        store, {"email": mail.MailSender(settings).deliver}, owner="test", base_s=60.0
    )


def test_a_scheduled_report_reaches_the_smtp_server_once_across_a_restart(
    store_path: Path, chromium: None, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    assert "reports.send" in scheduler.REGISTRY  # the server's scheduler runs send_due
    url = f"duckdb:///{store_path}"
    with open_store(url) as s:
        with pytest.raises(schedules.ScheduleNotFoundError, match="no e-mail settings yet"):
            schedules.set_time_zone(s, "head-logistics", "America/New_York")
        with pytest.raises(schedules.ScheduleNotFoundError, match="no user 'nobody'"):
            schedules.set_time_zone(s, "nobody", "UTC")
        mail.set_preference(s, "head-logistics", "head@example.com")
        schedules.set_time_zone(s, "head-logistics", "America/New_York")
        made = schedules.add_schedule(
            s, cadence="monthly", role="department_head", hour=8,
            now=datetime(2025, 5, 15, tzinfo=UTC),
        )  # fmt: skip
        # 07:59 in New York on 1 July: June's report is not due yet there (May's is)
        early = schedules.send_due(s, now=datetime(2025, 7, 1, 11, 59, tzinfo=UTC))
        assert early.queued == 1
        assert [d["period"] for d in schedules.deliveries(s, made.schedule_id)] == ["2025-05"]
        done = schedules.send_due(s, now=datetime(2025, 7, 1, 12, 1, tzinfo=UTC))
        assert (done.queued, done.failed) == (1, 0)
    # the server stops before delivering; after the restart nothing is queued twice
    with open_store(url) as s:
        again = schedules.send_due(s, now=datetime(2025, 7, 1, 12, 30, tzinfo=UTC))
        assert again.queued == 0
        assert _dispatch(s, port).sent == 2
        assert _dispatch(s, port).sent == 0
    mails = [message_from_bytes(m, policy=policy.default) for m in inbox.messages]
    subjects = sorted(str(m["Subject"]).split(" — ")[0] for m in mails)
    assert subjects == [
        "CX report: department logistics, June 2025",
        "CX report: department logistics, May 2025",
    ]
    msg = next(m for m in mails if "June 2025" in str(m["Subject"]))
    assert isinstance(msg, EmailMessage)
    assert msg["To"] == "head@example.com"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    plain_text, html_text = plain.get_content(), html.get_content()
    assert "Headline figures" in plain_text and "<table" in html_text
    cids = set(re.findall(r'src="cid:([^"]+)"', html_text))
    images = {
        str(p["Content-ID"]).strip("<>"): p.get_content()
        for p in msg.walk()
        if p.get_content_type() == "image/png"
    }
    assert cids and cids == set(images)
    assert all(b.startswith(b"\x89PNG") for b in images.values())
    assert "<svg" not in html_text and "data:" not in html_text
    pdfs = [p for p in msg.walk() if p.get_content_type() == "application/pdf"]
    assert len(pdfs) == 1 and pdfs[0].get_content().startswith(b"%PDF")
    # the mail's figures are the department's own, as in the PDF test
    with open_store(url) as s:
        gaps = get("gaps")(
            s, filters={"department": ["logistics"]}, since=JUNE.start, until=JUNE.end, by=[]
        ).frame
    assert f"n = {int(gaps['n'].iloc[0]):,})" in plain_text
    assert _fmt(gaps["mean_gap"].iloc[0]).replace("−", "-") in plain_text


def _quotes(text: str) -> list[str]:
    """The comments a report mail's text quotes (a line ``  "…"`` under each theme)."""
    return re.findall(r'^  "(.*)"$', text, re.M)


def _authored(store: Store, quotes: list[str]) -> tuple[str, str]:
    """The first of ``quotes`` that one known customer wrote, and no one else (the comment's
    or its interaction's person; the simulator's comments repeat), and who."""
    for quote in quotes:
        rows = store.query(
            "SELECT COALESCE(f.person_id, i.person_id) FROM feedback f LEFT JOIN interactions i "
            "ON i.interaction_id = f.interaction_id WHERE f.text = ?",
            [quote],
        )
        if len(rows) == 1 and rows[0][0] is not None:
            return quote, str(rows[0][0])
    raise AssertionError(f"no quote of a known customer: {quotes}")


def test_a_privacy_request_withdraws_a_report_mail_that_quotes_the_person(
    store_path: Path, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """A report mail quotes the latest comments of its themes. After an erasure, one still to
    send that quotes the person loses its content at once and is made again by the reports job
    from the store as it is now (the comment gone); one sent already keeps its state, loses its
    content, and a redelivery makes it again. Real report, real SMTP server (no PDF: the
    content is what is checked, and the PDF is rendered from the same report)."""
    inbox, port = smtp
    url = f"duckdb:///{private_copy(store_path, tmp_path)}"
    actor = audit.Actor("dpo", "user", None)
    july = datetime(2025, 7, 1, 12, 1, tzinfo=UTC)
    with open_store(url) as s:
        mail.set_preference(s, "head-logistics", "head@example.com")
        schedules.add_schedule(s, cadence="monthly", role="department_head", hour=8,
                               now=datetime(2025, 5, 15, tzinfo=UTC))  # fmt: skip
        assert schedules.send_due(s, now=july, with_pdf=False).queued == 1
        (row,) = outbox.list_notifications(s)
        quotes = _quotes(row.payload["data"]["text"])
        assert len(quotes) >= 2, row.payload["data"]["text"]
        first, person = _authored(s, quotes)
        requests.request(s, person, "erase", actor=actor)
        withdrawn = outbox.get_notification(s, row.id)
        assert withdrawn.state == outbox.REMAKING
        assert withdrawn.payload["data"] == {
            "schedule_id": row.payload["data"]["schedule_id"], "period": "2025-06",
            "scope": "department=logistics", "withdrawn": withdrawn.payload["data"]["withdrawn"],
        }  # fmt: skip
        assert _dispatch(s, port).sent == 0  # nothing goes while it is made again
        assert schedules.send_due(s, now=july, with_pdf=False).queued == 0
        assert schedules.remake_withdrawn(s, now=july, with_pdf=False) == 1
        remade = outbox.get_notification(s, row.id)
        assert (remade.state, remade.attempts) == (outbox.PENDING, 0)
        text, html = remade.payload["data"]["text"], remade.payload["data"]["html"]
        assert "Headline figures" in text and "<table" in html
        assert first not in text and first not in html
        assert _dispatch(s, port).sent == 1
        # sent already: the next erasure withdraws its content; a redelivery makes it again
        second, person = _authored(s, _quotes(text))
        requests.request(s, person, "anonymise", actor=actor)
        sent = outbox.get_notification(s, row.id)
        assert sent.state == outbox.DELIVERED and second not in str(sent.payload)
        assert outbox.redeliver(s, row.id).state == outbox.REMAKING
        with pytest.raises(outbox.NotRedeliverableError, match="made again"):
            outbox.redeliver(s, row.id)
        assert schedules.remake_withdrawn(s, now=july, with_pdf=False) == 1
        assert _dispatch(s, port).sent == 1
    mails = [message_from_bytes(m, policy=policy.default) for m in inbox.messages]
    assert len(mails) == 2 and len({m["Message-ID"] for m in mails}) == 1
    bodies = [m.get_body(("plain",)).get_content() for m in mails]  # type: ignore[union-attr]
    assert first not in bodies[0] and second in bodies[0]
    assert first not in bodies[1] and second not in bodies[1]


def test_weekly_send_time_is_monday_eight_in_the_recipients_zone() -> None:
    week = schedules.Schedule(
        "s", "weekly", None, "analyst", None, None, "UTC", 8, True,
        datetime(2025, 1, 1, tzinfo=UTC), None,
    )  # fmt: skip
    # Monday 31 March 2025, 08:00 in Berlin (summer time since the 30th) is 06:00 UTC
    before = datetime(2025, 3, 31, 5, 59, tzinfo=UTC)
    after = datetime(2025, 3, 31, 6, 0, tzinfo=UTC)
    assert schedules.last_send_time(week, "Europe/Berlin", after) == after
    assert schedules.last_send_time(week, "Europe/Berlin", before) == datetime(
        2025, 3, 24, 7, 0, tzinfo=UTC
    )
    period = schedules.due_period(week, "Europe/Berlin", after)
    assert period is not None and period.key == "2025-W13"
    assert period.start == datetime(2025, 3, 24, tzinfo=UTC)
    with pytest.raises(ReportRequestError, match="IANA"):
        schedules.set_time_zone(None, "x", "Mars/Olympus")  # type: ignore[arg-type]


def test_schedules_queue_once_on_both_engines(store: Store, ingestor: Any) -> None:
    """The schedule's bookkeeping and the outbox row on DuckDB and PostgreSQL (a few
    records, no PDF); a report is mail only: a webhook endpoint taking every event gets no
    copy of it."""
    rows = [
        {"feedback_id": f"f{i}", "occurred_at": datetime(2025, 5 + i % 2, 3 + i % 20, tzinfo=UTC),
         "touchpoint": "home_delivery" if i % 3 else "checkout", "source": "survey",
         "expectation": 7 + i % 3, "experience": 5 + i % 5, "nps": i % 11}
        for i in range(60)
    ]  # fmt: skip
    ingestor.ingest("feedback", pa.Table.from_pylist(rows))
    accounts.add_user(store, "head", PASSWORD, "department_head", department="logistics")
    accounts.add_user(store, "other", PASSWORD, "department_head", department="ecommerce")
    mail.set_preference(store, "head", "head@example.com")
    schedules.add_schedule(
        store, cadence="monthly", role="department_head", department="logistics",
        now=datetime(2025, 6, 1, tzinfo=UTC),
    )  # fmt: skip
    webhooks.add_endpoint(store, "http://127.0.0.1:9/hook", allow_private=True)
    now = datetime(2025, 7, 2, tzinfo=UTC)
    assert schedules.send_due(store, now=now, with_pdf=False).queued == 1
    assert schedules.send_due(store, now=now, with_pdf=False).queued == 0
    queued = outbox.list_notifications(store)
    assert [(n.event_type, n.target) for n in queued] == [("report", "head@example.com")]
    data = queued[0].payload["data"]
    assert data["period"] == "2025-06" and data["scope"] == "department=logistics"
    assert "checkout" not in data["text"] and "checkout" not in data["html"]
    assert "home_delivery" in data["html"]


# -- surfaces ------------------------------------------------------------------------------------
def test_api_report_is_the_callers_scope(company: Store) -> None:
    if accounts.get_user(company, "api-head") is None:
        accounts.add_user(company, "api-head", PASSWORD, "department_head", department="logistics")
    _, key = accounts.create_key(company, "api-head", "reports")
    headers = {"Authorization": f"Bearer {key}"}
    app = create_app(Settings(scheduler="off"), store=company)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/v1/reports", params={"at": "2025-07-01"}, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["subject"] == {"kind": "department", "value": "logistics"}
        gap = body["headline"][0]
        cmap = load_map(company)
        mine = content.build_report(
            company, Subject("department", "logistics"), JUNE, scope=Scope.of(HEAD, cmap)
        )
        assert (gap["n"], gap["value"]) == (mine.gap.n, mine.gap.value)
        assert gap["change"] == mine.gap.change_words()
        r = c.get("/api/v1/reports", params={"scope": "department=billing"}, headers=headers)
        assert r.status_code == 403 and "billing" in r.json()["error"]["message"]
        r = c.get("/api/v1/reports", params={"scope": "dept=x"}, headers=headers)
        assert r.status_code == 422 and "department=logistics" in r.json()["error"]["message"]
        r = c.get("/api/v1/reports", params={"at": "2025-07-01", "format": "html"}, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "<svg" in r.text and "Department logistics — June 2025" in r.text
        page = c.get("/departments/logistics", headers=headers)
        assert page.status_code == 200, page.text[:300]
        link = "/api/v1/reports?format=pdf&amp;period=month&amp;scope=department%3Dlogistics"
        assert link in page.text


def test_cli_report_writes_html_and_explains_bad_input(store_path: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "r.html"
    url = f"duckdb:///{store_path}"
    args = ["report", "--scope", "department=logistics", "--at", "2025-07-01"]
    made = runner.invoke(cli_app, [*args, "--format", "html", "--out", str(out), "--store", url])
    assert made.exit_code == 0, made.output
    assert "June 2025" in out.read_text() and "<svg" in out.read_text()
    unknown = ["report", "--scope", "department=nowhere", "--format", "text", "--store", url]
    for given, said in [
        (unknown, "known: billing, ecommerce"),
        ([*args, "--store", url], "add --out report.pdf"),
        ([*args, "--period", "year", "--store", url], "use one of week, month, quarter"),
    ]:
        bad = runner.invoke(cli_app, given)
        assert bad.exit_code != 0 and said in f"{bad.output}{bad.exception}", given
