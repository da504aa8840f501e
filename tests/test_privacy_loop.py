"""A person's erasure or anonymisation and the closed loop (issues 14 and 19): nothing of them
is left in alerts, cases, their history, the notifications still to send or sent (a note on
another customer's case that quotes them included) and survey invitations; a shared case about
a touch point survives; records of theirs that the background workers hold in hand, handed
over before the request, raise nothing; a survey link of theirs cannot bring new answers."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from corridor.auth import accounts
from corridor.domain.corridor_map import CorridorMap
from corridor.ingest import after_commit
from corridor.ingest.pipeline import Ingestor
from corridor.loop import cases, mail, outbox, webhooks
from corridor.loop.outbox import Notification
from corridor.loop.rules import Rule, add_rule
from corridor.privacy import audit, requests, retention, settings
from corridor.reports import schedules
from corridor.reports.model import THEMES_HEADING, plain_quote
from corridor.store import Store
from corridor.surveys import catalog, definition, invitations, links
from corridor.text.jobs import analyze_handed
from survey_fixtures import delivery

ACTOR = audit.Actor("dpo", "user", "127.0.0.1")
SUBJ = "cust-zelda-9001"
EMAIL = "zelda.quux@example.org"
PHONE = "+15550199887"
TS = pa.timestamp("us", tz="UTC")
#: tables that keep what a request must keep: the ledger's salted hashes, the request, the log
KEPT = ("erased_identities", "privacy_requests", "audit_log")


def _feedback(ingestor: Ingestor, rows: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    full = [{"source": "survey", "occurred_at": now, "touchpoint": "checkout", **r} for r in rows]
    names = sorted({k for r in full for k in r})
    table = pa.table(
        {n: pa.array([r.get(n) for r in full], TS if n == "occurred_at" else None) for n in names}
    )
    report = ingestor.ingest("feedback", table)
    assert report.rejected == 0, report.errors


def _people(ingestor: Ingestor) -> None:
    report = ingestor.ingest("people", pa.table({
        "person_id": [SUBJ, "o-1"], "kind": ["customer"] * 2, "segment": ["smb"] * 2,
        "region": ["north"] * 2, "email": [EMAIL, "o1@example.com"], "phone": [PHONE, None],
    }))  # fmt: skip
    assert report.rejected == 0, report.errors


def scan(store: Store, needles: Sequence[str]) -> list[tuple[str, str, str]]:
    """(table, column, needle) for every stored value, as text, holding a needle."""
    found = []
    tables = [str(r[0]) for r in store.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_type = 'BASE TABLE' ORDER BY 1")]  # fmt: skip
    for table in tables:
        if table in KEPT:
            continue
        columns = [str(r[0]) for r in store.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_schema = current_schema() ORDER BY ordinal_position", (table,))]  # fmt: skip
        for row in store.query(f"SELECT * FROM {table}"):
            for column, value in zip(columns, row, strict=True):
                text = json.dumps(value, default=str) if isinstance(value, dict | list) else str(
                    value)  # fmt: skip
                found += [(table, column, n) for n in needles if value is not None and n in text]
    return found


@pytest.fixture
def world(store: Store, ingestor: Ingestor) -> Iterator[dict[str, str]]:
    """The subject, a detractor at checkout (a case of theirs) and the first at the support
    call, whose case is about the touch point (o-1 joins it); a note on o-1's own case quotes
    the subject's e-mail and phone, its notifications still to send."""
    webhooks.add_endpoint(store, "https://hooks.example.com/corridor")
    add_rule(store, Rule("detractors", "detractor", scope={"touchpoint": ["checkout"]}),
             actor="root")  # fmt: skip
    add_rule(store, Rule("hotspot", "detractor", {"per": "touchpoint"},
                         scope={"touchpoint": ["support_call"]}, cooldown_s=1),
             actor="root")  # fmt: skip
    _people(ingestor)
    now = datetime.now(UTC)
    _feedback(ingestor, [
        {"feedback_id": "f-s1", "person_id": SUBJ, "nps": 2,
         "occurred_at": now - timedelta(hours=3)},
        {"feedback_id": "f-s2", "person_id": SUBJ, "nps": 1, "touchpoint": "support_call",
         "occurred_at": now - timedelta(hours=2, minutes=50)},
        {"feedback_id": "f-o1", "person_id": "o-1", "nps": 3,
         "occurred_at": now - timedelta(hours=2)},
        {"feedback_id": "f-o2", "person_id": "o-1", "nps": 3, "touchpoint": "support_call",
         "occurred_at": now - timedelta(hours=1, minutes=50)},
    ])  # fmt: skip
    found, _ = cases.list_cases(store, None)
    by = {(c["person_id"], c["touchpoint"]): c["case_id"] for c in found}
    assert set(by) == {(SUBJ, "checkout"), ("o-1", "checkout"), (None, "support_call")}
    cases.add_note(
        store,
        None,
        by[("o-1", "checkout")],
        f"o-1 says their neighbour {EMAIL} ({PHONE}) had the same",
        actor="root",
    )
    yield {"own": by[(SUBJ, "checkout")], "other": by[("o-1", "checkout")],
           "shared": by[(None, "support_call")]}  # fmt: skip


