"""``GET /api/v1/people?q=``: finding people by part of an id, e-mail or phone; and
``GET /api/v1/people/{person_id}``: a person, the canonical person it resolves to, and the whole
merged group, so an identity merge is visible, never silent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query

from corridor.api.declare import RouteDeclarer
from corridor.api.deps import ScopeDep, StoreDep
from corridor.api.schemas import (
    IdentityOut,
    PeopleFound,
    PersonFound,
    PersonMergeOut,
    PersonOut,
    PersonView,
)
from corridor.auth.scope import Scope
from corridor.domain.contract import MAX_ID_LENGTH
from corridor.store import Store
from corridor.store import people_search as ps

router = APIRouter(prefix="/api/v1", tags=["people"])
#: every route documents 401; the search refuses a query parameter it does not take (422)
_route = RouteDeclarer(router, (401,), refuse_query="none")

_GROUP = "SELECT person_id FROM people WHERE canonical_id = ?"


def _json(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes):
        value = orjson.loads(value)
    return value if isinstance(value, dict) else {"value": value}


def _ts(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def records_in_scope(scope: Scope | None) -> tuple[str, str, list[str]]:
    """SQL conditions (interactions ``i`` joined to their touch point ``t``; feedback ``f``
    joined to its interaction ``i`` and touch point ``t``) keeping the records ``scope`` sees,
    and their parameters."""
    if scope is None or scope.sees_every_customer:
        return "TRUE", "TRUE", []
    inter: list[str] = []
    fb: list[str] = []
    params: list[str] = []
    if scope.departments is not None:
        marks = ", ".join("?" * len(scope.departments))
        inter.append(f"t.department IN ({marks})")
        fb.append(f"t.department IN ({marks})")
        params.extend(sorted(scope.departments))
    if scope.partners is not None:
        marks = ", ".join("?" * len(scope.partners))
        inter.append(f"i.partner_id IN ({marks})")
        fb.append(f"COALESCE(f.partner_id, i.partner_id) IN ({marks})")
        params.extend(sorted(scope.partners))
    return " AND ".join(inter), " AND ".join(fb), params


def _scoped_counts(store: Store, canonical: str, scope: Scope | None) -> tuple[int, int]:
    """The group's interactions and feedback records that ``scope`` sees."""
    inter, fb, params = records_in_scope(scope)
    row = store.query(
        "SELECT (SELECT count(*) FROM interactions i LEFT JOIN touchpoints t "
        f"ON t.key = i.touchpoint WHERE i.person_id IN ({_GROUP}) AND {inter}), "
        "(SELECT count(*) FROM feedback f LEFT JOIN interactions i "
        "ON i.interaction_id = f.interaction_id LEFT JOIN touchpoints t "
        f"ON t.key = COALESCE(f.touchpoint, i.touchpoint) WHERE f.person_id IN ({_GROUP}) "
        f"AND {fb})",
        (canonical, *params, canonical, *params),
    )[0]
    return int(row[0]), int(row[1])


def sees_person(store: Store, canonical: str, scope: Scope) -> bool:
    """Whether ``scope`` may find the person group ``canonical`` at all."""
    return scope.sees_every_customer or sum(_scoped_counts(store, canonical, scope)) > 0


def find_people(store: Store, query: str, scope: Scope, limit: int = 50) -> PeopleFound:
    """The people matching ``query`` that ``scope`` may find, best first (see
    :mod:`corridor.store.people_search`), their identities as ``scope`` may see them.

    A department head or partner manager finds only people with a record in their scope, with
    the counts and last activity of those records; and since they see identities masked, their
    e-mails, phones and CRM ids match whole only (a part matched would spell out, one query at
    a time, what the mask hides); ids match in part for everyone."""
    whole = scope.sees_every_customer
    found = ps.search_people(
        store,
        query,
        limit=limit,
        in_scope=None if whole else records_in_scope(scope),
        partial_identities=whole,
    )
    shown = scope.shown_identity
    return PeopleFound(
        query=found.query,
        people=[
            PersonFound(
                person_id=p.person_id,
                kind=p.kind,
                segment=p.segment,
                region=p.region,
                matched=p.matched,  # type: ignore[arg-type]
                matched_value=(
                    p.matched_value
                    if p.matched == "person_id"
                    else shown(p.matched, p.matched_value)
                ),
                match=ps.RANK_NAMES[p.rank],  # type: ignore[arg-type]
                email=shown("email", p.email) if p.email else None,
                phone=shown("phone", p.phone) if p.phone else None,
                last_activity=p.last_activity,
                interactions=p.interactions,
                feedback=p.feedback,
            )
            for p in found.people
        ],
        more=found.more,
        limit=found.limit,
        partial=found.partial,
    )


