"""E-mail notifications over SMTP, and per-user digests.

A notification for an e-mail address (``enqueue(..., emails=[...])``) is one mail. A notification
for a user (``enqueue(..., users=[...])``) follows the user's preference (:func:`set_preference`):
``immediate`` (one mail each, to their address), ``digest`` (collected, and sent as one mail per
period, hourly or daily, by the ``digests`` job) or ``off``. A digest is itself an outbox row,
written in the transaction that marks its lines as digested, so it is delivered like any mail.

Each mail's ``Message-ID`` is made from the notification's idempotency key, the same on every
retry. The SMTP settings (``smtp_host``, ``smtp_port``, ``smtp_from``, ``smtp_starttls``,
``smtp_user``, ``smtp_password``) live in :class:`corridor.settings.Settings`; without a host,
e-mail is off and mail rows wait (and are retried) until one is set.
"""

from __future__ import annotations

import base64
import hashlib
import smtplib
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import orjson

from corridor.errors import CorridorError, NotFoundError
from corridor.loop import outbox
from corridor.loop.outbox import Attempt, Notification
from corridor.settings import Settings
from corridor.store.base import Store

__all__ = [
    "MODES",
    "PERIODS",
    "MailSender",
    "Preference",
    "PreferenceNotFoundError",
    "build_message",
    "get_preference",
    "send_digests",
    "set_preference",
]

MODES = ("immediate", "digest", "off")
#: events whose mails go to customers (survey invitations and reminders): their subject and
#: text are the event's, with no envelope attached
CUSTOMER_PREFIX = "survey."
#: a rendered report: its own subject, text, HTML with inline chart images and a PDF attached
REPORT = "report"
#: digest periods, in seconds
PERIODS = {"hourly": 3600, "daily": 86400}


class PreferenceError(CorridorError, ValueError):
    status_code = 422


class PreferenceNotFoundError(NotFoundError):
    """A user without e-mail notification settings (none is sent to them)."""


@dataclass(frozen=True)
class Preference:
    username: str
    email: str
    mode: str
    digest: str
    last_digest_at: datetime | None


def set_preference(
    store: Store, username: str, email: str, *, mode: str = "immediate", digest: str = "daily"
) -> Preference:
    """How ``username`` gets notifications: at ``email``, ``mode`` immediate, digest or off;
    a digest goes out ``digest`` (hourly or daily)."""
    if mode not in MODES:
        raise PreferenceError(f"notification mode {mode!r}: use one of {', '.join(MODES)}")
    if digest not in PERIODS:
        raise PreferenceError(f"digest period {digest!r}: use one of {', '.join(PERIODS)}")
    if "@" not in email.strip(" @"):
        raise PreferenceError(f"{email!r} is not an e-mail address")
    _, parsed = parseaddr(email.strip())
    if (
        any(ord(ch) < 32 or ord(ch) == 127 for ch in email)
        or parsed != email.strip()
        or any(ch in parsed for ch in ",; ")
    ):
        raise PreferenceError(
            f"{email!r} is not one plain e-mail address (such as lena@example.com): no names, "
            "lists or control characters"
        )
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO notification_prefs (username, email, mode, digest) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (username) DO UPDATE SET email = excluded.email, mode = excluded.mode, "
            "digest = excluded.digest",
            [username, email.strip(), mode, digest],
        )
    found = get_preference(store, username)
    assert found is not None
    return found


def get_preference(store: Store, username: str) -> Preference | None:
    rows = store.query(
        "SELECT username, email, mode, digest, last_digest_at FROM notification_prefs "
        "WHERE username = ?",
        [username],
    )
    return Preference(*rows[0]) if rows else None


# -- the message ------------------------------------------------------------------------------
def _subject(payload: dict[str, Any]) -> str:
    data = payload.get("data") or {}
    if payload.get("type") == "digest":
        return f"[Corridor] {data.get('count', 0)} notifications ({data.get('period', '')})"
    title = data.get("title") or data.get("subject") or data.get("summary")
    return f"[Corridor] {payload.get('type', 'notification')}" + (f": {title}" if title else "")


def _lines(payload: dict[str, Any]) -> list[str]:
    data = payload.get("data") or {}
    out = [f"{payload.get('type')} at {payload.get('timestamp')}"]
    for name, value in data.items():
        if name != "items":
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            out.append(f"  {name}: {text}")
    return out


