"""The records and the corridor map: the data contract."""

from corridor.domain.contract import KINDS, Field, FieldType, RecordKind, get_kind
from corridor.domain.corridor_map import CorridorMap, Promise, Touchpoint

__all__ = [
    "KINDS",
    "CorridorMap",
    "Field",
    "FieldType",
    "Promise",
    "RecordKind",
    "Touchpoint",
    "get_kind",
]
