"""The small result object every analytics function returns: a frame plus its metadata."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self

import numpy as np
import pandas as pd
import pyarrow as pa

from corridor.analytics.core.dimensions import Query, QueryArgs, Source, check_confidence


def _plain(value: Any) -> Any:
    """A JSON-friendly Python value: ``None`` for every kind of missing, ``datetime`` for
    timestamps, ``int``/``float``/``str``/``bool`` for numpy scalars."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as a list of dicts: missing values and NaN are ``None``, timestamps are tz-aware
    ``datetime``, numbers plain ``int``/``float``."""
    cols = [str(c) for c in frame.columns]
    return [
        {c: _plain(v) for c, v in zip(cols, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def put_interval(
    frame: Any,
    name: str,
    value: Any,
    low: Any,
    high: Any,
    *,
    p_value: tuple[str, Any] | None = None,
) -> None:
    """Write an estimate and its interval into ``frame`` (a DataFrame or a row dict) as the
    columns ``name``, ``name_low``, ``name_high`` — and, given ``p_value=(column, values)``, its
    p-value — in that order, the layout of every result frame."""
    frame[name] = value
    frame[f"{name}_low"] = low
    frame[f"{name}_high"] = high
    if p_value is not None:
        frame[p_value[0]] = p_value[1]


@dataclass(frozen=True, eq=False)
class AnalyticsResult:
    """A result frame with what a reader needs to trust it.

    ``frame`` has one row per group (and period); ``n`` is the number of feedback records the
    result rests on; ``confidence`` the two-sided level of every interval in the frame;
    ``method`` says how the numbers were computed; ``query`` echoes the request (groupings,
    period, filters, time range).
    """

    frame: pd.DataFrame
    n: int
    confidence: float
    method: str
    query: dict[str, Any] = field(default_factory=dict)
    #: metadata added on the way to the reader (e.g. ``reasons_withheld`` for a scoped role,
    #: or the declared extras of a result read back over HTTP)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_sums(
        cls,
        frame: pd.DataFrame,
        sums: pd.DataFrame,
        confidence: float,
        method: str,
        query: dict[str, Any],
        **more: Any,
    ) -> Self:
        """The result ``frame`` summarised from the engine's ``sums``: ``n`` is the total of
        their ``n`` column, the records summed."""
        n = int(sums["n"].sum())
        return cls(frame=frame, n=n, confidence=confidence, method=method, query=query, **more)

    @classmethod
    def per_group(
        cls,
        source: Source,
        confidence: float,
        args: QueryArgs,
        sums_of: Callable[[Source, Query], pd.DataFrame],
        summarise: Callable[[pd.DataFrame, Sequence[str], str | None, float], pd.DataFrame],
        method: str,
    ) -> Self:
        """The result of a query's keyword ``args``: the engine's ``sums_of`` the query, then
        ``summarise`` (a pure function of those sums, the groupings, the period and the level)
        gives the frame, one row per group (and period)."""
        conf = check_confidence(confidence)
        query = Query.of(args)
        sums = sums_of(source, query)
        frame = summarise(sums, query.by, query.period, conf)
        return cls.from_sums(frame, sums, conf, method, query.describe())

    def metadata(self) -> dict[str, Any]:
        """Everything but the frame, JSON-friendly."""
        return {
            "kind": type(self).__name__,
            "n": int(self.n),
            "confidence": float(self.confidence),
            "method": self.method,
            "query": self.query,
            **self.extra,
        }

    def to_pandas(self) -> pd.DataFrame:
        """The result frame (a copy)."""
        return self.frame.copy()

    def summary(self) -> str:
        """A few lines a person reads: what, on how many records, how, and the first rows."""
        head = self.frame.head(10)
        lines = [
            f"{type(self).__name__}: {len(self.frame)} rows from n = {self.n:,} records, "
            f"{self.confidence:.0%} intervals",
            f"method: {self.method}",
        ]
        if not head.empty:
            lines.append(head.to_string(index=False, max_colwidth=30))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Notebooks show the metadata line and the frame as a table."""
        from html import escape

        caption = escape(
            f"n = {self.n:,} · {self.confidence:.0%} intervals · {self.method}", quote=False
        )
        table = self.frame.head(50).to_html(index=False, na_rep="–", float_format="{:.4g}".format)
        more = (
            f"<p>{len(self.frame) - 50} more rows: .frame holds all</p>"
            if len(self.frame) > 50
            else ""
        )
        return f"<div><p><b>{escape(type(self).__name__)}</b> — {caption}</p>{table}{more}</div>"

    def to_records(self) -> list[dict[str, Any]]:
        """The frame as a list of dicts (see :func:`frame_records`)."""
        return frame_records(self.frame)

    def to_arrow(self) -> pa.Table:
        """The frame as an Arrow table; :meth:`metadata` travels as JSON in the schema metadata
        under the key ``corridor``."""
        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        meta = {b"corridor": json.dumps(self.metadata(), default=_json_default).encode()}
        return table.replace_schema_metadata(meta)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={self.n}, rows={len(self.frame)}, "
            f"confidence={self.confidence}, method={self.method!r})"
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


__all__ = ["AnalyticsResult", "frame_records", "put_interval"]
