"""One row per stored person, with the person every record of theirs counts towards.

Identity resolution may merge two person records (``people.canonical_id`` points at the one that
survives); person-level analytics (drivers, journeys, wallet) count records by that canonical
person, so a customer who first came as a prospect under another id is one customer.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from corridor.analytics.core.dimensions import Source, get_table


def persons(source: Source) -> ir.Table:
    """``person_id`` → ``person`` (canonical id), ``kind``, ``segment``, ``region``."""
    pe = get_table(source, "people")
    return pe.select(
        _p_id=pe.person_id,
        person=ibis.coalesce(pe.canonical_id, pe.person_id),
        kind=pe.kind,
    )


def canonical(table: ir.Table, source: Source, column: str = "person_id") -> ir.Table:
    """``table`` with a ``person`` column: the canonical person of ``table[column]`` (the id
    itself when the people table does not know it). Rows without a person are dropped."""
    pe = persons(source).select("_p_id", _p_person="person")
    joined = table.filter(table[column].notnull()).left_join(pe, table[column] == pe._p_id)
    return joined.mutate(person=ibis.coalesce(joined._p_person, joined[column])).drop(
        "_p_id", "_p_person"
    )


__all__ = ["canonical", "persons"]
