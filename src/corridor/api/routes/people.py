"""``GET /api/v1/people/{person_id}``: a person, the canonical person it resolves to, and the
whole merged group, so an identity merge is visible, never silent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException

from corridor.api.deps import ScopeDep, StoreDep
from corridor.api.errors import error_responses
from corridor.api.schemas import IdentityOut, PersonMergeOut, PersonOut, PersonView
from corridor.auth.scope import Scope
from corridor.store import Store

router = APIRouter(prefix="/api/v1", tags=["people"])

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


@router.get(
    "/people/{person_id}",
    operation_id="get_person",
    summary="A person and its merged group",
    response_model=PersonView,
    responses=error_responses(401, 404),
)
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