@pytest.mark.parametrize("action", ["erase", "anonymise"])
def test_nothing_of_the_person_is_left_in_the_loop(
    store: Store, world: dict[str, str], action: str
) -> None:
    requests.request(store, SUBJ, action, actor=ACTOR)
    assert scan(store, [SUBJ, EMAIL, PHONE]) == []
    # the other customer's case and the shared case are kept, the note without the identities
    other = cases.get_case(store, None, world["other"])
    assert any("[erased]" in (h["note"] or "") for h in other["history"])
    shared = cases.get_case(store, None, world["shared"])
    assert [a["person_id"] for a in shared["alerts_fired"]][-1] == "o-1"
    if action == "erase":
        with pytest.raises(cases.CaseNotFoundError):
            cases.get_case(store, None, world["own"])
        return
    # anonymised: the case stays, under the pseudonym, with nothing that names them; a new
    # person under the old id is a stranger to it (the cooldown and the case are the pseudonym's)
    own = cases.get_case(store, None, world["own"])
    assert own["person_id"].startswith("anon-") and own["verification_detail"] is None
    (subject,) = store.query(
        "SELECT subject FROM alerts WHERE rule_id = 'detractors' AND person_id = ?",
        [own["person_id"]],
    )
    assert subject[0] == f"person={own['person_id']}|touchpoint=checkout"


def test_a_survey_link_of_an_anonymised_person_brings_no_new_answers(
    store: Store, ingestor: Ingestor
) -> None:
    _people(ingestor)
    catalog.save(store, definition.parse(delivery()), by="ana")
    link, _ = links.create(store, "delivery-pulse", person_id=SUBJ, touchpoint="home_delivery")
    invitations.invite(store, "delivery-pulse", [SUBJ])
    requests.request(store, SUBJ, "anonymise", actor=ACTOR)
    (row,) = store.query("SELECT revoked_at, person_id FROM survey_links WHERE link_id = ?",
                         [link.link_id])  # fmt: skip
    assert row[0] is not None and str(row[1]).startswith("anon-")
    assert scan(store, [SUBJ, EMAIL]) == []  # the list invitation's key included


def test_records_handed_to_the_background_workers_before_an_erasure_raise_nothing(
    store: Store, small_map: CorridorMap
) -> None:
    """The server hands each batch to the after-commit worker (rollup and record rules) and to
    the text worker (analysis and text rules); an erasure that commits before either works on
    them leaves nothing for them to fire on or to store."""
    ingestor = Ingestor(store, rollup_upkeep="background", analyze_text=False)
    ingestor.load_map(small_map)
    try:
        add_rule(store, Rule("detractors", "detractor"), actor="root")
        add_rule(store, Rule("complaints", "text", {"intents": ["complaint"]}), actor="root")
        _people(ingestor)
        folds: list[Any] = []
        texts: list[Any] = []
        ingestor.on_pending_rollup = lambda rows, read: folds.append((rows, dict(read)))
        ingestor.on_pending_text = lambda valid, rows: texts.append((valid, rows))
        handed_at = datetime.now(UTC)
        _feedback(ingestor, [
            {"feedback_id": "f-d", "person_id": SUBJ, "nps": 1, "expectation": 9.0,
             "experience": 2.0, "text": "This is terrible, I want to complain, worst ever"},
            {"feedback_id": "f-o", "person_id": "o-1", "nps": 2, "expectation": 7.0,
             "experience": 5.0},
        ])  # fmt: skip
        assert folds and texts
        requests.request(store, SUBJ, "erase", actor=ACTOR)
        after_commit.fold(store, handed=after_commit.Handed(folds), texts_analysed=False)
        valid, rows = texts[0]
        analyze_handed(store, valid.select(["feedback_id", "text"]), known=rows,
                       handed_at=handed_at)  # fmt: skip
        assert [r[0] for r in store.query("SELECT person_id FROM alerts")] == ["o-1"]
        assert store.query("SELECT count(*) FROM text_analysis")[0][0] == 0
        assert scan(store, [SUBJ, EMAIL]) == []
    finally:
        ingestor.close()


