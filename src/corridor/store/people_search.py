"""Finding a customer the way people remember them: part of an id, an e-mail or a phone.

:func:`search_people` runs one query (its text per engine). It matches

- the person id, case-insensitively (``576`` finds ``c-000576``);
- e-mails and CRM ids, case-insensitively, anywhere in the value (``lopez`` finds
  ``maria.lopez@example.com``: the contract holds no name, so the name part of the e-mail is
  what a name search matches); device ids whole only (they are opaque);
- phones as digits on both sides: ``+1 (555) 123``, ``555-123`` and the last digits ``4567``
  all match ``+15551234567``.

Each person group (everyone merged into one canonical person) is one candidate, ranked by its
best match: the whole value (0), its start (1), its end, such as a phone's last digits or an
id's number, or the start of a part of it, such as the surname after the ``.`` of an e-mail
(2), anywhere (3); then shorter values first (the query covers more of them), then by id. A
query shorter than :data:`MIN_PARTIAL` characters matches whole values and starts only, so it
stays bounded.

The same query brings each candidate's most recent activity (last interaction or feedback) and
its numbers of interactions and feedback, kept by the caller's scope conditions; with those
conditions a candidate must have a record in scope to be found at all. Nothing here decides who
may see what: the caller passes the conditions (see
:func:`corridor.api.routes.people.records_in_scope`) and whether identities may match in part.

Speed (migration 7; figures in docs/benchmarks.md): the found people's records are read through
the person indexes on both engines. DuckDB scans people and identities with its string
functions; PostgreSQL answers ``LIKE`` from trigram indexes where ``pg_trgm`` could be
installed (else it scans).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from corridor.domain.contract import IDENTITY_TYPES
from corridor.store.base import Store

#: shortest query matched anywhere in a value (shorter ones: whole values and starts only)
MIN_PARTIAL = 3
#: most people one search returns
MAX_LIMIT = 200
#: identities matched in part; others (device ids) whole only
PARTIAL_TYPES = ("email", "crm_id")
#: a query that reads as a phone number: digits, with optional + and separators
_PHONE_LIKE = re.compile(r"^\+?[\d\s\-().]*\d[\d\s\-().]*$")
#: a stored phone (separators already removed on ingest) as its digits only. PostgreSQL: the
#: expression of migration 7's trigram index. DuckDB: regexp_replace with 'g' costs ~4 µs a
#: row there, so the usual form (+ and digits) only drops the +.
DIGITS = {
    "postgres": "regexp_replace({col}, '[^0-9]', '', 'g')",
    "duckdb": "(CASE WHEN regexp_full_match({col}, '\\+?[0-9]*') THEN replace({col}, '+', '') "
    "ELSE regexp_replace({col}, '[^0-9]', '', 'g') END)",
}
#: characters that start a part of a value ("lopez" in maria.lopez@...)
_PART_MARKS = "('.', '_', '-', '+', '@', ' ')"
#: DuckDB pushes the keys of a join's small side into the scan of its large side (where the
#: person indexes answer them) up to this many keys; its default, 50, is fewer than the people
#: of one page of results with their merged members. Many more keys read slower by index
#: than by scanning.
_JOIN_KEYS = 200

#: a LIMIT no read reaches (see _records)
_FENCE = 1 << 62

RANK_NAMES = ("whole", "start", "part", "anywhere")


@dataclass(frozen=True)
class PersonMatch:
    """One person group found: its canonical person and how it matched."""

    person_id: str  # the canonical person id (the group's timeline)
    kind: str
    segment: str | None
    region: str | None
    matched: str  # "person_id", "email", "phone", "crm_id" or "device_id"
    matched_value: str  # the value as stored
    rank: int  # 0 whole value, 1 start, 2 end or start of a part, 3 anywhere
    email: str | None  # the matched e-mail, else the group's first
    phone: str | None  # the matched phone, else the group's first
    last_activity: datetime | None  # latest interaction or feedback within the conditions
    interactions: int
    feedback: int


@dataclass(frozen=True)
class PeopleFound:
    """What one search found, best first."""

    query: str
    people: list[PersonMatch]
    more: bool  # more people matched than were returned
    limit: int
    partial: bool  # the query was long enough to match anywhere in a value


@dataclass(frozen=True)
class Terms:
    """A query as it is matched."""

    typed: str  # trimmed, spaces collapsed
    text: str  # the same in lower case
    digits: str | None  # the digits of a phone-like query

    @property
    def partial(self) -> bool:
        return len(self.text) >= MIN_PARTIAL


def terms(query: str) -> Terms:
    """The query as matched: trimmed and lower-cased; its digits when it reads as a phone."""
    typed = " ".join(query.replace("\x00", "").split())
    digits = re.sub(r"\D", "", typed) if _PHONE_LIKE.match(typed) else None
    return Terms(typed, typed.lower(), digits or None)


def _marks(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matches(dialect: str, value: str, q: str, how: str, *, fold: bool = True) -> tuple[str, Any]:
    """SQL keeping the rows whose ``value`` holds ``q`` (lower case) ``how``: "anywhere",
    "start" or "whole"; ``fold``: compare in lower case. DuckDB's string functions beat its
    LIKE (an escaped pattern is not optimised); PostgreSQL's trigram indexes (on ``lower(...)``,
    so they never stand in for the primary keys in equality joins) answer LIKE."""
    v = f"lower({value})" if fold else value
    if dialect == "duckdb":
        sql = {
            "anywhere": f"contains({v}, ?)",
            "start": f"starts_with({v}, ?)",
            "whole": f"{v} = ?",
        }
        return sql[how], q
    pattern = {"anywhere": f"%{_like(q)}%", "start": f"{_like(q)}%", "whole": _like(q)}[how]
    return f"{v} LIKE ? ESCAPE '\\'", pattern


def _rank(value: str, q: str) -> tuple[str, list[Any]]:
    """SQL for the rank of the lower-case ``value`` expression against ``q``, and its
    parameters (computed for the matching rows only)."""
    sql = (
        f"CASE WHEN {value} = ? THEN 0 WHEN starts_with({value}, ?) THEN 1 "
        f"WHEN right({value}, ?) = ? OR (strpos({value}, ?) > 1 AND "
        f"substr({value}, strpos({value}, ?) - 1, 1) IN {_PART_MARKS}) THEN 2 ELSE 3 END"
    )
    return sql, [q, q, len(q), q, q, q]


def _hits(t: Terms, partial_identities: bool, dialect: str) -> tuple[str, list[Any]]:
    """SQL of ``(cid, field, value, rank)`` for each matching id, identity and phone."""
    how = "anywhere" if t.partial else "start"
    rank, params = _rank("lower(p.person_id)", t.text)
    cond, param = _matches(dialect, "p.person_id", t.text, how)
    parts = [
        f"SELECT p.canonical_id AS cid, 'person_id' AS field, p.person_id AS value, {rank} AS rank "
        f"FROM people p WHERE {cond}"
    ]
    params.append(param)
    # (identity types, condition, its parameters, rank, its parameters), one per way of matching
    rules: list[tuple[Sequence[str], str, list[Any], str, list[Any]]] = []
    whole = [k for k in IDENTITY_TYPES if k != "phone"]
    if partial_identities:  # e-mails and CRM ids in part; other identities whole
        cond, param = _matches(dialect, "i.id_value", t.text, how)
        rules.append((PARTIAL_TYPES, cond, [param], *_rank("lower(i.id_value)", t.text)))
        whole = [k for k in whole if k not in PARTIAL_TYPES]
    # whole values, as typed or in lower case (e-mails are stored in lower case)
    rules.append((whole, "i.id_value IN (?, ?)", [t.typed, t.text], "0", []))
    if t.digits:
        d = DIGITS[dialect].format(col="i.id_value")
        if partial_identities:
            digits_how = "anywhere" if len(t.digits) >= MIN_PARTIAL else "start"
            rank, rp = _rank(d, t.digits)
        else:
            digits_how, rank, rp = "whole", "0", []
        cond, param = _matches(dialect, d, t.digits, digits_how, fold=False)
        rules.append((("phone",), cond, [param], rank, rp))
    # a branch per rule: each engine pushes its condition into the scan (PostgreSQL: its index)
    joined = "FROM identities i JOIN people p ON p.person_id = i.person_id WHERE"
    for types, cond, cp, rank, rp in rules:
        parts.append(
            f"SELECT p.canonical_id, i.id_type, i.id_value, {rank} {joined} "
            f"i.id_type IN ({_marks(types)}) AND {cond}"
        )
        params += [*rp, *cp]
    return " UNION ALL ".join(parts), params


def _records(table: str, alias: str) -> str:
    """The members' rows of ``table``, read by the person index. The LIMIT fences the scope's
    conditions off: DuckDB reads by index only when the person is the one filter on the scan,
    and would otherwise push a partner or touch point filter into it and scan every row."""
    return (
        f"SELECT c.cid, {alias}.* FROM members c JOIN {table} {alias} "
        f"ON {alias}.person_id = c.person_id LIMIT {_FENCE}"
    )


def search_people(
    store: Store,
    query: str,
    *,
    limit: int = 50,
    in_scope: tuple[str, str, Sequence[Any]] | None = None,
    partial_identities: bool = True,
) -> PeopleFound:
    """The person groups matching ``query``, best first, at most ``limit`` of them.

    ``in_scope``: SQL conditions on interactions (``i``, with touch point ``t``) and on feedback
    (``f``, with interaction ``i`` and touch point ``t``) and their parameters; a group is found
    only with a record they keep, and only those records are counted. ``partial_identities``:
    whether e-mails, phones and CRM ids may match in part (else every identity whole, phones
    by their digits; ids always may)."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    t = terms(query)
    if not t.text:
        return PeopleFound(query, [], False, limit, False)
    hits, params = _hits(t, partial_identities, store.dialect)
    inter, fb, scope_params = in_scope or ("TRUE", "TRUE", ())
    scoped = in_scope is not None
    # Without a scope the best limit+1 candidates are counted; with one, every candidate is,
    # and those without a record in scope are dropped before the best are taken.
    pick = "" if scoped else f"ORDER BY rank, length(value), cid LIMIT {limit + 1}"
    kept = "WHERE COALESCE(a.n, 0) + COALESCE(s.n, 0) > 0" if scoped else ""
    # feedback's own touch point and partner, else its interaction's: only a scope asks
    said_joins = (
        "LEFT JOIN interactions i ON i.interaction_id = f.interaction_id "
        "LEFT JOIN touchpoints t ON t.key = COALESCE(f.touchpoint, i.touchpoint)"
        if scoped
        else ""
    )
    acted, said = _records("interactions", "i"), _records("feedback", "f")
    sql = f"""
    WITH hits AS ({hits}),
    best AS (
        SELECT cid, field, value, rank, row_number() OVER (
            PARTITION BY cid ORDER BY rank, length(value), field, value) AS k
        FROM hits),
    cand AS (SELECT cid, field, value, rank FROM best WHERE k = 1 {pick}),
    members AS (
        SELECT c.cid, m.person_id FROM cand c JOIN people m ON m.canonical_id = c.cid),
    acts AS (
        SELECT i.cid, count(*) AS n, max(i.occurred_at) AS last_at FROM ({acted}) i
        LEFT JOIN touchpoints t ON t.key = i.touchpoint WHERE {inter} GROUP BY i.cid),
    said AS (
        SELECT f.cid, count(*) AS n, max(f.occurred_at) AS last_at FROM ({said}) f {said_joins}
        WHERE {fb} GROUP BY f.cid),
    found AS (
        SELECT c.cid, c.field, c.value, c.rank, COALESCE(a.n, 0) AS n_i,
            COALESCE(s.n, 0) AS n_f,
            CASE WHEN a.last_at IS NULL THEN s.last_at WHEN s.last_at IS NULL THEN a.last_at
                 WHEN a.last_at > s.last_at THEN a.last_at ELSE s.last_at END AS last_at
        FROM cand c LEFT JOIN acts a ON a.cid = c.cid LEFT JOIN said s ON s.cid = c.cid {kept}
        ORDER BY c.rank, length(c.value), c.cid LIMIT {limit + 1}),
    ids AS (
        SELECT c.cid,
            min(CASE WHEN x.id_type = 'email' THEN x.id_value END) AS email,
            min(CASE WHEN x.id_type = 'phone' THEN x.id_value END) AS phone
        FROM found c JOIN people m ON m.canonical_id = c.cid
        JOIN identities x ON x.person_id = m.person_id GROUP BY c.cid)
    SELECT c.cid, p.kind, p.segment, p.region, c.field, c.value, c.rank,
        CASE WHEN c.field = 'email' THEN c.value ELSE ids.email END,
        CASE WHEN c.field = 'phone' THEN c.value ELSE ids.phone END,
        c.last_at, c.n_i, c.n_f
    FROM found c JOIN people p ON p.person_id = c.cid LEFT JOIN ids ON ids.cid = c.cid
    ORDER BY c.rank, length(c.value), c.cid
    """
    args = [*params, *scope_params, *scope_params]
    duck = store.dialect == "duckdb"
    with store.transaction() as tx:
        if duck:
            tx.execute(f"SET dynamic_or_filter_threshold = {_JOIN_KEYS}")
        else:  # psycopg prepares a statement run five times; PostgreSQL's generic plan for it
            # cannot see the patterns, so it would scan instead of asking the trigram indexes
            tx.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        try:
            rows = tx.fetchall(sql, args)
        finally:
            if duck:
                tx.execute("RESET dynamic_or_filter_threshold")
    people = [
        PersonMatch(
            person_id=str(cid),
            kind=str(kind),
            segment=segment,
            region=region,
            matched=str(field),
            matched_value=str(value),
            rank=int(rank),
            email=email,
            phone=phone,
            last_activity=last if isinstance(last, datetime) else None,
            interactions=int(n_i),
            feedback=int(n_f),
        )
        for cid, kind, segment, region, field, value, rank, email, phone, last, n_i, n_f in rows
    ]
    return PeopleFound(query, people[:limit], len(people) > limit, limit, t.partial)
