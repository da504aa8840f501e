"""Links to a survey: personal (one person, one completed response) and anonymous (a touch
point: a QR code at a counter, a link on a receipt; many responses).

A link is a random token in a short URL, ``/s/<token>``; the store keeps only its SHA-256, so
a copy of the store cannot be used to answer in anyone's name. A personal link answers once:
after its response is submitted it is refused (410) like an expired or revoked one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field

from corridor.domain.contract import MAX_ID_LENGTH
from corridor.store import Store
from corridor.surveys import catalog
from corridor.surveys.errors import LinkGoneError, LinkNotFoundError, SurveyError

#: what a token looks like (anything else is refused before the store is asked)
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_CHANNEL = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,31}$")
KINDS = ("personal", "anonymous")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """144 random bits, 24 URL-safe characters."""
    return secrets.token_urlsafe(18)


def path(token: str) -> str:
    """The short URL's path."""
    return f"/s/{token}"


@dataclass(frozen=True)
class Link:
    link_id: str
    kind: Literal["personal", "anonymous"]
    survey_id: str
    version: Annotated[int, Field(description="the survey's version when the link was made")]
    person_id: str | None
    interaction_id: str | None
    touchpoint: str
    channel: str | None
    language: str | None
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    used_at: Annotated[
        datetime | None, Field(description="a personal link's response was submitted")
    ]

    def state_at(self, now: datetime | None = None) -> str:
        """active, used (a personal link answered), revoked or expired."""
        now = now or datetime.now(UTC)
        if self.revoked_at is not None:
            return "revoked"
        if self.used_at is not None:
            return "used"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def as_dict(self) -> dict[str, Any]:
        """Its fields, in order, and its :meth:`state_at` now (as ``state``)."""
        return {**vars(self), "state": self.state_at()}


_COLUMNS = (
    "link_id, kind, survey_id, version, person_id, interaction_id, touchpoint, channel, "
    "language, created_at, created_by, expires_at, revoked_at, used_at"
)


def _link(r: tuple[Any, ...]) -> Link:
    u = catalog.utc
    return Link(
        str(r[0]), r[1], str(r[2]), int(r[3]), r[4], r[5], str(r[6]), r[7], r[8],
        u(r[9]), r[10], u(r[11]), u(r[12]), u(r[13]),  # type: ignore[arg-type]
    )  # fmt: skip


def _id_value(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise SurveyError(f"{what} must be at most {MAX_ID_LENGTH} characters, without NUL")
    return value


def create(
    store: Store,
    survey_id: str,
    *,
    person_id: str | None = None,
    interaction_id: str | None = None,
    touchpoint: str | None = None,
    channel: str | None = None,
    language: str | None = None,
    expires_at: datetime | None = None,
    valid_days: float | None = None,
    anonymous: bool = False,
    by: str | None = None,
    now: datetime | None = None,
) -> tuple[Link, str]:
    """Make a link; returns it and its token (shown once: only its hash is kept).

    A personal link needs ``person_id``; its touch point is ``touchpoint``, else the
    interaction's, else the survey's only one. It expires after ``valid_days`` (default: the
    survey's ``link_days``) unless ``expires_at`` is given. An anonymous link names a touch
    point (the survey's only one by default) and does not expire unless told to."""
    now = now or datetime.now(UTC)
    stored = catalog.get(store, survey_id)
    survey = stored.survey
    person_id = _id_value(person_id, "person_id")
    interaction_id = _id_value(interaction_id, "interaction_id")
    if anonymous and (person_id or interaction_id):
        raise SurveyError(
            "an anonymous link names no person nor interaction; drop them, or make a personal link"
        )
    if not anonymous and not person_id:
        raise SurveyError(
            "a personal link needs the person it is for (person_id); for a link anyone may "
            "answer, make an anonymous one"
        )
    if touchpoint is None and interaction_id is not None:
        found = store.query(
            "SELECT touchpoint FROM interactions WHERE interaction_id = ?", (interaction_id,)
        )
        touchpoint = found[0][0] if found else None
    if touchpoint is None:
        if len(survey.touchpoints) != 1:
            raise SurveyError(
                f"survey {survey_id!r} asks about several touch points "
                f"({', '.join(survey.touchpoints)}); say which this link is for (touchpoint)"
            )
        touchpoint = survey.touchpoints[0]
    if touchpoint not in survey.touchpoints:
        raise SurveyError(
            f"survey {survey_id!r} asks about {', '.join(survey.touchpoints)}, not {touchpoint!r}"
        )
    if channel is not None:
        channel = channel.strip().lower() or None
        if channel is not None and not _CHANNEL.match(channel):
            raise SurveyError(
                f"channel {channel!r}: a short lower-case label (email, sms, qr, web, app)"
            )
    if language is not None:
        code = survey.language(language)
        if code is None:
            raise SurveyError(
                f"survey {survey_id!r} speaks {', '.join(survey.languages)}, not {language!r}"
            )
        language = code
    if expires_at is None:
        days = valid_days if valid_days is not None else (None if anonymous else survey.link_days)
        if days is not None:
            if not 0 < days <= 3650:
                raise SurveyError("a link is valid for more than 0 and at most 3650 days")
            expires_at = now + timedelta(days=days)
    elif expires_at.tzinfo is None:
        raise SurveyError("expires_at must carry a time zone (e.g. 2026-12-31T23:59:00Z)")
    elif expires_at <= now:
        raise SurveyError("expires_at is in the past; give a later time")
    token = new_token()
    link = Link(
        link_id=f"lnk-{uuid.uuid4().hex[:16]}",
        kind="anonymous" if anonymous else "personal",
        survey_id=survey_id,
        version=stored.version,
        person_id=person_id,
        interaction_id=interaction_id,
        touchpoint=touchpoint,
        channel=channel,
        language=language,
        created_at=now,
        created_by=by,
        expires_at=expires_at,
        revoked_at=None,
        used_at=None,
    )
    with store.transaction() as tx:
        tx.execute(
            f"INSERT INTO survey_links (token_hash, {_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                token_hash(token), link.link_id, link.kind, link.survey_id, link.version,
                link.person_id, link.interaction_id, link.touchpoint, link.channel,
                link.language, link.created_at, link.created_by, link.expires_at, None, None,
            ),
        )  # fmt: skip
    return link, token