def build_message(row: Notification, sender: str) -> EmailMessage:
    """The mail of one outbox row: a plain-text body (a digest lists every line it holds) and
    the event envelope attached as JSON."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = row.target
    msg["Subject"] = _subject(row.payload)
    msg["Date"] = format_datetime(datetime.now(UTC))
    digest = hashlib.sha256(row.key.encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2] or "corridor.local"
    msg["Message-ID"] = f"<{digest}@{domain}>"
    msg["X-Corridor-Event"] = row.event_type
    msg["X-Corridor-Key"] = row.key
    data = row.payload.get("data") or {}
    if str(row.payload.get("type", "")).startswith(CUSTOMER_PREFIX):
        # a mail to a customer (a survey invitation): its own subject and words, nothing else
        del msg["Subject"]
        msg["Subject"] = str(data.get("subject") or "How did we do?")
        msg.set_content(str(data.get("text") or "") + "\n")
        return msg
    if row.payload.get("type") == REPORT:
        return _report_mail(msg, data)
    if row.payload.get("type") == "digest":
        items = (row.payload.get("data") or {}).get("items") or []
        body = [f"{len(items)} notifications since your last digest:", ""]
        for item in items:
            body += [*_lines(item), ""]
    else:
        body = _lines(row.payload)
    msg.set_content("\n".join(body) + "\n")
    msg.add_attachment(
        orjson.dumps(row.payload, option=orjson.OPT_INDENT_2),
        maintype="application",
        subtype="json",
        filename="event.json",
    )
    return msg


def _report_mail(msg: EmailMessage, data: dict[str, Any]) -> EmailMessage:
    """A report (:mod:`corridor.reports.schedules`): its subject, a plain-text part, an HTML
    alternative with its charts as related images (``cid:``), and its attachments (the PDF);
    everything comes rendered in the row, so every retry sends the same mail."""
    del msg["Subject"]
    msg["Subject"] = str(data.get("subject") or "Corridor report")
    msg.set_content(str(data.get("text") or ""))
    msg.add_alternative(str(data.get("html") or ""), subtype="html")
    html_part = msg.get_body(("html",))
    assert isinstance(html_part, EmailMessage)
    for cid, encoded in (data.get("images") or {}).items():
        html_part.add_related(
            base64.b64decode(encoded), maintype="image", subtype="png", cid=f"<{cid}>",
            filename=f"{cid.partition('@')[0]}.png", disposition="inline",
        )  # fmt: skip
    for item in data.get("attachments") or ():
        maintype, _, subtype = str(item["content_type"]).partition("/")
        msg.add_attachment(
            base64.b64decode(item["data"]), maintype=maintype, subtype=subtype,
            filename=str(item["filename"]),
        )  # fmt: skip
    return msg


class MailSender:
    """Sends e-mail rows of the outbox over SMTP, one connection per mail."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def deliver(self, row: Notification) -> Attempt:
        s = self.settings
        if not s.smtp_host:
            return Attempt(
                False,
                error="e-mail is off: set CORRIDOR_SMTP_HOST (and smtp_from, smtp_port) to send",
                retry=True,
            )
        msg = build_message(row, s.smtp_from)
        started = time.perf_counter()
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s) as smtp:
                if s.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password or "")
                refused = smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as e:
            code, why = next(iter(e.recipients.values()))
            return self._refused(code, why, started)
        except smtplib.SMTPResponseException as e:
            return self._refused(e.smtp_code, e.smtp_error, started)
        except (smtplib.SMTPException, OSError) as e:
            said = f"SMTP {s.smtp_host}:{s.smtp_port}: {e or type(e).__name__}"
            return Attempt(False, error=said, retry=True, duration_ms=_ms(started))
        if refused:
            code, why = next(iter(refused.values()))
            return self._refused(code, why, started)
        return Attempt(True, status_code=250, duration_ms=_ms(started))

    def _refused(self, code: int, why: bytes | str, started: float) -> Attempt:
        text: str = why.decode(errors="replace") if isinstance(why, bytes) else str(why)
        # 4xx: a temporary refusal (try again); 5xx: permanent
        return Attempt(
            False,
            status_code=code,
            error=f"SMTP {code}: {text}",
            retry=400 <= code < 500,
            duration_ms=_ms(started),
        )


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


# -- digests ----------------------------------------------------------------------------------
def send_digests(store: Store, *, now: datetime | None = None) -> int:
    """Fold each user's digest lines into one mail when their period has passed (since their
    last digest, or since their oldest waiting line); returns the number of digest mails
    enqueued. The mail row and the lines' new state commit together."""
    now = now or datetime.now(UTC)
    made = 0
    with store.transaction() as tx:
        lock = " FOR UPDATE OF o SKIP LOCKED" if tx.dialect == "postgres" else ""
        rows = tx.fetchall(
            "SELECT o.id, o.target, o.payload, o.created_at, p.email, p.digest, p.last_digest_at "
            "FROM outbox o JOIN notification_prefs p ON p.username = o.target "
            "WHERE o.target_kind = ? AND o.state = ? ORDER BY o.target, o.id" + lock,
            [outbox.DIGEST, outbox.PENDING],
        )
        by_user: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for r in rows:
            by_user[str(r[1])].append(r)
        for username, lines in by_user.items():
            _, _, _, first_at, email, period, last = lines[0]
            since = last or first_at
            if now - since < timedelta(seconds=PERIODS.get(period, 86400)):
                continue
            items = [orjson.loads(r[2]) if isinstance(r[2], str | bytes) else r[2] for r in lines]
            data = {"user": username, "period": period, "count": len(items), "items": items}
            outbox.enqueue(  # mail only: no webhook endpoint gets a user's digest
                tx, "digest", data, key=f"digest-{username}-{now.isoformat()}", emails=[email],
                endpoints=[],
            )  # fmt: skip
            ids = [int(r[0]) for r in lines]
            marks = ", ".join("?" for _ in ids)
            tx.execute(
                f"UPDATE outbox SET state = ?, delivered_at = ? WHERE id IN ({marks})",
                [outbox.DIGESTED, now, *ids],
            )
            tx.execute(
                "UPDATE notification_prefs SET last_digest_at = ? WHERE username = ?",
                [now, username],
            )
            made += 1
    return made
