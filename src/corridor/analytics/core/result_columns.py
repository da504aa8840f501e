"""Result columns of an analysis (:class:`Column`: name, JSON type, meaning), declared
compactly: :func:`columns` from a spec of names, :func:`described` from one line per column,
``name±`` for a number and the two ends of its interval; a column's meaning is read from its
name where the name says it (intervals, p-values, changes, means, shares)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["number", "integer", "string", "boolean", "datetime", "object", "array"]


@dataclass(frozen=True)
class Column:
    """A result column: name, JSON type and meaning."""

    name: str
    type: ColumnType = "number"
    help: str = ""


_TYPE_NAMES: dict[str, ColumnType] = {
    "num": "number", "int": "integer", "str": "string", "bool": "boolean", "time": "datetime",
    "obj": "object", "list": "array",
}  # fmt: skip


_GLOSSARY = {
    "n": "records the row rests on",
    "prev_n": "records in the previous period",
    "rank": "rank (1 = first)",
    "correlation": "Pearson correlation",
    "statistic": "test statistic",
    "p_value": "p-value",
}
_PREFIXES = (
    ("p_value_", "p-value of the change in {} (against the previous period or the other side)"),
    ("delta_", "difference in {} (against the previous period or the other side)"),
    ("mean_", "mean {}"),
    ("sd_", "standard deviation of {}"),
    ("se_", "standard error of the mean {}"),
    ("share_", "share {}"),
    ("n_", "records: {}"),
)


def _column_help(name: str) -> str:
    """A column's meaning read from its name (intervals, p-values, changes, means, shares)."""
    for suffix, text in (("_low", "lower bound of the interval of "), ("_high", "upper bound "
                         "of the interval of ")):  # fmt: skip
        if name.endswith(suffix):
            return text + name.removesuffix(suffix)
    if name in _GLOSSARY:
        return _GLOSSARY[name]
    for prefix, text in _PREFIXES:
        if name.startswith(prefix):
            return text.format(name.removeprefix(prefix).replace("_", " "))
    if name.endswith("_n"):
        return "records with " + name.removesuffix("_n").replace("_", " ")
    return ""


def with_intervals(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` with each ``name±`` written out as ``name``, ``name_low`` and ``name_high``
    (a number and the two ends of its interval)."""
    out: list[str] = []
    for name in names:
        if name.endswith("±"):
            name = name.removesuffix("±")
            out.extend((name, f"{name}_low", f"{name}_high"))
        else:
            out.append(name)
    return tuple(out)


def columns(spec: str, **help: str) -> tuple[Column, ...]:
    """Result columns from a compact spec: whitespace-separated ``name[:type]`` (type one of
    num — the default —, int, str, bool, time, obj, list) or ``name±`` (a number and the two
    ends of its interval, as in :func:`with_intervals`); ``help`` gives a column its meaning
    (intervals, p-values and changes are described from their names)."""
    out = []
    for item in with_intervals(spec.split()):
        name, _, kind = item.partition(":")
        out.append(Column(name, _TYPE_NAMES[kind or "num"], help.get(name) or _column_help(name)))
    return tuple(out)


def interval_columns(name: str, help: str) -> tuple[Column, ...]:
    """A number column and the two ends of its interval, ``<name>_low`` and ``<name>_high``."""
    return (
        Column(name, "number", help),
        Column(f"{name}_low", "number", "lower end of its interval"),
        Column(f"{name}_high", "number", "upper end of its interval"),
    )


def described(*lines: str) -> tuple[Column, ...]:
    """Result columns with their meanings, one line each: ``"name[:type][±] meaning"`` (type
    as in :func:`columns`, num by default); ``±`` adds the interval's two ends,
    ``<name>_low`` and ``<name>_high``."""
    out: list[Column] = []
    for line in lines:
        head, _, meaning = line.strip().partition(" ")
        name, _, kind = head.partition(":")
        interval = (kind or name).endswith("±")
        name, kind = name.rstrip("±"), kind.rstrip("±")
        if interval:
            out.extend(interval_columns(name, meaning.strip()))
        else:
            out.append(Column(name, _TYPE_NAMES[kind or "num"], meaning.strip()))
    return tuple(out)


__all__ = [
    "Column",
    "ColumnType",
    "columns",
    "described",
    "interval_columns",
    "with_intervals",
]
