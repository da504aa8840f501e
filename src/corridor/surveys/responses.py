"""Responses: opened, saved page by page, resumed, submitted, and stored as feedback once.

**Opening.** A personal link has one response (its id derived from the link's, so two first
visits at once make one row); an anonymous link makes a new response per visitor, found again by
its form token (kept by the browser in a cookie and in the form). The response answers the
survey's version of the moment it was opened, and keeps it.

**Form tokens.** Every form carries a token the store knows only as a SHA-256: a post without
the token of its response is refused, so another site cannot post answers in a visitor's name.
A personal response's token is derived from the link's token, which only the person has.

**Submitting, exactly once.** A submit (1) freezes the feedback record in the response row,
marks the row ``submitting`` and a personal link used, in one transaction: from then on the
answer is acknowledged; (2) hands the record to :meth:`Ingestor.ingest` (validation, PII
redaction, identity, text analysis, rollup, the closed loop's record rules) with a
``feedback_id`` derived from the response id, so a second attempt stores nothing twice; (3) marks
the row ``submitted``. A crash between (1) and (3) leaves the row ``submitting``: the next visit
of the link, a retried post, or :func:`recover` (run when a server starts) repeats (2) and (3).
A server answers once (1) has committed and leaves (2) and (3) to its finisher thread
(:func:`finish_pending`), which stores every answer acknowledged meanwhile as one group: the
customer does not wait for the ingest, and answers sent at once cost one ingest, not one each.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Required, TypedDict, Unpack

from corridor.domain.contract import FEEDBACK
from corridor.errors import CorridorError
from corridor.ingest.payload import records_to_table
from corridor.ingest.pipeline import Ingestor
from corridor.store import Store
from corridor.store.base import Tx
from corridor.surveys import answers as answering
from corridor.surveys import catalog
from corridor.surveys.definition import Survey
from corridor.surveys.errors import FormTokenError
from corridor.surveys.links import Link, refusal

log = logging.getLogger("corridor.surveys")

OPEN, SUBMITTING, SUBMITTED, REJECTED = "open", "submitting", "submitted", "rejected"
FEEDBACK_PREFIX = "survey-"


def feedback_id(response_id: str) -> str:
    """The feedback record's id: the same for every attempt to store one response."""
    return FEEDBACK_PREFIX + response_id


@dataclass
class Response:
    response_id: str
    link_id: str
    survey_id: str
    version: int
    kind: str
    person_id: str | None
    interaction_id: str | None
    touchpoint: str
    channel: str | None
    language: str
    state: str
    page: int
    answers: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    saved_at: datetime | None = None
    submitted_at: datetime | None = None
    feedback_id: str | None = None
    error: str | None = None
    #: the form token (known only to whoever opened it; the store keeps its hash)
    form_token: str = field(default="", repr=False)

    @property
    def done(self) -> bool:
        return self.state != OPEN

    def as_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("response_id", "link_id", "survey_id", "version", "kind", "person_id",
                      "interaction_id", "touchpoint", "channel", "language", "state", "page",
                      "answers", "created_at", "started_at", "saved_at", "submitted_at",
                      "feedback_id", "error")
        }  # fmt: skip


_COLUMNS = (
    "response_id, link_id, survey_id, version, kind, person_id, interaction_id, touchpoint, "
    "channel, language, state, page, answers, created_at, started_at, saved_at, submitted_at, "
    "feedback_id, error"
)


def _response(r: tuple[Any, ...], form_token: str = "") -> Response:
    u = catalog.utc
    return Response(
        str(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), r[5], r[6], str(r[7]), r[8],
        str(r[9]), str(r[10]), int(r[11]), dict(catalog.as_json(r[12]) or {}),
        u(r[13]), u(r[14]), u(r[15]), u(r[16]), r[17], r[18], form_token,  # type: ignore[arg-type]
    )  # fmt: skip


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def find_by_form(store: Store, link: Link, form_token: str | None) -> Response | None:
    """The response of ``link`` whose form token is ``form_token`` (any state), or None."""
    if not form_token or len(form_token) > 64:
        return None
    row = _get(store, "form_hash = ? AND link_id = ?", (_hash(form_token), link.link_id))
    return None if row is None else _response(row, form_token)


