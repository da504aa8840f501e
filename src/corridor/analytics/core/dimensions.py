"""What feedback analytics can be grouped and filtered by, and where each dimension lives.

Gap and metric analytics read one row per ``feedback`` record. Its dimensions come from the
feedback row itself or from the rows it points at, joined only when a query needs them
(every join is a LEFT JOIN on a primary key, so it never adds or drops feedback rows):

============ ============================================================================
dimension    column
============ ============================================================================
touchpoint   ``feedback.touchpoint``, else the touch point of ``feedback.interaction_id``
stage        ``touchpoints.stage`` of that touch point (the corridor map)
department   ``touchpoints.department`` of that touch point
channel      ``interactions.channel`` of ``feedback.interaction_id``
partner      ``feedback.partner_id``, else the interaction's ``partner_id``
agent        ``interactions.agent_id`` of ``feedback.interaction_id``
segment      ``people.segment`` of the person row ``feedback.person_id`` names
region       ``people.region`` of that person row
source       ``feedback.source`` (survey, review, social, transcript, field_note)
============ ============================================================================

A dimension the record does not have (anonymous feedback, no interaction) is missing (null)
and forms its own group; a filter value of ``None`` selects it. Segment and region are those of
the person row the feedback names, whether or not that person was later merged into another.

Periods bucket ``feedback.occurred_at`` (when the feedback was given) into calendar days,
ISO weeks (Monday to Sunday), months or quarters in UTC; both engines' Ibis connections run
in UTC, so the buckets agree. ``since`` is inclusive and ``until`` exclusive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, TypedDict

import ibis
import ibis.expr.types as ir
import pandas as pd

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.periods import as_utc


@dataclass(frozen=True)
class Dimension:
    """A grouping and filter dimension of feedback analytics."""

    name: str
    description: str
    #: tables joined to ``feedback`` to reach it, in join order
    joins: tuple[str, ...] = ()


DIMENSIONS: dict[str, Dimension] = {
    d.name: d
    for d in (
        Dimension(
            "touchpoint",
            "touch point key: the feedback's own, else its interaction's",
            ("interactions",),
        ),
        Dimension("stage", "corridor stage of the touch point", ("interactions", "touchpoints")),
        Dimension(
            "department", "department owning the touch point", ("interactions", "touchpoints")
        ),
        Dimension("channel", "channel of the interaction the feedback is about", ("interactions",)),
        Dimension(
            "partner", "partner_id: the feedback's own, else its interaction's", ("interactions",)
        ),
        Dimension("agent", "agent_id of the interaction", ("interactions",)),
        Dimension("segment", "segment of the person who gave the feedback", ("people",)),
        Dimension("region", "region of the person who gave the feedback", ("people",)),
        Dimension("source", "feedback source: survey, review, social, transcript, field_note"),
    )
}

#: period name -> Ibis truncation unit
PERIODS: dict[str, str] = {"day": "D", "week": "W", "month": "M", "quarter": "Q"}

#: the numeric feedback fields carried by :func:`feedback_facts`, cast to float64
MEASURES: tuple[str, ...] = ("expectation", "experience", "nps", "csat", "ces")

#: a filter value: a label, or None for "missing"
FilterValue = str | None
Filters = Mapping[str, Sequence[FilterValue] | FilterValue]
TimeLike = datetime | date | str | None
# the times an analysis accepts for since/until (see check_time)
EARLIEST = datetime(1700, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class TableSource(Protocol):
    """Anything that hands out Ibis tables by name, e.g. a :class:`corridor.store.Store`."""

    def table(self, name: str) -> Any: ...


#: a Store, or a mapping from table name to Ibis table (e.g. ``ibis.memtable`` in tests)
Source = TableSource | Mapping[str, Any]


def get_table(source: Source, name: str) -> ir.Table:
    """Table ``name`` from a store or a mapping of Ibis tables."""
    if isinstance(source, Mapping):
        try:
            return source[name]
        except KeyError:
            raise AnalyticsQueryError(
                f"table {name!r} is needed but was not given; given: {', '.join(source)}"
            ) from None
    return source.table(name)


def _allowed(values: Iterable[str]) -> str:
    return ", ".join(values)


def check_dimension(name: object, what: str = "grouping") -> str:
    if not isinstance(name, str) or name not in DIMENSIONS:
        raise AnalyticsQueryError(f"unknown {what} {name!r}; allowed: {_allowed(DIMENSIONS)}")
    return name


def check_by(by: Sequence[str] | str | None) -> tuple[str, ...]:
    """The grouping dimensions, validated; a single name may be given as a string."""
    if by is None:
        return ()
    names = (by,) if isinstance(by, str) else tuple(by)
    for n in names:
        check_dimension(n)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise AnalyticsQueryError(f"grouping names {', '.join(dup)} more than once")
    return names


def check_period(period: str | None) -> str | None:
    if period is None:
        return None
    if period not in PERIODS:
        raise AnalyticsQueryError(
            f"unknown period {period!r}; allowed: {_allowed(PERIODS)} (or none)"
        )
    return period


def check_filters(filters: Filters | None) -> dict[str, tuple[FilterValue, ...]]:
    """``{dimension: values}`` validated; a single value may be given instead of a list."""
    out: dict[str, tuple[FilterValue, ...]] = {}
    for name, values in (filters or {}).items():
        check_dimension(name, "filter")
        vals: tuple[Any, ...] = (
            (values,) if values is None or isinstance(values, str) else tuple(values)
        )
        if not vals:
            raise AnalyticsQueryError(
                f"filter {name!r} has no values; give at least one, or leave the filter out"
            )
        bad = [v for v in vals if v is not None and not isinstance(v, str)]
        if bad:
            raise AnalyticsQueryError(
                f"filter {name!r} values must be strings (or None for missing), got {bad[:5]!r}"
            )
        if any(v is not None and "\x00" in v for v in vals):
            # PostgreSQL text cannot hold NUL (the literal ended early: a 500); no key can
            raise AnalyticsQueryError(f"filter {name!r} values cannot contain a NUL character")
        out[name] = tuple(dict.fromkeys(vals))
    return out


def check_time(value: TimeLike, name: str) -> datetime | None:
    """A tz-aware UTC datetime; a date means its midnight UTC, a naive time is UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise AnalyticsQueryError(
                f"{name}={value!r} is not an ISO-8601 date or time, e.g. 2025-03-01 or "
                "2025-03-01T12:00:00Z"
            ) from None
    if isinstance(value, datetime):
        given = value.date()
        try:  # 0001-01-01T00:00+14:00 is before the first day Python has: an OverflowError
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            value = None
    elif isinstance(value, date):
        given, value = value, datetime(value.year, value.month, value.day, tzinfo=UTC)
    else:
        raise AnalyticsQueryError(f"{name} must be a date, a datetime or an ISO-8601 string")
    if value is None or not EARLIEST <= value < LATEST:
        # pandas' times end in 1677 and 2262; the analyses step months back and forth from here
        raise AnalyticsQueryError(
            f"{name}={given.isoformat()} is out of range: give a time from "
            f"{EARLIEST.date().isoformat()} to before {LATEST.date().isoformat()} (or leave "
            f"{name} out for no bound)"
        )
    return value