def test_an_attempt_on_a_notification_erased_meanwhile_leaves_no_log_line(store: Store) -> None:
    """A notification claimed for sending, erased while it is sent (an erasure deletes the
    notifications about the person), then finished: no delivery attempt is logged for it (the
    log line's error, an SMTP server's reply naming the address, would outlive the erasure)."""
    from corridor.loop import outbox
    from corridor.loop.outbox_rows import Attempt

    with store.transaction() as tx:
        outbox.enqueue(tx, "case.note_added", {"note": "x"}, key="k-1", emails=[EMAIL])
    (row,) = outbox.claim(store, "me", kinds=(outbox.EMAIL,))
    with store.transaction() as tx:
        tx.execute("DELETE FROM outbox WHERE id = ?", [row.id])
    refused = Attempt(False, 550, f"550 no such mailbox {EMAIL}")
    outbox.finish_many(store, [(row, refused)], owner="me", max_attempts=3, base_s=1.0)
    assert store.query("SELECT count(*) FROM deliveries")[0][0] == 0


def test_an_invitation_erased_while_it_is_sent_is_not_mailed(
    store: Store, ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The invitations job reads the due invitations, makes each a link, then marks it sent and
    queues its mail; an erasure landing in between (here: while its link is made) leaves no mail
    and no link of the person."""
    _people(ingestor)
    catalog.save(store, definition.parse(delivery()), by="ana")
    invitations.invite(store, "delivery-pulse", [SUBJ, "o-1"])
    make = links.create

    def create_then_erase(*args: Any, **kwargs: Any) -> Any:
        made = make(*args, **kwargs)
        if kwargs.get("person_id") == SUBJ:
            requests.request(store, SUBJ, "erase", actor=ACTOR)
        return made

    monkeypatch.setattr(links, "create", create_then_erase)
    report = invitations.run(store, "https://feedback.example.com")
    assert report.sent == 1
    mailed = store.query("SELECT target FROM outbox WHERE event_type = ?", [invitations.INVITATION])
    assert [r[0] for r in mailed] == ["o1@example.com"]
    assert scan(store, [SUBJ, EMAIL]) == []


def test_a_digest_still_to_send_loses_the_persons_lines_and_keeps_the_others(
    store: Store, ingestor: Ingestor
) -> None:
    """A department head's hourly digest, folded and not yet sent, holds the subject's case and
    another customer's: an erasure takes the subject's lines out of it, and it goes with the
    other's (its lines are folded into it already, so a digest removed whole would lose them)."""
    from corridor.auth import accounts
    from corridor.loop import mail

    accounts.add_user(store, "dora", "correct horse battery", "department_head",
                      department="ecommerce")  # fmt: skip
    mail.set_preference(store, "dora", "dora@corp.example", mode="digest", digest="hourly")
    add_rule(store, Rule("detractors", "detractor"), actor="root")
    _people(ingestor)
    _feedback(ingestor, [{"feedback_id": "f-s", "person_id": SUBJ, "nps": 2},
                         {"feedback_id": "f-o", "person_id": "o-1", "nps": 3}])  # fmt: skip
    assert mail.send_digests(store, now=datetime.now(UTC) + timedelta(hours=2)) == 1
    requests.request(store, SUBJ, "erase", actor=ACTOR)
    (payload,) = store.query(
        "SELECT CAST(payload AS VARCHAR) FROM outbox WHERE event_type = 'digest' "
        "AND state = 'pending'"
    )
    digest = json.loads(payload[0])["data"]
    assert digest["count"] == 1 and "o-1" in json.dumps(digest["items"])
    assert scan(store, [SUBJ, EMAIL]) == []


JULY = datetime(2025, 7, 2, tzinfo=UTC)
#: a comment with what JSON and the mail's text write their own way: double quotes, a line
#: break, a minus sign (the text writes it as "-")
SAID = 'The "express" courier left it in the rain\nnext to the bins: −3 stars'


def _queued_report(store: Store, ingestor: Ingestor) -> Notification:
    """A monthly report for June 2025 queued for the analyst ana, its text quoting the
    subject's comment as a report's themes' section does (this small store has no themes;
    tests/test_reports.py checks a real report's quotes on the demo company)."""
    _people(ingestor)
    _feedback(ingestor, [{"feedback_id": "f-q", "person_id": SUBJ, "nps": 3, "text": SAID,
                          "occurred_at": datetime(2025, 6, 10, tzinfo=UTC)}])  # fmt: skip
    accounts.add_user(store, "ana", "a-long-password-1", "analyst")
    mail.set_preference(store, "ana", "ana@example.com")
    schedules.add_schedule(
        store, cadence="monthly", role="analyst", now=datetime(2025, 6, 1, tzinfo=UTC)
    )
    assert schedules.send_due(store, now=JULY, with_pdf=False).queued == 1
    (row,) = outbox.list_notifications(store)
    data = row.payload["data"]
    quoted = f"\n{THEMES_HEADING}\n  {plain_quote(SAID)}\n"
    doc = {**row.payload, "data": {**data, "text": data["text"] + quoted}}
    as_json = "JSONB" if store.dialect == "postgres" else "JSON"
    with store.transaction() as tx:
        tx.execute(
            f"UPDATE outbox SET payload = CAST(? AS {as_json}) WHERE id = ?",
            [json.dumps(doc), row.id],
        )
    return outbox.get_notification(store, row.id)


@pytest.mark.parametrize("action", ["erase", "anonymise"])
def test_a_report_mail_quoting_the_person_is_withdrawn_and_made_again(
    store: Store, ingestor: Ingestor, action: str
) -> None:
    """The withdrawal reads the queued mail's text out of its JSON, which each engine writes
    its own way (PostgreSQL's JSONB re-serialises it): the quote is found on both (a minus sign
    in it too: the mail's text writes it as "-", and it was missed), the mail waits
    (``remaking``), and the reports job makes it again from the store as it is after the
    request, to the recipient's address of now."""
    row = _queued_report(store, ingestor)
    mail.set_preference(store, "ana", "ana.new@example.com")
    summary = requests.request(store, SUBJ, action, actor=ACTOR)
    assert summary["removed"]["report_mails_withdrawn"] == 1, summary
    assert outbox.get_notification(store, row.id).state == outbox.REMAKING
    assert scan(store, ["left it in the rain"]) == []
    assert schedules.remake_withdrawn(store, now=JULY, with_pdf=False) == 1
    remade = outbox.get_notification(store, row.id)
    assert remade.state == outbox.PENDING and "CX report" in remade.payload["data"]["subject"]
    assert "left it in the rain" not in json.dumps(remade.payload)
    assert remade.target == "ana.new@example.com"


def test_a_report_made_while_a_privacy_request_runs_waits_for_the_next_run(
    store: Store, ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report is built outside any transaction (seconds on a large store). A request that
    lands meanwhile cannot find the comments it quotes (the mail is not written yet, or is
    withdrawn): forced here by running the request while the report is built, the mail is
    neither queued nor made again with what it read; the next run does it from the store as
    it is then."""
    row = _queued_report(store, ingestor)
    with store.transaction() as tx:  # a sent mail withdrawn by an earlier request
        tx.execute("UPDATE outbox SET state = 'remaking' WHERE id = ?", [row.id])
    built = schedules._payload

    def while_built(*args: Any) -> dict[str, Any]:
        data = built(*args)
        data["text"] += f"\n{THEMES_HEADING}\n  {plain_quote(SAID)}\n"  # as read before…
        requests.request(store, SUBJ, "erase", actor=ACTOR)  # …the request lands
        return data

    monkeypatch.setattr(schedules, "_payload", while_built)
    assert schedules.remake_withdrawn(store, now=JULY, with_pdf=False) == 0
    assert outbox.get_notification(store, row.id).state == outbox.REMAKING
    monkeypatch.undo()
    assert schedules.remake_withdrawn(store, now=JULY, with_pdf=False) == 1
    assert "left it in the rain" not in json.dumps(outbox.get_notification(store, row.id).payload)


def test_feedback_text_retention_withdraws_the_report_mails_that_quote_old_texts(
    store: Store, ingestor: Ingestor
) -> None:
    """Feedback-text retention removes comments written before its cutoff; a report mail kept
    in the outbox (sent or to send) about a period that began before it quoted some of them:
    it is withdrawn too (a later erasure could not find the comment in it any more)."""
    row = _queued_report(store, ingestor)
    settings.change_settings(store, {"retention.feedback_text_days": "30"}, by="dpo")
    done = retention.apply(store)
    assert done["feedback_texts"] == 1 and done["report_mails_withdrawn"] == 1, done
    withdrawn = outbox.get_notification(store, row.id)
    assert withdrawn.state == outbox.REMAKING and "text" not in withdrawn.payload["data"]
    assert scan(store, ["left it in the rain"]) == []
    assert "report_mails_withdrawn" not in retention.apply(store)  # once
