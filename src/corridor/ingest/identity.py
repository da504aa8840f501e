"""Identity resolution: records that share an email, phone, device_id or crm_id are one person.

Each person keeps the id its sender gave; ``people.canonical_id`` says which person it now
belongs to. When a record links two persons (it names one and carries an identity the other
owns, or two records in one batch share a new identity) the two histories are merged: the
person seen first survives, the other's ``canonical_id`` points to it, and the merge is written
to ``person_merges`` with the identity and record that caused it. Nothing is rewritten, so a merge
is visible and every original id still finds its records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from corridor.domain.contract import IDENTITY_TYPES, RecordKind
from corridor.store.base import Tx

#: identity types in the order they are trusted to name a person
PRIORITY = IDENTITY_TYPES


@dataclass(frozen=True)
class Merge:
    from_person: str
    into_person: str
    id_type: str | None
    id_value: str | None
    record_kind: str
    record_id: str | None

    @property
    def merge_id(self) -> str:
        return hashlib.sha1(f"{self.from_person}\x00{self.into_person}".encode()).hexdigest()[:20]


@dataclass
class Resolution:
    """Person ids filled in for anonymous rows, identities new to the store, merges to apply."""

    person_ids: pa.Array
    new_identities: list[tuple[str, str, str]] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)


def derived_person_id(id_type: str, id_value: str) -> str:
    """The id given to a person first seen only through an identity: stable, so retries agree."""
    return "anon-" + hashlib.sha1(f"{id_type}:{id_value}".encode()).hexdigest()[:16]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def resolve(tx: Tx, kind: RecordKind, valid: pa.Table) -> Resolution:
    """Work out who every row of ``valid`` is; reads the store, writes nothing."""
    persons = valid.column("person_id")
    id_fields = [f.name for f in kind.identity_fields if f.name in valid.schema.names]
    has_ids = [f for f in id_fields if valid.column(f).null_count < valid.num_rows]
    if not has_ids:
        return Resolution(persons)

    # One row per (record, identity) actually present.
    rows: list[tuple[int, str, str]] = []
    for f in sorted(has_ids, key=PRIORITY.index):
        col = valid.column(f)
        idx = pc.indices_nonzero(pc.is_valid(col)).to_pylist()
        vals = col.take(idx).to_pylist()
        rows.extend((i, f, v) for i, v in zip(idx, vals, strict=True))
    keys = sorted({(t, v) for _, t, v in rows})
    pid = persons.to_pylist()
    ids = valid.column(kind.id_field).to_pylist()

    tx.stage(
        "_id_keys", pa.table({"id_type": [k[0] for k in keys], "id_value": [k[1] for k in keys]})
    )
    owners = {
        (t, v): c
        for t, v, c in tx.fetchall(
            "SELECT k.id_type, k.id_value, p.canonical_id FROM _id_keys k "
            "JOIN identities i ON i.id_type = k.id_type AND i.id_value = k.id_value "
            "JOIN people p ON p.person_id = i.person_id"
        )
    }

    # Rows without a person id take the owner of their most trusted identity, or a derived id.
    by_row: dict[int, list[tuple[str, str]]] = {}
    for i, t, v in rows:
        by_row.setdefault(i, []).append((t, v))
    for i, idents in by_row.items():
        if pid[i] is None:
            owned = [owners[k] for k in idents if k in owners]
            pid[i] = owned[0] if owned else derived_person_id(*idents[0])

    involved = sorted({pid[i] for i in by_row})
    # Look up the batch's persons and the identities' owners: both may have to give way.
    lookup = sorted(set(involved) | set(owners.values()))
    tx.stage("_id_persons", pa.table({"person_id": pa.array(lookup, pa.string())}))
    known = {
        p: (c, seen)
        for p, c, seen in tx.fetchall(
            "SELECT p.person_id, p.canonical_id, p.first_seen_at FROM _id_persons x "
            "JOIN people p ON p.person_id = x.person_id"
        )
    }
    canon = {p: known[p][0] if p in known else p for p in involved}
    never = datetime.max.replace(tzinfo=UTC)
    first_seen: dict[str, datetime] = {}
    for c, seen in known.values():
        first_seen[c] = min(first_seen.get(c, never), _aware(seen) or never)

    uf = _UnionFind()
    link: dict[tuple[str, str], tuple[str, str, int]] = {}
    claimed: dict[tuple[str, str], str] = dict(owners)
    new_identities: dict[tuple[str, str], str] = {}
    for i, t, v in rows:
        me = canon[pid[i]]
        other = claimed.get((t, v))
        if other is None:
            claimed[(t, v)] = me
            new_identities[(t, v)] = pid[i]
        elif uf.find(other) != uf.find(me):
            uf.union(other, me)
            a, b = sorted((other, me))
            link[(a, b)] = (t, v, i)

    merges: list[Merge] = []
    if link:
        groups: dict[str, list[str]] = {}
        for c in {c for pair in link for c in pair}:
            groups.setdefault(uf.find(c), []).append(c)
        for members in groups.values():
            winner = min(members, key=lambda c: (first_seen.get(c, never), c))
            for loser in sorted(set(members) - {winner}):
                t, v, i = _via(link, loser, members)
                merges.append(Merge(loser, winner, t, v, kind.name, ids[i]))
    return Resolution(
        pa.array(pid, pa.string()),
        [(t, v, p) for (t, v), p in new_identities.items()],
        merges,
    )


def _aware(ts: datetime | None) -> datetime | None:
    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts


def _via(
    link: dict[tuple[str, str], tuple[str, str, int]], loser: str, members: list[str]
) -> tuple[str, str, int]:
    """The identity and record that tied ``loser`` to its group (the first one found)."""
    for (a, b), how in sorted(link.items()):
        if loser in (a, b):
            return how
    raise AssertionError(f"no link for {loser} in {members}")


def apply(tx: Tx, res: Resolution, now: datetime) -> None:
    """Write new identities and merges (people rows must exist already)."""
    if res.new_identities:
        tx.stage(
            "_new_ids",
            pa.table(
                {
                    "id_type": [x[0] for x in res.new_identities],
                    "id_value": [x[1] for x in res.new_identities],
                    "person_id": [x[2] for x in res.new_identities],
                    "first_seen_at": pa.array(
                        [now] * len(res.new_identities), pa.timestamp("us", tz="UTC")
                    ),
                }
            ),
        )
        tx.insert(
            "identities",
            "_new_ids",
            ["id_type", "id_value", "person_id", "first_seen_at"],
            key=["id_type", "id_value"],
        )
    for m in res.merges:
        tx.execute(
            "UPDATE people SET canonical_id = ?, merged_at = ? WHERE canonical_id = ?",
            (m.into_person, now, m.from_person),
        )
        tx.execute(
            "INSERT INTO person_merges (merge_id, from_person, into_person, id_type, id_value, "
            "merged_at, record_kind, record_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (merge_id) DO NOTHING",
            (
                m.merge_id,
                m.from_person,
                m.into_person,
                m.id_type,
                m.id_value,
                now,
                m.record_kind,
                m.record_id,
            ),
        )
