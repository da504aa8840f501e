"""Ripple events: operational events loaded and scoped (where and when each acts, what else
happened around it), and the per day × touch point × region cell queries and churn counts the
estimators in :mod:`corridor.analytics.estimators.ripple_estimators` run on. The method notes are in
:mod:`corridor.analytics.attribution.ripple`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from corridor.analytics.core.counting import count_where
from corridor.analytics.core.dimensions import Source, get_table
from corridor.analytics.core.periods import as_utc
from corridor.analytics.estimators.ripple_estimators import DAY
from corridor.store.base import Store
from corridor.store.sql import add_time_range

#: a record is a complaint when its experience is at most this (0–10 scale)
COMPLAINT_MAX = 4.0
CHURN_HORIZON_DAYS = 90
OPEN_DAYS = 90
MIN_PRE_DAYS = 28
MAX_PRE_DAYS = 90


@dataclass(frozen=True)
class Event:
    """One ``operational_events`` row; ``touchpoints`` None when it names none."""

    event_id: str
    department: str
    kind: str
    start: pd.Timestamp
    end: pd.Timestamp | None
    touchpoints: tuple[str, ...] | None
    region: str | None
    description: str | None


@dataclass(frozen=True)
class Scope:
    """Where an event acts: its touch points (``source``: named by the ``event``, owned by its
    ``department``, or the whole ``corridor``), its region, and the comparison ``design``."""

    touchpoints: tuple[str, ...]
    region: str | None
    source: str
    design: str


def scope_of(event: Event, owned: dict[str, tuple[str, ...]], corridor: Sequence[str]) -> Scope:
    if event.touchpoints:
        tps, src = event.touchpoints, "event"
    elif owned.get(event.department):
        tps, src = owned[event.department], "department"
    else:
        tps, src = tuple(corridor), "corridor"
    if event.region is not None:
        design = "did-regions"
    elif set(corridor) <= set(tps):
        design = "its"
    else:
        design = "did-touchpoints"
    return Scope(tuple(tps), event.region, src, design)


def _keys(value: Any) -> tuple[str, ...]:
    """``a;b`` → ``("a", "b")``; missing → ``()``."""
    if not isinstance(value, str):
        return ()
    return tuple(k.strip() for k in value.split(";") if k.strip())


def load_events(source: Source) -> list[Event]:
    """Every operational event, ordered by start."""
    t = get_table(source, "operational_events")
    cols = ["event_id", "department", "kind", "started_at", "ended_at", "touchpoints", "region"]
    df = t.select(*cols, "description").to_pyarrow().to_pandas()
    out = []
    for r in df.itertuples(index=False):
        tps = _keys(r.touchpoints)
        out.append(
            Event(
                str(r.event_id),
                str(r.department),
                str(r.kind),
                pd.Timestamp(r.started_at).tz_convert("UTC"),
                None if pd.isna(r.ended_at) else pd.Timestamp(r.ended_at).tz_convert("UTC"),
                tps or None,
                r.region if isinstance(r.region, str) and r.region else None,
                r.description if isinstance(r.description, str) else None,
            )
        )
    out.sort(key=lambda e: (e.start, e.event_id))
    return out


#: the fields of a listed event (:func:`department_events`), as stored
EVENT_FIELDS = (
    "event_id", "kind", "started_at", "ended_at", "touchpoints", "region", "description",
)  # fmt: skip


def department_events(
    store: Store,
    department: str,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """A department's operational events that act at some time in ``[since, until)``, newest
    first, at most ``limit``: the :data:`EVENT_FIELDS` as stored (``touchpoints`` as ``a;b``)."""
    where: list[str] = ["department = ?"]
    params: list[Any] = [department]
    add_time_range(where, params, since, until, "started_at", ends="COALESCE(ended_at, started_at)")
    rows = store.query(
        f"SELECT {', '.join(EVENT_FIELDS)} FROM operational_events WHERE {' AND '.join(where)} "
        f"ORDER BY started_at DESC LIMIT {int(limit)}",
        params,
    )
    return [dict(zip(EVENT_FIELDS, r, strict=True)) for r in rows]


Market = tuple[str, pd.Timestamp, tuple[str, ...]]


def market_events(source: Source) -> list[Market]:
    t = get_table(source, "market_events").select("event_id", "occurred_at", "touchpoints")
    df = t.to_pyarrow().to_pandas()
    return [
        (
            str(r.event_id),
            pd.Timestamp(r.occurred_at).tz_convert("UTC"),
            _keys(r.touchpoints),
        )
        for r in df.itertuples(index=False)
    ]


def _facts(source: Source) -> ir.Table:
    """Rated feedback placed at its interaction's time, with touch point, region and person."""
    f = get_table(source, "feedback")
    i = get_table(source, "interactions")
    pe = get_table(source, "people")
    i = i.select(_i_id=i.interaction_id, _i_at=i.occurred_at, _i_tp=i.touchpoint)
    pe = pe.select(_pe_id=pe.person_id, _pe_region=pe.region)
    j = f.left_join(i, f.interaction_id == i._i_id).left_join(pe, f.person_id == pe._pe_id)
    return j.select(
        at=ibis.coalesce(i._i_at, f.occurred_at),
        touchpoint=ibis.coalesce(f.touchpoint, i._i_tp),
        region=pe._pe_region,
        expectation=f.expectation.cast("float64"),
        experience=f.experience.cast("float64"),
    )