def create_many(
    store: Store, survey_id: str, person_ids: list[str], **options: Any
) -> list[tuple[Link, str]]:
    """A personal link for each of ``person_ids`` (one by one; a list of a few thousand)."""
    return [create(store, survey_id, person_id=p, **options) for p in person_ids]


def find(store: Store, token: str) -> Link:
    """The link of ``token``, whatever its state; :class:`LinkNotFoundError` if none."""
    if not TOKEN.match(token):
        raise LinkNotFoundError(_UNKNOWN)
    rows = store.query(
        f"SELECT {_COLUMNS} FROM survey_links WHERE token_hash = ?", (token_hash(token),)
    )
    if not rows:
        raise LinkNotFoundError(_UNKNOWN)
    return _link(rows[0])


_UNKNOWN = (
    "This survey link is not known. Check that the whole link was copied, or ask the sender "
    "for a new one."
)


def refusal(link: Link, now: datetime | None = None) -> LinkGoneError | None:
    """Why ``link`` can no longer be answered, as the error to raise; None while it can."""
    state = link.state_at(now)
    if state == "active":
        return None
    message = {
        "used": "This survey has been answered already with this link. Thank you! Each "
        "personal link can be used once.",
        "revoked": "This survey link has been withdrawn by the sender and can no longer be used.",
        "expired": "This survey link has expired and can no longer be used.",
    }[state]
    return LinkGoneError(message, state)


def get(store: Store, link_id: str) -> Link:
    rows = store.query(f"SELECT {_COLUMNS} FROM survey_links WHERE link_id = ?", (link_id,))
    if not rows:
        raise LinkNotFoundError(f"no survey link {link_id!r}; `corridor surveys links` lists them")
    return _link(rows[0])


def revoke(store: Store, link_id: str, now: datetime | None = None) -> Link:
    """Withdraw a link: from now on it is refused (410). Revoking twice changes nothing."""
    now = now or datetime.now(UTC)
    get(store, link_id)
    # beside the main writer, like the acknowledgement of an answer that marks it used
    store.write_beside(
        lambda tx: tx.execute(
            "UPDATE survey_links SET revoked_at = ? WHERE link_id = ? AND revoked_at IS NULL",
            (now, link_id),
        )
    )
    return get(store, link_id)


def list_links(store: Store, survey_id: str | None = None, limit: int = 1000) -> list[Link]:
    where, params = ("WHERE survey_id = ? ", (survey_id,)) if survey_id else ("", ())
    rows = store.query(
        f"SELECT {_COLUMNS} FROM survey_links {where}ORDER BY created_at DESC, link_id "
        f"LIMIT {int(limit)}",
        params,
    )
    return [_link(r) for r in rows]


__all__ = [
    "KINDS",
    "TOKEN",
    "Link",
    "create",
    "create_many",
    "find",
    "get",
    "list_links",
    "new_token",
    "path",
    "refusal",
    "revoke",
    "token_hash",
]
