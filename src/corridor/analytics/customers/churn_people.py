"""One row per customer, as survival and churn models need it, built from the store.

**Who.** Customers: canonical person rows (``people.canonical_id = person_id``, so a merged
person's history counts once, under the person it was merged into) whose ``kind`` is
``customer`` and who have at least one interaction. Interactions and feedback of merged person
rows count for the person they were merged into.

**Churn** is the first interaction whose ``outcome`` is ``cancel`` (the data contract's outcome
for a customer ending the relationship; other outcomes, e.g. ``retained`` on a cancellation
contact, are not churn). Nothing after it counts.

**Time.** A customer's life starts at the earlier of ``people.created_at`` and their first
interaction; it ends at the churn, or is censored at the as-of time (``until``, else the last
interaction in the store). Durations are in months of 30.44 days. The store only sees what
happened after its first interaction (the *observation start*); a customer who started before
it enters the risk set then (delayed entry, i.e. left truncation), so long-lived customers who
churned before the data begins cannot bias the curve.

**Covariates.** For each touch point, the customer's mean gap (experience − expectation, over
feedback with both ratings, given before the churn) and how many such ratings there were; plus
interaction counts: all, and in the 90 days before the as-of time, and days since the last one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from corridor.analytics.core.counting import count_where
from corridor.analytics.core.dimensions import Filters, Source, check_filters, check_time, get_table
from corridor.analytics.core.errors import AnalyticsQueryError

MONTH_DAYS = 30.44
CHURN_OUTCOME = "cancel"
RECENT_DAYS = 90
#: filters on the person row itself
PERSON_FILTERS = ("segment", "region")
#: filters meaning "customers with at least one interaction there"
INTERACTION_FILTERS = ("touchpoint", "stage", "department", "channel", "partner", "agent")
ALLOWED_FILTERS = (*PERSON_FILTERS, *INTERACTION_FILTERS)
#: what the filters and ``until`` mean, for the declarations of the churn and lifetime analyses
FILTERS_NOTE = (
    "Filter by the customer's `segment` or `region`, or by `touchpoint`, `stage`, "
    "`department`, `channel`, `partner` or `agent` (customers with at least one interaction "
    "there). `until` is the as-of time (default: the last interaction in the store)."
)


@dataclass(frozen=True)
class CustomerTable:
    """``people``: one row per customer; ``gaps`` / ``latest`` / ``rated``: the mean gap, the
    most recent gap and the number of rated feedback records per customer (index) and touch
    point (columns); ``ratings``: those feedback records (``person_id``, ``touchpoint``,
    ``occurred_at``, ``gap``) in time order."""

    people: pd.DataFrame
    gaps: pd.DataFrame
    rated: pd.DataFrame
    observation_start: datetime | None
    as_of: datetime | None
    latest: pd.DataFrame = field(default_factory=pd.DataFrame)
    ratings: pd.DataFrame = field(default_factory=pd.DataFrame)


def check_person_filters(filters: Filters | None) -> dict[str, tuple[Any, ...]]:
    checked = check_filters(filters)
    bad = [k for k in checked if k not in ALLOWED_FILTERS]
    if bad:
        raise AnalyticsQueryError(
            f"churn and lifetime analyses cannot filter on {', '.join(bad)}; allowed: "
            f"{', '.join(ALLOWED_FILTERS)} ({', '.join(INTERACTION_FILTERS)} select customers "
            "with at least one interaction there)"
        )
    return checked


def _isin(col: Any, values: Sequence[Any]) -> Any:
    labels = [v for v in values if v is not None]
    cond = col.isin(labels) if labels else None
    if None in values:
        cond = col.isnull() if cond is None else (cond | col.isnull())
    return cond


def canonical_interactions(source: Source) -> Any:
    """Interactions with ``cid``: the canonical person each belongs to."""
    i = get_table(source, "interactions")
    p = get_table(source, "people")
    p = p.select(_p_id=p.person_id, _p_canon=p.canonical_id)
    j = i.left_join(p, i.person_id == p._p_id)
    return j.select(
        cid=ibis.coalesce(p._p_canon, i.person_id),
        occurred_at=i.occurred_at,
        touchpoint=i.touchpoint,
        channel=i.channel,
        partner=i.partner_id,
        agent=i.agent_id,
        outcome=i.outcome,
        value=i.value.cast("float64"),
        interaction_id=i.interaction_id,
    )


def _to_utc(values: pd.Series) -> pd.Series:
    s = pd.to_datetime(values)
    return s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")


def _scalar_time(value: Any) -> datetime | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def customer_table(
    source: Source,
    until: Any = None,
    filters: Filters | None = None,
    churn_outcome: str = CHURN_OUTCOME,
    gaps: bool = True,
) -> CustomerTable:
    """The customers of the store as of ``until`` (exclusive; default: everything), selected
    by ``filters`` (:data:`ALLOWED_FILTERS`). See the module docstring for definitions.
    ``gaps=False``: the people only (``gaps``, ``rated``, ``latest`` and ``ratings`` empty),
    for analyses that read no feedback."""
    flt = check_person_filters(filters)
    as_of_arg = check_time(until, "until")
    ci = canonical_interactions(source)
    raw = get_table(source, "interactions")  # the span needs no person: no join
    if as_of_arg is not None:
        ci = ci.filter(ci.occurred_at < ibis.literal(as_of_arg))
        raw = raw.filter(raw.occurred_at < ibis.literal(as_of_arg))
    # to_pandas: an empty table's MIN is NULL, which to_pyarrow refuses on PostgreSQL
    span = raw.aggregate(first=raw.occurred_at.min(), last=raw.occurred_at.max()).to_pandas()
    obs_start = _scalar_time(span["first"].iloc[0])
    last_seen = _scalar_time(span["last"].iloc[0])
    as_of = as_of_arg or last_seen
    empty = CustomerTable(_empty_people(), pd.DataFrame(), pd.DataFrame(), obs_start, as_of)
    if obs_start is None or as_of is None:
        return empty
    recent_from = as_of - timedelta(days=RECENT_DAYS)
    is_churn = ci.outcome == churn_outcome
    agg = ci.group_by("cid").aggregate(
        first_at=ci.occurred_at.min(),
        last_at=ci.occurred_at.max(),
        churn_at=ci.occurred_at.min(where=is_churn),
        n_interactions=ci.count(),
        n_recent=count_where(ci, ci.occurred_at >= ibis.literal(recent_from)),
    )
    p = get_table(source, "people")
    p = p.filter(ibis.coalesce(p.canonical_id, p.person_id) == p.person_id, p.kind == "customer")
    preds = [_isin(p[name], vals) for name, vals in flt.items() if name in PERSON_FILTERS]
    if preds:
        p = p.filter(*preds)
    sel = agg.inner_join(p, agg.cid == p.person_id)
    inter = {k: v for k, v in flt.items() if k in INTERACTION_FILTERS}
    if inter:
        sel = sel.semi_join(_matching(source, ci, inter), "cid")
    people = sel.select(
        "cid",
        "first_at",
        "last_at",
        "churn_at",
        "n_interactions",
        "n_recent",
        "created_at",
        "segment",
        "region",
    ).to_pyarrow()
    df = people.to_pandas()
    if df.empty:
        return empty
    frame = _durations(df, obs_start, as_of)
    if not gaps:
        return CustomerTable(frame, pd.DataFrame(), pd.DataFrame(), obs_start, as_of)
    rows = _gap_rows(source, ci, churn_outcome, as_of_arg)
    rows = rows[_isin_strings(rows["person_id"], frame["person_id"])].reset_index(drop=True)
    means, latest, rated = _gap_matrices(rows)
    keep = frame["person_id"]
    means = means.reindex(index=keep)
    latest = latest.reindex(index=keep)
    rated = rated.reindex(index=keep).fillna(0).astype("int64")
    return CustomerTable(frame, means, rated, obs_start, as_of, latest, rows)


def _isin_strings(values: pd.Series, wanted: pd.Series) -> np.ndarray:
    """``values.isin(wanted)`` for string columns, in Arrow (pandas' Arrow-backed strings
    test membership one Python object at a time)."""
    found = pc.is_in(pa.array(values, pa.string()), value_set=pa.array(wanted, pa.string()))
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def _matching(source: Source, ci: Any, filters: dict[str, tuple[Any, ...]]) -> Any:
    t = ci
    if "stage" in filters or "department" in filters:
        tp = get_table(source, "touchpoints")
        tp = tp.select(_k=tp.key, stage=tp.stage, department=tp.department)
        t = t.left_join(tp, t.touchpoint == tp._k)
    t = t.filter(*[_isin(t[name], vals) for name, vals in filters.items()])
    return t.select("cid").distinct()


def _empty_people() -> pd.DataFrame:
    cols = [
        "person_id",
        "segment",
        "region",
        "start",
        "entry",
        "tenure",
        "event",
        "churn_at",
        "n_interactions",
        "n_recent",
        "days_since_last",
    ]
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})


def months_between(start: Any, end: Any) -> np.ndarray:
    """``end − start`` in months of :data:`MONTH_DAYS` days (Series or timestamps)."""
    delta = pd.Series(end - start) if not isinstance(end - start, pd.Series) else end - start
    return np.asarray(delta.dt.total_seconds().to_numpy(float) / (MONTH_DAYS * 86400.0))


def _durations(df: pd.DataFrame, obs_start: datetime, as_of: datetime) -> pd.DataFrame:
    first = _to_utc(df["first_at"])
    created = _to_utc(df["created_at"])
    start = first.where(created.isna() | (created > first), created)
    churn = _to_utc(df["churn_at"])
    end = churn.fillna(pd.Timestamp(as_of))
    tenure = months_between(start, end)
    entry = np.maximum(months_between(start, pd.Timestamp(obs_start)), 0.0)
    # at least a minute at risk, so that a churn at the very first moment still counts
    tenure = np.maximum(tenure, entry + 1.0 / (MONTH_DAYS * 24 * 60))
    last = _to_utc(df["last_at"])
    out = pd.DataFrame(
        {
            "person_id": df["cid"].astype(str),
            "segment": df["segment"],
            "region": df["region"],
            "start": start,
            "entry": entry,
            "tenure": tenure,
            "event": churn.notna().astype("int64"),
            "churn_at": churn,
            "n_interactions": df["n_interactions"].astype("int64"),
            "n_recent": df["n_recent"].astype("int64"),
            "days_since_last": np.maximum(months_between(last, as_of) * MONTH_DAYS, 0.0),
        }
    )
    return out.sort_values("person_id", kind="mergesort").reset_index(drop=True)


def _gap_rows(source: Source, ci: Any, churn_outcome: str, until: datetime | None) -> pd.DataFrame:
    """Rated feedback of customers given before their churn: ``person_id``, ``touchpoint``,
    ``occurred_at`` (UTC) and ``gap``, in time order."""
    f = get_table(source, "feedback")
    p = get_table(source, "people")
    p = p.select(_p_id=p.person_id, _p_canon=p.canonical_id)
    i = get_table(source, "interactions")
    i = i.select(_i_id=i.interaction_id, _i_tp=i.touchpoint)
    # each customer's churn: the first churn interaction (customers without one match none)
    churns = ci.filter(ci.outcome == churn_outcome)
    churn = churns.group_by(_c_id=churns.cid).aggregate(_c_at=churns.occurred_at.min())
    cid = ibis.coalesce(p._p_canon, f.person_id)
    j = (
        f.left_join(i, f.interaction_id == i._i_id)
        .left_join(p, f.person_id == p._p_id)
        .left_join(churn, cid == churn._c_id)
    )
    preds = [
        f.person_id.notnull(),
        f.expectation.notnull(),
        f.experience.notnull(),
        churn._c_at.isnull() | (f.occurred_at < churn._c_at),
    ]
    if until is not None:
        preds.append(f.occurred_at < ibis.literal(until))
    rows = j.filter(*preds).select(
        person_id=cid,
        touchpoint=ibis.coalesce(f.touchpoint, i._i_tp),
        occurred_at=f.occurred_at,
        feedback_id=f.feedback_id,
        gap=f.experience.cast("float64") - f.expectation.cast("float64"),
    )
    rows = rows.filter(rows.touchpoint.notnull())
    # sorted in Arrow (byte order of UTF-8 = code-point order, as pandas sorts; the key is
    # unique, feedback_id being the key of feedback); pandas' sort of Arrow strings is slow
    keys = ("person_id", "occurred_at", "feedback_id")
    table = rows.to_pyarrow()
    table = table.cast(
        pa.schema([f.with_type(pa.string()) if f.name in keys[::2] else f for f in table.schema])
    ).sort_by([(k, "ascending") for k in keys])
    df = table.to_pandas()
    df["person_id"] = df["person_id"].astype(str)
    df["occurred_at"] = _to_utc(df["occurred_at"])
    return df.drop(columns="feedback_id").reset_index(drop=True)


def _gap_matrices(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    if rows.empty:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    g = rows.groupby(["person_id", "touchpoint"], sort=True)["gap"]
    gaps = g.mean().unstack().sort_index(axis=1)
    latest = g.last().unstack().sort_index(axis=1)
    rated = g.size().unstack().sort_index(axis=1)
    return gaps, latest, rated


__all__ = [
    "ALLOWED_FILTERS",
    "CHURN_OUTCOME",
    "MONTH_DAYS",
    "CustomerTable",
    "canonical_interactions",
    "check_person_filters",
    "customer_table",
    "months_between",
]