def feedback_cells(source: Source) -> pd.DataFrame:
    """Additive sums per UTC day × touch point × region: ``n_gap, sum_gap, sumsq_gap`` over
    records with both ratings, ``n_exp, n_complaint`` over records with an experience."""
    t = _facts(source)
    t = t.filter(t.touchpoint.notnull(), t.experience.notnull())
    gap = t.experience - t.expectation
    rated = t.expectation.notnull()
    expr = t.group_by(day=t.at.truncate("D"), touchpoint=t.touchpoint, region=t.region).aggregate(
        n_gap=count_where(t, rated),
        sum_gap=gap.sum(where=rated),
        sumsq_gap=(gap * gap).sum(where=rated),
        n_exp=t.count(),
        n_complaint=count_where(t, t.experience <= COMPLAINT_MAX),
    )
    df = expr.to_pyarrow().to_pandas()
    for c in ("sum_gap", "sumsq_gap"):
        df[c] = df[c].astype(float).fillna(0.0)
    df["day"] = as_utc(df["day"])
    df["n_complaint_sq"] = df["n_complaint"].astype(float)
    return df


def interaction_cells(
    source: Source, days: Sequence[tuple[pd.Timestamp, pd.Timestamp]] | None = None
) -> pd.DataFrame:
    """Interactions per UTC day × touch point × region (``n_interactions``); with ``days``
    (``[start, end)`` UTC midnights), only the cells of those days: interactions before the
    first or after the last are not read."""
    i = get_table(source, "interactions")
    pe = get_table(source, "people").select("person_id", "region")
    pe = pe.select(_pe_id=pe.person_id, _pe_region=pe.region)
    ranges = _merged(days) if days is not None else None
    if ranges:
        # one range, a day wider on both sides (whatever the session's time zone truncates in),
        # which the scan can skip by; the days themselves are cut from the cells below
        lo, hi = ranges[0][0] - DAY, ranges[-1][1] + DAY
        i = i.filter(i.occurred_at >= _lit(lo), i.occurred_at < _lit(hi))
    j = i.left_join(pe, i.person_id == pe._pe_id)
    j = j.select(day=i.occurred_at.truncate("D"), touchpoint=i.touchpoint, region=pe._pe_region)
    expr = j.group_by("day", "touchpoint", "region").aggregate(n_interactions=j.count())
    df = expr.to_pyarrow().to_pandas()
    df["day"] = as_utc(df["day"])
    if ranges is not None:
        keep = np.zeros(len(df), bool)
        for lo, hi in ranges:
            keep |= ((df["day"] >= lo) & (df["day"] < hi)).to_numpy()
        df = df[keep].reset_index(drop=True)
    return df


def _lit(at: pd.Timestamp) -> ir.Scalar:
    return ibis.literal(at.to_pydatetime())


