"""Whose data a request is about, and where it lies: the person group and the parts of the
store that hold it.

A request names a person by id, e-mail, phone or CRM id (:func:`find_group`); it covers the
whole group that person belongs to: the canonical person and everyone merged into it (identity
resolution, :mod:`corridor.ingest.identity`, never rewrites a merged person's records, so each
member's records are found under its own id).

:data:`PARTS` says, for each table holding a person's data, how their rows are found from the
group's person ids (staged as ``_subject``) and identity values (``_subject_ids``): directly by a
person column, or through another part (a feedback record's text analysis and kept original, a
case's history, an outbox row's delivery attempts). Export reads them, preview counts them,
erase and anonymise change them. :func:`person_tables` reads the schema itself for every table
with a person column, so a table added later that :data:`PARTS` does not know is found (a test
fails on it; :func:`corridor.privacy.requests` erases it by its person column meanwhile).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from corridor.domain.contract import IDENTITY_TYPES
from corridor.errors import NotFoundError
from corridor.store.base import Store, Tx

#: columns naming a person, wherever they appear
PERSON_COLUMNS = ("person_id", "from_person", "into_person")

_S = "(SELECT person_id FROM _subject)"


class PersonNotFoundError(NotFoundError, LookupError):
    """No person with that id or identity."""


@dataclass(frozen=True)
class Part:
    """One kind of a person's data: ``table``'s rows matching ``where``."""

    name: str
    table: str
    where: str
    about: str
    #: the rows carry free text or identifiers beyond the person id (anonymise clears them)
    personal: bool = True


_FEEDBACK = f"feedback_id IN (SELECT feedback_id FROM feedback WHERE person_id IN {_S})"
_CASES = f"case_id IN (SELECT case_id FROM cases WHERE person_id IN {_S})"
#: an outbox row about the person: sent to one of their addresses, or its payload names one of
#: their ids or identities as a whole JSON string
_OUTBOX = (
    "(target IN (SELECT id_value FROM _subject_ids) OR EXISTS (SELECT 1 FROM _needles n "
    "WHERE strpos(CAST(payload AS VARCHAR), n.needle) > 0))"
)

#: every part, dependents before what they depend on (the order erase removes them in)
PARTS: tuple[Part, ...] = (
    Part("profile", "people", f"person_id IN {_S}", "the person and everyone merged into them"),
    Part("identities", "identities", f"person_id IN {_S}", "e-mails, phones, CRM and device ids"),
    Part(
        "merges",
        "person_merges",
        f"(from_person IN {_S} OR into_person IN {_S})",
        "identity merges: which person was merged into which, and the identity that linked them",
    ),
    Part("interactions", "interactions", f"person_id IN {_S}", "every interaction, any channel"),
    Part("text_analysis", "text_analysis", _FEEDBACK, "sentiment, intent, emotions, theme"),
    Part(
        "feedback_originals",
        "feedback_text_original",
        _FEEDBACK,
        "feedback texts as received, before PII redaction (kept only with keep_original_text)",
    ),
    Part("feedback", "feedback", f"person_id IN {_S}", "feedback with its (redacted) texts"),
    Part(
        "survey_responses",
        "survey_responses",
        f"(person_id IN {_S} OR link_id IN "
        f"(SELECT link_id FROM survey_links WHERE person_id IN {_S}))",
        "survey responses, answers as given",
    ),
    Part("survey_links", "survey_links", f"person_id IN {_S}", "personal survey links"),
    Part("survey_invitations", "survey_invitations", f"person_id IN {_S}", "survey invitations"),
    Part("alerts", "alerts", f"person_id IN {_S}", "alerts raised about the person"),
    Part("case_history", "case_events", _CASES, "the history and notes of their cases"),
    Part("cases", "cases", f"person_id IN {_S}", "cases about the person"),
    Part(
        "model_scores",
        "churn_scores",
        f"person_id IN {_S}",
        "the churn-risk score last computed for them",
    ),
    Part(
        "notification_attempts",
        "deliveries",
        f"outbox_id IN (SELECT id FROM outbox WHERE {_OUTBOX})",
        "delivery attempts of notifications about them",
    ),
    Part("notifications", "outbox", _OUTBOX, "notifications (e-mails, webhooks) about them"),
)
PART_TABLES = frozenset(p.table for p in PARTS)

#: free-text columns of anyone's records where staff or customers may have typed a person's
#: identity (a note in another customer's case); an erase or anonymise replaces it there
FREE_TEXT: tuple[tuple[str, str], ...] = (
    ("case_events", "note"),
    ("case_events", "old_value"),
    ("case_events", "new_value"),
    ("cases", "title"),
    ("alerts", "summary"),
    ("feedback", "text"),
    ("feedback_text_original", "text"),
    ("outbox", "last_error"),
    ("deliveries", "error"),
)
#: JSON columns of anyone's records that may quote a person: a notification about another
#: customer's case quotes its notes and its alerts' summaries
FREE_JSON: tuple[tuple[str, str], ...] = (("outbox", "payload"),)
#: what an identity typed in free text becomes
ERASED_MARK = "[erased]"


def named_in_text(persons: Sequence[str]) -> list[tuple[str, str]]:
    """How the person ids stand in text Corridor writes (an alert's summary, hence its case's
    title and history line: ``… at checkout (customer p-1042)``), and what each becomes."""
    return [(f"(customer {p})", f"(customer {ERASED_MARK})") for p in persons]


#: identity values shorter than this are not looked for in free text (too many false matches)
MIN_SWEPT = 6


@dataclass(frozen=True)
class Group:
    """A person group: the canonical person, every member's id, their identities."""

    canonical: str
    persons: tuple[str, ...]
    identities: tuple[tuple[str, str], ...]  # (type, value)


