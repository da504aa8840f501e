"""What a privacy request does to mails still in the outbox that carry more than the person:
a digest loses the lines about them and goes with the others (:func:`trim_digests`); a report
mail that quotes their feedback is withdrawn and made again (:func:`withdraw_reports`). Both run
in the request's removal transaction (:mod:`corridor.privacy.requests`), where ``_subject`` and
``_needles`` are staged (:func:`corridor.privacy.subject.stage`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from corridor.loop.outbox_rows import FAILED, PENDING, REMAKING
from corridor.reports.model import THEMES_HEADING, plain_quote
from corridor.reports.periods import ReportPeriod, ReportRequestError
from corridor.store.base import Tx
from corridor.text.redact import redact

#: a report mail's parts that say which report it is (kept when its content is withdrawn)
REPORT_KEYS = ("schedule_id", "period", "scope")


def trim_digests(tx: Tx, tables: set[str]) -> None:
    """A digest mail still to send that names the person carries other notifications too (a
    department head's hour of cases): the lines about the person are taken out of it, and it
    goes with the rest, instead of going whole with the notifications about them (its lines
    are marked folded: they would never be sent again). A digest left with no line goes."""
    if "outbox" not in tables:
        return
    text = "CAST(payload AS VARCHAR)"
    rows = tx.fetchall(
        f"SELECT id, {text} FROM outbox WHERE event_type = 'digest' AND target_kind = 'email' "
        "AND state = 'pending' AND target NOT IN (SELECT id_value FROM _subject_ids) AND EXISTS "
        f"(SELECT 1 FROM _needles n WHERE strpos({text}, n.needle) > 0)"
    )
    if not rows:
        return
    needles = [str(r[0]) for r in tx.fetchall("SELECT needle FROM _needles")]
    for outbox_id, payload in rows:
        doc = orjson.loads(payload)
        data = doc.get("data") or {}
        items = list(data.get("items") or [])
        kept = [i for i in items if not any(n in orjson.dumps(i).decode() for n in needles)]
        if not kept or len(kept) == len(items):
            continue  # nothing else in it, or the person is named outside its lines: it goes
        doc["data"] = {**data, "items": kept, "count": len(kept)}
        tx.execute(
            f"UPDATE outbox SET payload = CAST(? AS {tx.json_type}) WHERE id = ?",
            [orjson.dumps(doc).decode(), outbox_id],
        )


def withdraw_reports(tx: Tx, tables: set[str], request_id: str) -> int:
    """A report mail quotes the latest comments of its largest themes (in its text, its HTML
    and its PDF). Every one that quotes a feedback text of the person, or about their
    interactions, loses its content (the mail keeps which schedule, period and scope it is,
    and ``withdrawn``: the request's id): one still to send (or failed) is ``remaking``, made
    again by the reports job from the store as it is after the request, then sent; one sent
    already keeps its state, and a redelivery makes it again first. A mail being sent at this
    moment cannot be called back: it goes (and, remade, goes again). Returns how many."""
    if not {"outbox", "feedback"} <= tables:
        return 0
    texts = tx.fetchall(
        "SELECT text FROM feedback WHERE text IS NOT NULL AND (person_id IN "
        "(SELECT person_id FROM _subject) OR interaction_id IN (SELECT interaction_id FROM "
        "interactions WHERE person_id IN (SELECT person_id FROM _subject)))"
    )
    # as a quote stands in the mail's plain text (on a line of its own): only that part is
    # read, not the HTML and the PDF (which quote the same), so the search stays small
    quoted = sorted({plain_quote(redact(str(t)).text) for (t,) in texts})
    if not quoted:
        return 0
    tx.stage("_quoted", pa.table({"needle": pa.array(quoted, pa.string())}))
    rows = tx.fetchall(
        "SELECT id, state, CAST(payload AS VARCHAR) FROM outbox WHERE event_type = 'report' "
        "AND EXISTS (SELECT 1 FROM _quoted q WHERE strpos(payload->'data'->>'text', q.needle) "
        "> 0)"
    )
    return _withdraw(tx, rows, request_id)


def withdraw_reports_before(tx: Tx, cutoff: datetime) -> int:
    """The report mails still kept that quote comments (their themes' section) about a period
    that began before ``cutoff``, withdrawn as :func:`withdraw_reports` does: feedback-text
    retention removed the comments written before it, which the mails would otherwise keep
    (and a later erasure could no longer find in them). Returns how many."""
    rows = tx.fetchall(
        "SELECT id, state, CAST(payload AS VARCHAR), payload->'data'->>'period' FROM outbox "
        "WHERE event_type = 'report' AND payload->'data'->>'withdrawn' IS NULL AND "
        "strpos(payload->'data'->>'text', ?) > 0",
        [THEMES_HEADING],
    )
    old = [(i, state, doc) for i, state, doc, key in rows if _began_before(key, cutoff)]
    return _withdraw(tx, old, "retention.feedback_text_days")


def _began_before(key: str | None, cutoff: datetime) -> bool:
    kind = "week" if "-W" in str(key) else "quarter" if "-Q" in str(key) else "month"
    try:
        return ReportPeriod.from_key(kind, str(key)).start < cutoff
    except ReportRequestError:
        return True  # a report of no period it can say: withdrawn, to be sure


def _withdraw(tx: Tx, rows: Sequence[tuple[Any, Any, Any]], why: str) -> int:
    """Withdraw the content of the report mails ``rows`` (id, state, payload as text)."""
    for outbox_id, state, payload in rows:
        doc = orjson.loads(payload)
        data = doc.get("data") or {}
        doc["data"] = {k: data[k] for k in REPORT_KEYS if k in data} | {"withdrawn": why}
        again = REMAKING if state in (PENDING, FAILED, REMAKING) else str(state)
        tx.execute(
            f"UPDATE outbox SET payload = CAST(? AS {tx.json_type}), state = ?, attempts = CASE "
            "WHEN ? = ? THEN 0 ELSE attempts END, last_error = NULL, lease_owner = NULL, "
            "lease_until = NULL, batch_key = NULL WHERE id = ?",
            [orjson.dumps(doc).decode(), again, again, REMAKING, outbox_id],
        )
    return len(rows)


__all__ = ["REPORT_KEYS", "trim_digests", "withdraw_reports", "withdraw_reports_before"]
