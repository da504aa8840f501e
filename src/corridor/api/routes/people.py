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


def person_view(store: Store, person_id: str) -> PersonView | None:
    rows = store.query(
        "SELECT person_id, kind, segment, region, created_at, first_seen_at, attributes, "
        "canonical_id FROM people WHERE person_id = ?",
        (person_id,),
    )
    if not rows:
        return None
    pid, kind, segment, region, created, first_seen, attrs, canonical = rows[0]
    canonical = canonical or pid
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
    counts = store.query(
        f"SELECT (SELECT count(*) FROM interactions WHERE person_id IN ({_GROUP})), "
        f"(SELECT count(*) FROM feedback WHERE person_id IN ({_GROUP}))",
        (canonical, canonical),
    )[0]
    return PersonView(
        person=PersonOut(
            person_id=pid,
            kind=kind,
            segment=segment,
            region=region,
            created_at=_ts(created),
            first_seen_at=_ts(first_seen),
            attributes=_json(attrs),
        ),
        canonical_id=canonical,
        merged=canonical != pid,
        members=members,
        identities=[
            IdentityOut(id_type=t, id_value=v, person_id=p, first_seen_at=_ts(s))
            for t, v, p, s in identities
        ],
        merges=[
            PersonMergeOut(
                from_person=f,
                into_person=i,
                id_type=t,
                id_value=v,
                merged_at=_ts(at),
                record_kind=rk,
                record_id=rid,
            )
            for f, i, t, v, at, rk, rid in merges
        ],
        interactions=int(counts[0]),
        feedback=int(counts[1]),
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
    and record that caused each) and the group's interaction and feedback counts."""
    view = person_view(store, person_id)
    if view is None:
        raise HTTPException(
            404,
            f"no person with id {person_id!r}; person ids are the senders' person_id values "
            "(from people, interactions or feedback records). A person first seen only "
            "through an identity has an id starting with 'anon-'",
        )
    return view