def find_group(store: Store, ref: str, *, by: str = "person_id") -> Group:
    """The group of the person ``ref`` names (``by``: person_id, email, phone, crm_id or
    device_id); :class:`PersonNotFoundError` when none."""
    if by not in ("person_id", *IDENTITY_TYPES):
        raise PersonNotFoundError(
            f"a person is named by person_id, {', '.join(IDENTITY_TYPES)}; not {by!r}"
        )
    if by == "person_id":
        rows = store.query("SELECT canonical_id FROM people WHERE person_id = ?", (ref,))
    else:
        rows = store.query(
            "SELECT p.canonical_id FROM identities i JOIN people p ON p.person_id = i.person_id "
            "WHERE i.id_type = ? AND i.id_value = ?",
            (by, ref),
        )
    if not rows:
        raise PersonNotFoundError(
            f"no person with {by.replace('_', ' ')} {ref!r}; check it, or search with "
            "GET /api/v1/people?q="
        )
    return group_of(store, str(rows[0][0]))


def group_of(store: Store, canonical: str) -> Group:
    persons = tuple(
        str(r[0])
        for r in store.query(
            "SELECT person_id FROM people WHERE canonical_id = ? OR person_id = ? "
            "ORDER BY person_id",
            (canonical, canonical),
        )
    )
    return Group(canonical, persons or (canonical,), identities_of(store, persons or (canonical,)))


def identities_of(store: Store, persons: Sequence[str]) -> tuple[tuple[str, str], ...]:
    marks = ", ".join("?" for _ in persons)
    return tuple(
        (str(t), str(v))
        for t, v in store.query(
            f"SELECT id_type, id_value FROM identities WHERE person_id IN ({marks}) "
            "ORDER BY id_type, id_value",
            list(persons),
        )
    )


def stage(tx: Tx, persons: Sequence[str], identities: Sequence[tuple[str, str]]) -> None:
    """Stage the group for :data:`PARTS`' conditions: ``_subject``, ``_subject_ids`` and
    ``_needles`` (the ids and identity values as JSON strings, as a payload holds them)."""
    values = sorted({v for _, v in identities})
    tx.stage("_subject", pa.table({"person_id": pa.array(sorted(set(persons)), pa.string())}))
    tx.stage("_subject_ids", pa.table({"id_value": pa.array(values, pa.string())}))
    needles = sorted({f'"{x}"' for x in (*persons, *values)})
    tx.stage("_needles", pa.table({"needle": pa.array(needles, pa.string())}))


def existing_tables(tx: Tx) -> set[str]:
    return {
        str(r[0])
        for r in tx.fetchall(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    }


def person_tables(tx: Tx) -> dict[str, list[str]]:
    """Every table of the store with a person column (:data:`PERSON_COLUMNS`), and those
    columns: read from the schema, not from a list kept by hand."""
    marks = ", ".join("?" for _ in PERSON_COLUMNS)
    out: dict[str, list[str]] = {}
    for table, column in tx.fetchall(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_name = c.table_name "
        "AND t.table_schema = c.table_schema "
        f"WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
        f"AND c.column_name IN ({marks}) ORDER BY c.table_name, c.column_name",
        list(PERSON_COLUMNS),
    ):
        out.setdefault(str(table), []).append(str(column))
    return out


def unknown_person_tables(tx: Tx) -> dict[str, list[str]]:
    """Tables with a person column that :data:`PARTS` does not cover."""
    return {t: c for t, c in person_tables(tx).items() if t not in PART_TABLES}