def check_range(since: TimeLike, until: TimeLike) -> tuple[datetime | None, datetime | None]:
    """``since`` and ``until`` read by :func:`check_time`; ``since`` must come before ``until``
    when both are given (a range from a later time to an earlier one selects nothing, which a
    reader would take for "no data", not for a slip of the keyboard)."""
    lo, hi = check_time(since, "since"), check_time(until, "until")
    if lo is not None and hi is not None and lo >= hi:
        raise AnalyticsQueryError(
            f"since ({lo.isoformat()}) must be before until ({hi.isoformat()}): swap them, or "
            "leave one out"
        )
    return lo, hi


def check_confidence(confidence: float) -> float:
    try:
        c = float(confidence)
    except (TypeError, ValueError):
        c = float("nan")
    if not 0.5 <= c < 1.0:
        raise AnalyticsQueryError(
            f"confidence must be at least 0.5 and below 1 (e.g. 0.9, 0.95, 0.99), got "
            f"{confidence!r}"
        )
    return c


def check_seed(seed: int) -> int:
    """A random seed: a whole number from 0 to 2**63 - 1 (numpy refuses negative seeds)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise AnalyticsQueryError(f"seed must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    return seed


class QueryArgs(TypedDict, total=False):
    """The common query parameters, as keywords (``**args: Unpack[QueryArgs]``): groupings,
    period, filters and time range, read by :meth:`Query.of`."""

    by: Sequence[str] | str | None
    period: str | None
    filters: Filters | None
    since: TimeLike
    until: TimeLike


@dataclass(frozen=True)
class Query:
    """A validated feedback query: groupings, period, filters and time range."""

    by: tuple[str, ...] = ()
    period: str | None = None
    filters: Mapping[str, tuple[FilterValue, ...]] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def build(
        cls,
        by: Sequence[str] | str | None = None,
        period: str | None = None,
        filters: Filters | None = None,
        since: TimeLike = None,
        until: TimeLike = None,
    ) -> Query:
        return cls(
            check_by(by),
            check_period(period),
            check_filters(filters),
            *check_range(since, until),
        )

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Every dimension the query touches: groupings, then filters."""
        return tuple(dict.fromkeys((*self.by, *self.filters)))

    @property
    def keys(self) -> list[str]:
        """Columns of the aggregated frame that identify a row: groupings, then ``period``."""
        return [*self.by, *(["period"] if self.period else [])]

    @classmethod
    def of(cls, args: QueryArgs, **defaults: Any) -> Query:
        """:meth:`build` from keyword arguments, with an analysis' own defaults (e.g.
        ``by=("touchpoint",)``) where a keyword is left out."""
        return cls.build(**{**defaults, **args})

    def describe(self) -> dict[str, Any]:
        """The query as JSON-friendly metadata."""
        return {
            "by": list(self.by),
            "period": self.period,
            "filters": {k: list(v) for k, v in self.filters.items()},
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def feedback_facts(source: Source, dimensions: Iterable[str] = ()) -> ir.Table:
    """One row per feedback record: ``feedback_id``, ``occurred_at``, the :data:`MEASURES` as
    float64 and one column per requested dimension (named after it), joining only the tables
    those dimensions need."""
    dims = tuple(dict.fromkeys(check_dimension(d) for d in dimensions))
    joins = {j for d in dims for j in DIMENSIONS[d].joins}
    f = get_table(source, "feedback")
    joined: Any = f
    touchpoint: Any = f.touchpoint
    cols: dict[str, Any] = {"source": f.source, "touchpoint": touchpoint, "partner": f.partner_id}
    if "interactions" in joins:
        i = get_table(source, "interactions")
        i = i.select(
            _i_id=i.interaction_id,
            _i_touchpoint=i.touchpoint,
            _i_channel=i.channel,
            _i_partner=i.partner_id,
            _i_agent=i.agent_id,
        )
        joined = joined.left_join(i, f.interaction_id == i._i_id)
        touchpoint = ibis.coalesce(f.touchpoint, i._i_touchpoint)
        cols.update(
            touchpoint=touchpoint,
            partner=ibis.coalesce(f.partner_id, i._i_partner),
            channel=i._i_channel,
            agent=i._i_agent,
        )
    if "touchpoints" in joins:
        tp = get_table(source, "touchpoints")
        tp = tp.select(_tp_key=tp.key, _tp_stage=tp.stage, _tp_department=tp.department)
        joined = joined.left_join(tp, touchpoint == tp._tp_key)
        cols.update(stage=tp._tp_stage, department=tp._tp_department)
    if "people" in joins:
        pe = get_table(source, "people")
        pe = pe.select(_pe_id=pe.person_id, _pe_segment=pe.segment, _pe_region=pe.region)
        joined = joined.left_join(pe, f.person_id == pe._pe_id)
        cols.update(segment=pe._pe_segment, region=pe._pe_region)
    # One join chain, one projection: predicates and columns name the base tables, which is
    # what Ibis needs to compile a flat SELECT … LEFT JOIN … LEFT JOIN … on every engine.
    return joined.select(
        feedback_id=f.feedback_id,
        occurred_at=f.occurred_at,
        **{m: f[m].cast("float64") for m in MEASURES},
        **{d: cols[d] for d in dims},
    )


def query_rows(source: Source, query: Query) -> ir.Table:
    """:func:`feedback_facts` for the query's dimensions, filtered by its filters and time
    range, with a ``period`` column (UTC period start) when the query has a period."""
    return apply_query(feedback_facts(source, query.dimensions), query)


def apply_query(t: ir.Table, query: Query) -> ir.Table:
    """The query's filters, time range and period on any table with its dimension columns and
    ``occurred_at``: filters as ``isin`` (``None`` selects missing), ``since`` inclusive,
    ``until`` exclusive, ``period`` the UTC start of each row's period."""
    preds = filter_predicates(t, query.filters)
    if query.since is not None:
        preds.append(t.occurred_at >= ibis.literal(query.since))
    if query.until is not None:
        preds.append(t.occurred_at < ibis.literal(query.until))
    if preds:
        t = t.filter(*preds)
    if query.period is not None:
        t = t.mutate(period=t.occurred_at.truncate(PERIODS[query.period]))
    return t


def filter_predicates(
    t: ir.Table, filters: Mapping[str, tuple[FilterValue, ...]]
) -> list[ir.BooleanValue]:
    """One condition per filter on a table with the dimension columns: the column ``isin`` the
    filter's labels, or missing where the filter names ``None``."""
    preds = []
    for name, values in filters.items():
        col = t[name]
        labels = [v for v in values if v is not None]
        cond = col.isin(labels) if labels else None
        if None in values:
            cond = col.isnull() if cond is None else (cond | col.isnull())
        preds.append(cond)
    return preds


def aggregate(table: ir.Table, keys: Sequence[str], aggregates: Mapping[str, Any]) -> pd.DataFrame:
    """Run one ``GROUP BY keys`` in the engine and bring back only the aggregated frame.

    Sums over no rows are 0 (SQL says null); ``period`` becomes tz-aware UTC; rows are sorted by
    the keys with missing labels last, so both engines return the same frame.
    """
    keys = list(keys)
    expr = table.group_by(keys).aggregate(**aggregates) if keys else table.aggregate(**aggregates)
    df = expr.to_pyarrow().to_pandas()
    for name in aggregates:
        df[name] = df[name].fillna(0)
    if "period" in keys:
        df["period"] = as_utc(df["period"])
    if keys:
        df = df.sort_values(keys, na_position="last", kind="mergesort")
    return df[[*keys, *aggregates]].reset_index(drop=True)


__all__ = [
    "DIMENSIONS",
    "MEASURES",
    "PERIODS",
    "Dimension",
    "Filters",
    "Query",
    "Source",
    "TableSource",
    "aggregate",
    "check_by",
    "check_confidence",
    "check_filters",
    "check_period",
    "check_range",
    "check_time",
    "feedback_facts",
    "filter_predicates",
    "get_table",
    "query_rows",
]