def person_view(store: Store, person_id: str, scope: Scope | None = None) -> PersonView | None:
    """The person and its merged group as ``scope`` may see them (``None``: everything);
    ``None`` when there is no such person, or none the scope may see (see
    :mod:`corridor.auth.scope`: the two cases read alike)."""
    rows = store.query(
        "SELECT person_id, kind, segment, region, created_at, first_seen_at, attributes, "
        "canonical_id FROM people WHERE person_id = ?",
        (person_id,),
    )
    if not rows:
        return None
    pid, kind, segment, region, created, first_seen, attrs, canonical = rows[0]
    canonical = canonical or pid
    n_interactions, n_feedback = _scoped_counts(store, canonical, scope)
    whole = scope is None or scope.sees_every_customer
    if not whole and n_interactions + n_feedback == 0:
        return None
    shown = (lambda t, v: v) if scope is None else scope.shown_identity
    members = [r[0] for r in store.query(f"{_GROUP} ORDER BY person_id", (canonical,))]
    identities = store.query(
        "SELECT i.id_type, i.id_value, i.person_id, i.first_seen_at FROM identities i "
        f"WHERE i.person_id IN ({_GROUP}) ORDER BY i.id_type, i.id_value",
        (canonical,),
    )
    merges = store.query(
        "SELECT from_person, into_person, id_type, id_value, merged_at, record_kind, record_id "
        f"FROM person_merges WHERE from_person IN ({_GROUP}) OR into_person IN ({_GROUP}) "
        "ORDER BY merged_at, from_person",
        (canonical, canonical),
    )
    return PersonView(
        person=PersonOut(
            person_id=pid,
            kind=kind,
            segment=segment,
            region=region,
            created_at=_ts(created),
            first_seen_at=_ts(first_seen),
            attributes=_json(attrs) if whole else None,
        ),
        canonical_id=canonical,
        merged=canonical != pid,
        members=members,
        identities=[
            IdentityOut(id_type=t, id_value=shown(t, v), person_id=p, first_seen_at=_ts(s))
            for t, v, p, s in identities
        ],
        merges=[
            PersonMergeOut(
                from_person=f,
                into_person=i,
                id_type=t,
                id_value=shown(t, v) if v is not None else None,
                merged_at=_ts(at),
                record_kind=rk,
                record_id=rid,
            )
            for f, i, t, v, at, rk, rid in merges
        ],
        interactions=n_interactions,
        feedback=n_feedback,
    )


@_route(
    "GET",
    "/people",
    "Find people by part of an id, e-mail or phone",
    PeopleFound,
    query=("q", "limit"),
    refuses=True,
)
def search_people(
    store: StoreDep,
    scope: ScopeDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_ID_LENGTH,
            description="what to look for: a person id or part of it (576 finds c-000576), an "
            "e-mail or part of it (lopez finds maria.lopez@example.com; any capitalisation), a "
            "phone in any formatting or its last digits (+1 (555) 123-4567, 555-123, 4567). "
            f"Under {ps.MIN_PARTIAL} characters: whole values and starts only",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=ps.MAX_LIMIT, description="most people returned")] = 50,
) -> PeopleFound:
    """People whose id, e-mail, phone or CRM id matches `q` (a device id matches whole), one
    row per person group (merged people together), ranked: the whole value first, then its
    start, then its end or the start of a part of it (a phone's last digits, the surname of an
    e-mail), then anywhere; each with its last activity and its numbers of interactions and
    feedback. `more` says there were more than `limit`. A department head or partner manager
    finds only people with a record in their scope, sees the counts of those records and masked
    identities, and finds e-mails, phones and CRM ids by their whole value only (see the scope
    rules in the API guide)."""
    return find_people(store, q, scope, limit)


@_route("GET", "/people/{person_id}", "A person and its merged group", PersonView, 404)
def get_person(person_id: str, store: StoreDep, scope: ScopeDep) -> PersonView:
    """The person as stored, the canonical person its history is merged into, every person
    in the same group, their identities, the merges that formed the group (with the identity
    and record that caused each) and the group's interaction and feedback counts. A department
    head or partner manager finds only people with a record in their scope, sees the counts of
    those records and masked identities (see the scope rules in the API guide)."""
    view = person_view(store, person_id, scope)
    if view is None:
        raise not_found(person_id, scope)
    return view


def not_found(person_id: str, scope: Scope) -> HTTPException:
    """The one 404 for a person that does not exist or that ``scope`` may not see."""
    where = "" if scope.sees_every_customer else f" within your scope ({scope.principal.label})"
    return HTTPException(
        404,
        f"no person with id {person_id!r}{where}; person ids are the senders' person_id values "
        "(from people, interactions or feedback records). A person first seen only through an "
        "identity has an id starting with 'anon-'",
    )