def _merged(
    days: Sequence[tuple[pd.Timestamp, pd.Timestamp]],
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """``[start, end)`` ranges merged where they overlap or touch, in order."""
    out: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for lo, hi in sorted(days):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


@dataclass(frozen=True)
class Span:
    pre_start: pd.Timestamp
    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def window_days(self) -> int:
        return int((self.end - self.start) / DAY)

    @property
    def pre_days(self) -> int:
        return int((self.start - self.pre_start) / DAY)


def span_of(event: Event, data_end: pd.Timestamp) -> Span:
    """The event's window and pre-window in whole UTC days (see
    :mod:`corridor.analytics.attribution.ripple`)."""
    start = event.start.floor("D")
    if event.end is not None:
        end = event.end.floor("D")
    else:
        end = min(start + OPEN_DAYS * DAY, max(data_end, start + DAY))
    end = max(end, start + DAY)
    pre = int(np.clip((end - start) / DAY, MIN_PRE_DAYS, MAX_PRE_DAYS))
    return Span(start - pre * DAY, start, end)


def _touches(cells: pd.DataFrame, tps: Sequence[str] | None, region: str | None) -> np.ndarray:
    m = np.ones(len(cells), bool) if tps is None else cells["touchpoint"].isin(tps).to_numpy()
    if region is not None:
        m = m & (cells["region"] == region).to_numpy()
    return m


def unit_masks(
    cells: pd.DataFrame, scope: Scope, others: Sequence[tuple[Sequence[str] | None, str | None]]
) -> tuple[np.ndarray, np.ndarray]:
    """Treated and control rows of ``cells`` for an event's scope; ``others`` are the (touch
    points, region) of other events overlapping in time (their units are no control)."""
    in_tps = cells["touchpoint"].isin(scope.touchpoints).to_numpy()
    has_region = cells["region"].notna().to_numpy()
    if scope.region is not None:
        treated = in_tps & (cells["region"] == scope.region).to_numpy()
        control = in_tps & has_region & ~treated
    else:
        treated = in_tps
        control = ~in_tps if scope.design == "did-touchpoints" else np.zeros(len(cells), bool)
    for tps, region in others:
        control = control & ~_touches(cells, tps, region)
    return treated, control


def phase_masks(cells: pd.DataFrame, span: Span) -> tuple[np.ndarray, np.ndarray]:
    day = cells["day"]
    inside = ((day >= span.pre_start) & (day < span.end)).to_numpy()
    return inside, (day >= span.start).to_numpy()


def event_context(
    event: Event,
    scope: Scope,
    span: Span,
    events: Sequence[Event],
    market: Sequence[Market],
    data_end: pd.Timestamp,
) -> tuple[Span, list[tuple[Sequence[str] | None, str | None]], list[str]]:
    """What else happened around an event (see :mod:`corridor.analytics.attribution.ripple`): the
    span, its pre-window cut back to start after any confounding event that ended (or market event
    that happened) inside it; the (touch points, region) of other events whose units are
    therefore no control; and the ids of confounding events during the window
    (``overlapping``).

    Another event confounds when it touches treated units but not the comparison alike: in the
    regional design an event in every region hits both sides and cancels; in the touch-point
    design one on the whole corridor does."""
    scopes: list[tuple[Sequence[str] | None, str | None]] = []
    overlapping: list[str] = []
    own = set(scope.touchpoints)
    pre_start = span.pre_start

    def confound(event_id: str, start: pd.Timestamp, end: pd.Timestamp | None) -> None:
        nonlocal pre_start
        if end is not None and end <= span.start:
            pre_start = max(pre_start, end)
        else:
            overlapping.append(event_id)

    for other in events:
        if other.event_id == event.event_id:
            continue
        o_start = other.start.floor("D")
        o_end = None if other.end is None else max(other.end.floor("D"), o_start + DAY)
        if not (o_start < span.end and (o_end is None or o_end > span.pre_start)):
            continue
        tps = set(other.touchpoints) if other.touchpoints else None
        if scope.design == "did-regions":
            if other.region is None:
                continue  # every region alike: cancels
            if other.region == scope.region:
                if tps is None or own & tps:
                    confound(other.event_id, o_start, o_end)
            else:
                scopes.append((other.touchpoints, other.region))
            continue
        if tps is None and scope.design == "did-touchpoints" and other.region is None:
            continue  # the whole corridor alike: cancels
        if tps is None or own & tps:
            confound(other.event_id, o_start, o_end)
        if scope.design == "did-touchpoints":
            scopes.append((other.touchpoints, other.region))
    for event_id, at, tps_m in market:
        if scope.design == "did-regions" or not span.pre_start <= at < span.end:
            continue
        if not tps_m:
            if scope.design == "its":
                confound(event_id, at, at.ceil("D"))
            continue
        if own & set(tps_m):
            confound(event_id, at, at.ceil("D"))
        scopes.append((tps_m, None))
    return Span(min(pre_start, span.start - DAY), span.start, span.end), scopes, overlapping


Others = Sequence[tuple[Sequence[str] | None, str | None]]


def churn_counts(
    source: Source,
    scope: Scope,
    span: Span,
    others: Others,
    data_end: pd.Timestamp,
) -> dict[str, float]:
    """Customers exposed (first interaction in the treated/control units, per phase) and how many
    cancelled within the horizon; customers whose horizon passes the end of data are left out."""
    return churn_counts_of(source, [(scope, span, others)], data_end)[0]


def churn_counts_of(
    source: Source,
    events: Sequence[tuple[Scope, Span, Others]],
    data_end: pd.Timestamp,
) -> list[dict[str, float]]:
    """:func:`churn_counts` of several events (scope, span, others) in one engine query: the
    customers' interactions are read and placed in their region once, each event's exposures
    (first interaction per person, group and phase) are stacked, and the cancellations within
    the horizon are joined to all of them at once."""
    if not events:
        return []
    i = get_table(source, "interactions")
    i = i.select("person_id", "touchpoint", at=i.occurred_at)
    pe = get_table(source, "people")
    pe = pe.filter(pe.kind == "customer")
    customers = pe.select(_pe_id=pe.person_id, region=pe.region)
    j = i.inner_join(customers, i.person_id == customers._pe_id)
    horizon = pd.Timedelta(days=CHURN_HORIZON_DAYS)
    last_ok = (data_end - horizon).to_pydatetime()
    # an exposure counts when its first interaction is before last_ok: later interactions can
    # neither make nor move one, so they are not read
    j = j.filter(j.at < ibis.literal(last_ok))
    stacked = None
    for k, (scope, span, others) in enumerate(events):
        first = _exposures(j, scope, span, others).mutate(ev=ibis.literal(k, "int64"))
        first = first.filter(first.first_at < ibis.literal(last_ok))
        stacked = first if stacked is None else stacked.union(first, distinct=False)
    assert stacked is not None
    c = get_table(source, "interactions")
    c = c.filter(c.outcome == "cancel").select(_c_person=c.person_id, _c_at=c.occurred_at)
    hit = stacked.left_join(
        c,
        (stacked.person_id == c._c_person)
        & (c._c_at >= stacked.first_at)
        & (c._c_at < stacked.first_at + ibis.interval(days=CHURN_HORIZON_DAYS)),
    )
    per = hit.group_by("ev", "person_id", "grp", "during").aggregate(churned=hit._c_person.count())
    agg = per.group_by("ev", "grp", "during").aggregate(
        persons=per.count(), churned=count_where(per, per.churned > 0)
    )
    df = agg.to_pyarrow().to_pandas()
    out: list[dict[str, float]] = [{} for _ in events]
    for r in df.itertuples(index=False):
        key = f"{r.grp}{'1' if r.during else '0'}"
        out[int(r.ev)][f"persons_{key}"] = float(r.persons)
        out[int(r.ev)][f"churned_{key}"] = float(r.churned)
    return out


def _exposures(j: ir.Table, scope: Scope, span: Span, others: Others) -> ir.Table:
    """One event's exposures from the customers' interactions ``j``: the first interaction per
    person, group (``T`` treated, ``C`` control) and phase (``during`` the window)."""
    j = j.filter(
        j.at >= ibis.literal(span.pre_start.to_pydatetime()),
        j.at < ibis.literal(span.end.to_pydatetime()),
    )
    in_tps = j.touchpoint.isin(list(scope.touchpoints))
    if scope.region is not None:
        treated = in_tps & (j.region == scope.region)
        control = in_tps & j.region.notnull() & (j.region != scope.region)
    elif scope.design == "did-touchpoints":
        treated, control = in_tps, ~in_tps
    else:
        treated, control = in_tps, ibis.literal(False)
    for tps, region in others:
        hit = ibis.literal(True) if tps is None else j.touchpoint.isin(list(tps))
        if region is not None:
            hit = hit & (j.region == region)
        control = control & ~hit
    grp = ibis.cases((treated, "T"), (control, "C"), else_=ibis.null("string"))
    j = j.mutate(grp=grp, during=j.at >= ibis.literal(span.start.to_pydatetime()))
    j = j.filter(j.grp.notnull())
    return j.group_by("person_id", "grp", "during").aggregate(first_at=j.at.min())


__all__ = [
    "CHURN_HORIZON_DAYS",
    "COMPLAINT_MAX",
    "EVENT_FIELDS",
    "MAX_PRE_DAYS",
    "MIN_PRE_DAYS",
    "OPEN_DAYS",
    "Event",
    "Market",
    "Others",
    "Scope",
    "Span",
    "churn_counts",
    "churn_counts_of",
    "department_events",
    "event_context",
    "feedback_cells",
    "interaction_cells",
    "load_events",
    "market_events",
    "phase_masks",
    "scope_of",
    "span_of",
    "unit_masks",
]