def personal_form_token(link_token: str) -> str:
    """A personal response's form token: derived from the link's token (which only the person
    has), so any visit of the link can show the form again without storing a secret."""
    return hmac.new(link_token.encode(), b"corridor-survey-form", hashlib.sha256).hexdigest()[:32]


def _personal_response_id(link: Link) -> str:
    return "rsp-" + link.link_id.removeprefix("lnk-")


def _get(store: Store, where: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    rows = store.query(f"SELECT {_COLUMNS} FROM survey_responses WHERE {where}", params)
    return rows[0] if rows else None


def get(store: Store, response_id: str) -> Response | None:
    row = _get(store, "response_id = ?", (response_id,))
    return None if row is None else _response(row)


def answered_version(store: Store, link: Link) -> int | None:
    """The survey version the link's latest sent response answered (its thank-you page is that
    version's), or None when none was sent."""
    rows = store.query(
        "SELECT version FROM survey_responses WHERE link_id = ? AND submitted_at IS NOT NULL "
        "ORDER BY submitted_at DESC LIMIT 1",
        (link.link_id,),
    )
    return int(rows[0][0]) if rows else None


def for_link(store: Store, link: Link) -> list[Response]:
    rows = store.query(
        f"SELECT {_COLUMNS} FROM survey_responses WHERE link_id = ? ORDER BY created_at",
        (link.link_id,),
    )
    return [_response(r) for r in rows]


def open_response(
    store: Store,
    link: Link,
    link_token: str,
    *,
    form_token: str | None = None,
    language: str,
    now: datetime | None = None,
    version: int | None = None,
) -> Response:
    """The response a visit of ``link`` continues, or a new one (answering ``version``, the
    survey's latest when not given).

    Personal: the link's one response (made on the first visit). Anonymous: the response of
    ``form_token`` (from the visitor's cookie or form) if it is one of this link's and still
    open, else a new one. Raises :class:`LinkGoneError` for a link that can no longer be
    answered (expired, revoked, used)."""
    now = now or datetime.now(UTC)
    gone = refusal(link, now)
    if gone is not None:
        raise gone
    if link.kind == "personal":
        token = personal_form_token(link_token)
        row = _get(store, "response_id = ?", (_personal_response_id(link),))
        if row is not None:
            return _response(row, token)
        return _create(store, link, _personal_response_id(link), token, language, now, version)
    if form_token:
        row = _get(store, "form_hash = ? AND link_id = ?", (_hash(form_token), link.link_id))
        if row is not None and row[10] == OPEN:
            return _response(row, form_token)
    token = secrets.token_urlsafe(24)
    return _create(store, link, f"rsp-{uuid.uuid4().hex}", token, language, now, version)


def _create(
    store: Store,
    link: Link,
    response_id: str,
    token: str,
    language: str,
    now: datetime,
    version: int | None,
) -> Response:
    if version is None:
        version = catalog.get(store, link.survey_id).version
    made = store.write_beside(
        lambda tx: tx.execute(
            f"INSERT INTO survey_responses ({_COLUMNS}, form_hash) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (response_id) DO NOTHING",
            (
                response_id, link.link_id, link.survey_id, version, link.kind, link.person_id,
                link.interaction_id, link.touchpoint, link.channel, language, OPEN, 1, "{}",
                now, None, None, None, None, None, _hash(token),
            ),
        )
    )  # fmt: skip
    if made == 1:
        return Response(
            response_id, link.link_id, link.survey_id, version, link.kind, link.person_id,
            link.interaction_id, link.touchpoint, link.channel, language, OPEN, 1, {}, now,
            form_token=token,
        )  # fmt: skip
    row = _get(store, "response_id = ?", (response_id,))  # made by another visit at once
    assert row is not None
    return _response(row, token)


def check_form(response: Response, posted: str | None) -> None:
    """The post must carry the form token of ``response``."""
    if not posted or not hmac.compare_digest(posted, response.form_token):
        raise FormTokenError(
            "This form has expired or was not sent from the survey page. Please open the survey "
            "link again; your saved answers are kept."
        )


class Where(TypedDict, total=False):
    """Where the customer is, as :func:`merge` and :func:`save` take it: the page (required),
    the language chosen (default: the response's) and the time (default: now)."""

    page: Required[int]
    language: str | None
    now: datetime | None


def save(
    store: Store, response: Response, values: dict[str, Any], **where: Unpack[Where]
) -> Response:
    """Merge ``values`` into the response's answers and note where the customer is."""
    if response.done:
        return response

    def write(tx: Tx) -> Response:
        # merged into the answers as stored now, not as ``response`` read them: a page saved
        # meanwhile (the form open in two tabs) keeps its answers
        merged = merge(_stored(tx, response), values, **where)
        tx.execute(
            "UPDATE survey_responses SET answers = ?, page = ?, language = ?, started_at = ?, "
            "saved_at = ? WHERE response_id = ? AND state = ?",
            (json.dumps(merged.answers), merged.page, merged.language, merged.started_at,
             merged.saved_at, response.response_id, OPEN),
        )  # fmt: skip
        return merged

    return store.write_beside(write)


def _stored(tx: Tx, response: Response) -> Response:
    """``response`` with its answers and start as stored now (read for update: on PostgreSQL
    a concurrent save waits for this transaction; on DuckDB one of two conflicts and is run
    again)."""
    lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
    rows = tx.fetchall(
        "SELECT answers, started_at FROM survey_responses WHERE response_id = ? AND state = ?"
        + lock,
        (response.response_id, OPEN),
    )
    if not rows:
        return response
    answers = dict(catalog.as_json(rows[0][0]) or {})
    return replace(response, answers=answers, started_at=catalog.utc(rows[0][1]))


def merge(
    response: Response,
    values: dict[str, Any],
    *,
    page: int,
    language: str | None = None,
    now: datetime | None = None,
) -> Response:
    """The response with ``values`` merged into its answers, at ``page``, not written yet
    (:func:`save` writes it; :func:`submit` writes it with the acknowledgement)."""
    if response.done:
        return response
    now = now or datetime.now(UTC)
    merged = {**response.answers, **values}
    started = response.started_at or (now if any(v is not None for v in values.values()) else None)
    lang = language or response.language
    return replace(
        response, answers=merged, page=page, language=lang, started_at=started, saved_at=now
    )


def set_language(store: Store, response: Response, language: str) -> Response:
    """The customer chose another language: later visits show it too."""
    if response.done or language == response.language:
        return replace(response, language=language)
    store.write_beside(
        lambda tx: tx.execute(
            "UPDATE survey_responses SET language = ? WHERE response_id = ? AND state = ?",
            (language, response.response_id, OPEN),
        )
    )
    return replace(response, language=language)


def record(
    response: Response, survey: Survey, submitted_at: datetime, *, partial: bool = False
) -> dict[str, Any]:
    """The feedback record a response becomes (``partial``: left unfinished, sent as it is)."""
    attrs: dict[str, Any] = {
        "survey_id": response.survey_id,
        "survey_version": response.version,
        "survey_response": response.response_id,
        "survey_language": response.language,
    }
    if partial:
        attrs["survey_partial"] = True
    if response.channel:
        attrs["survey_channel"] = response.channel
    rec: dict[str, Any] = {
        "feedback_id": feedback_id(response.response_id),
        "occurred_at": submitted_at.isoformat(),
        "source": "survey",
        "touchpoint": response.touchpoint,
    }
    if response.person_id:
        rec["person_id"] = response.person_id
    if response.interaction_id:
        rec["interaction_id"] = response.interaction_id
    for qid, value in answering.kept(survey, response.answers).items():
        q = survey.question(qid)
        assert q is not None
        if q.is_column:
            rec[q.target] = value
        else:
            attrs[q.target] = value
    rec["attributes"] = attrs
    return rec


def submit(
    store: Store,
    ingestor: Ingestor,
    response: Response,
    survey: Survey,
    now: datetime | None = None,
    *,
    partial: bool = False,
    finish_now: bool = True,
    given: dict[str, Any] | None = None,
) -> Response:
    """Acknowledge the response (one transaction), then store it as feedback (see the module
    docstring). Submitting a response that is already submitted (a retried post) only finishes
    what is left, and stores nothing twice. ``given``: the answers of the page sent with the
    submit, merged onto the answers as stored at the acknowledgement (a page saved meanwhile in
    another tab is kept); None: ``response``'s answers as they are. ``partial``: an abandoned
    response sent as it is. ``finish_now=False``: only acknowledge (durable from then on) and
    return the response in state ``submitting``; :func:`finish_pending` (a server's finisher)
    stores it."""
    if response.state == OPEN:
        now = now or datetime.now(UTC)
        rec = record(response, survey, now, partial=partial)

        def acknowledge(tx: Tx) -> None:
            nonlocal response, rec
            if given is not None:  # the last page's answers onto those stored now
                stored = _stored(tx, response)
                response = replace(
                    response,
                    answers={**stored.answers, **given},
                    started_at=stored.started_at or response.started_at,
                )
                rec = record(response, survey, now, partial=partial)
            # the answers as given (the last page's may not be saved yet) with the record
            changed = tx.execute(
                "UPDATE survey_responses SET state = ?, submitted_at = ?, record = ?, "
                "feedback_id = ?, answers = ?, page = ?, language = ?, started_at = ?, "
                "saved_at = ? WHERE response_id = ? AND state = ?",
                (SUBMITTING, now, json.dumps(rec), rec["feedback_id"],
                 json.dumps(response.answers), response.page, response.language,
                 response.started_at, response.saved_at or now, response.response_id, OPEN),
            )  # fmt: skip
            if changed and response.kind == "personal":
                tx.execute(
                    "UPDATE survey_links SET used_at = ? WHERE link_id = ? AND used_at IS NULL",
                    (now, response.link_id),
                )

        store.write_beside(acknowledge)
        if not finish_now:
            return replace(
                response, state=SUBMITTING, submitted_at=now, feedback_id=rec["feedback_id"]
            )
    if not finish_now:
        return response
    return finish(store, ingestor, response.response_id) or response


def finish(store: Store, ingestor: Ingestor, response_id: str) -> Response | None:
    """Store an acknowledged response's feedback record (again: idempotent), mark it done.

    One at a time in a process, and as a group: the thread that gets the turn stores every
    response acknowledged by then (up to :data:`GROUP`) in one ingest per survey, so answers
    sent at once wait for one or two ingests, not for one each; a thread whose response was
    stored meanwhile (a double submit's second, or one of the group) stores nothing (across
    processes the ingest's idempotence on ``feedback_id`` keeps each record once)."""
    with _finishing:
        _finish(store, ingestor, response_id)
    return get(store, response_id)


_finishing = threading.Lock()
#: the most acknowledged responses stored by one turn
GROUP = 500


def finish_pending(store: Store, ingestor: Ingestor) -> int:
    """Store every acknowledged response not stored yet, in groups of up to :data:`GROUP`
    (one ingest per survey each); returns how many were stored or refused. A server's finisher
    runs it after each acknowledgement; like :func:`finish`, it is safe beside other processes."""
    handled = 0
    while True:
        with _finishing:
            rows = _waiting(store)
            if rows:
                _store_group(store, ingestor, rows)
        handled += len(rows)
        if len(rows) < GROUP:
            return handled


def _waiting(store: Store) -> list[tuple[Any, ...]]:
    return store.query(
        "SELECT response_id, record FROM survey_responses WHERE state = ? "
        "ORDER BY submitted_at, response_id LIMIT ?",
        (SUBMITTING, GROUP),
    )


def _finish(store: Store, ingestor: Ingestor, response_id: str) -> None:
    mine = store.query("SELECT state FROM survey_responses WHERE response_id = ?", (response_id,))
    if not mine or mine[0][0] != SUBMITTING:
        return
    rows = _waiting(store)
    if response_id not in {str(r[0]) for r in rows}:  # more than GROUP waiting: ours too
        rows += store.query(
            "SELECT response_id, record FROM survey_responses WHERE response_id = ?",
            (response_id,),
        )
    _store_group(store, ingestor, rows)


def _store_group(store: Store, ingestor: Ingestor, rows: list[tuple[Any, ...]]) -> None:
    by_survey: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for rid, rec in rows:
        record_ = catalog.as_json(rec)
        by_survey.setdefault(str(record_["attributes"]["survey_id"]), []).append(
            (str(rid), record_)
        )
    done: list[str] = []
    refused: list[tuple[str, str]] = []
    for survey_id, group in by_survey.items():
        try:
            _ingest_group(ingestor, survey_id, group, done, refused)
        except CorridorError:
            # a group the ingest cannot take as a whole (more attribute names than one batch
            # takes: many versions of the survey): each record alone, so one record that cannot
            # be stored is refused with its reason, and stops none of the others
            for one in group:
                try:
                    _ingest_group(ingestor, survey_id, [one], done, refused)
                except CorridorError as e:
                    refused.append((one[0], str(e)[:2000]))
                    log.error("survey response %s was refused by the ingest: %s", one[0], e)
    with store.transaction() as tx:
        for start in range(0, len(done), 500):
            chunk = done[start : start + 500]
            tx.execute(
                "UPDATE survey_responses SET state = ?, error = NULL WHERE state = ? "
                f"AND response_id IN ({', '.join('?' for _ in chunk)})",
                (SUBMITTED, SUBMITTING, *chunk),
            )
        for rid, error in refused:
            tx.execute(
                "UPDATE survey_responses SET state = ?, error = ? WHERE response_id = ? "
                "AND state = ?",
                (REJECTED, error, rid, SUBMITTING),
            )


def _ingest_group(
    ingestor: Ingestor,
    survey_id: str,
    group: list[tuple[str, dict[str, Any]]],
    done: list[str],
    refused: list[tuple[str, str]],
) -> None:
    """Store ``group``'s records in one ingest; each response id goes to ``done`` or, with the
    ingest's reasons, to ``refused``."""
    table = records_to_table(FEEDBACK, [r for _, r in group], list(range(1, len(group) + 1)))
    report = ingestor.ingest("feedback", table, source=f"survey:{survey_id}")
    errors: dict[int, list[str]] = {}
    for e in report.errors:
        errors.setdefault(e.row, []).append(f"{e.field}: {e.reason}")
    for k, (rid, _) in enumerate(group, start=1):
        if k in errors:
            refused.append((rid, "; ".join(errors[k])[:2000]))
            log.error("survey response %s was refused by the ingest: %s", rid, errors[k])
        else:
            done.append(rid)


def recover(store: Store, ingestor: Ingestor) -> int:
    """Finish every acknowledged response whose feedback record may not be stored yet (after
    a crash); returns how many. Safe to run at any time, by any number of processes."""
    rows = store.query(
        "SELECT response_id FROM survey_responses WHERE state = ? ORDER BY submitted_at",
        (SUBMITTING,),
    )
    for (response_id,) in rows:
        finish(store, ingestor, str(response_id))
    return len(rows)


def send_abandoned(store: Store, ingestor: Ingestor, now: datetime | None = None) -> int:
    """Send, as they are, the responses left unfinished (with at least one answer, not saved
    for the survey's ``partial_after_days``) of surveys that allow it; returns how many. The
    record says ``survey_partial: true``; a revoked link's response is never sent."""
    now = now or datetime.now(UTC)
    rows = store.query(
        f"SELECT {', '.join('r.' + c.strip() for c in _COLUMNS.split(','))} "
        "FROM survey_responses r JOIN survey_links l ON l.link_id = r.link_id "
        "WHERE r.state = ? AND r.started_at IS NOT NULL AND l.revoked_at IS NULL "
        "AND r.saved_at <= ? ORDER BY r.saved_at",
        (OPEN, now - timedelta(days=1)),
    )
    sent = 0
    surveys: dict[tuple[str, int], Survey] = {}
    for row in rows:
        response = _response(row)
        key = (response.survey_id, response.version)
        if key not in surveys:
            surveys[key] = catalog.get(store, *key).survey
        survey = surveys[key]
        days = survey.partial_after_days
        if days is None or response.saved_at is None:
            continue
        if response.saved_at > now - timedelta(days=days):
            continue
        if not answering.kept(survey, response.answers):
            continue
        submit(store, ingestor, response, survey, now, partial=True)
        sent += 1
    return sent


__all__ = [
    "OPEN",
    "REJECTED",
    "SUBMITTED",
    "SUBMITTING",
    "Response",
    "Where",
    "check_form",
    "feedback_id",
    "find_by_form",
    "finish",
    "finish_pending",
    "for_link",
    "get",
    "merge",
    "open_response",
    "personal_form_token",
    "record",
    "recover",
    "save",
    "send_abandoned",
    "set_language",
    "submit",
]
