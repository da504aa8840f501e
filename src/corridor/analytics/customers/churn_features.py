"""What the store holds about every customer, as churn-model features: contacts, outcomes,
broken promises, spend and complaint texts — not only the rated few's gaps.

All read as of a time ``as_of`` from the records before ``until`` (exclusive; the look-back
training set reads everything before its cut-off, scoring reads everything), through the
store's query layer (one ``GROUP BY`` per family, on DuckDB and PostgreSQL alike). A merged
person's records count for the person they were merged into. Windows are the ``d`` days before
``as_of``. Per customer:

=================================== ==============================================================
feature                             what it counts
=================================== ==============================================================
``contacts_30d``                    interactions in the last 30 days
``contacts_30d:<tp>``               interactions at touch point ``tp`` in the last 30 days
``contacts_90d:<tp>:<outcome>``     interactions at ``tp`` with that ``outcome`` in the last 90
                                    days (``none``: no outcome)
``unresolved_90d``,                 interactions whose outcome is ``unresolved`` (the data
``unresolved_all``                  contract's word for a contact that did not solve the
                                    problem), last 90 days and ever
``retained_90d``, ``retained_all``  cancellation contacts the company saved (outcome
                                    ``retained``), last 90 days and ever
``broken_promises_90d``,            interactions that broke a promise of the corridor map
``broken_promises_all``             (measured on interactions: durations, values, attributes),
                                    last 90 days and ever
``broken_share``                    broken / measured over every promise-measured interaction
                                    (0 when none was measured)
``broken_90d:<promise>``            that promise broken in the last 90 days
``spend_90d``                       sum of positive ``value`` in the last 90 days
``spend_change``                    log(1 + spend in the last 90 days) − log(1 + spend in the 90
                                    days before)
``complaints_90d``,                 the customer's feedback texts the text analysis read as a
``complaints_all``                  complaint (intent ``complaint``), last 90 days and ever
``texts_all``                       analysed feedback texts
``sentiment_mean``                  their mean sentiment (−1…+1; 0 when none)
=================================== ==============================================================

Counts and spends enter the models as log(1 + x) (:data:`LOGGED`); the per touch point,
outcome and promise columns are kept when at least :data:`MIN_SHARE` of the training customers
(and at least :data:`MIN_CUSTOMERS`) have one (:func:`supported_columns`). Promises measured on
feedback fields (``experience >= 7``) are left out: they are rated by the few, and the rated
gaps are features already. With ``touchpoints`` given (a department head's model), every
family reads only interactions at, and feedback about, those touch points.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import ibis
import numpy as np
import pandas as pd
from ibis.common.exceptions import TableNotFound

from corridor.analytics.core.counting import count_where
from corridor.analytics.core.dimensions import Source, get_table
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.customers.churn_people import MONTH_DAYS, CustomerTable
from corridor.analytics.feedback.promises import (
    INTERACTION_COLUMNS,
    Promise,
    attribute_value,
    load_promises,
)

UNRESOLVED_OUTCOMES: tuple[str, ...] = ("unresolved",)
RETAINED_OUTCOME = "retained"
COMPLAINT_INTENT = "complaint"
#: a per touch point / outcome / promise column needs this share of the training customers …
MIN_SHARE = 0.01
#: … and at least this many of them
MIN_CUSTOMERS = 10
#: the column prefixes read as counts or money: they enter the models as log(1 + x)
LOGGED: tuple[str, ...] = (
    "contacts_",
    "unresolved_",
    "retained_",
    "broken_promises_",
    "broken_90d:",
    "spend_90d",
    "complaints_",
    "texts_all",
)
#: the columns every customer has (0 where a family has no records, e.g. no promises)
FIXED: tuple[str, ...] = (
    "contacts_30d",
    "unresolved_90d",
    "unresolved_all",
    "retained_90d",
    "retained_all",
    "broken_promises_90d",
    "broken_promises_all",
    "broken_share",
    "spend_90d",
    "spend_change",
    "complaints_90d",
    "complaints_all",
    "texts_all",
    "sentiment_mean",
)
#: the prefixes of the columns made per touch point, outcome or promise
PER_KEY: tuple[str, ...] = ("contacts_30d:", "contacts_90d:", "broken_90d:")


def _optional(source: Source, name: str) -> Any:
    try:
        return get_table(source, name)
    except (TableNotFound, AnalyticsQueryError):  # a store or a mapping without it
        return None


def _canonical(source: Source, touchpoints: Sequence[str] | None) -> Any:
    """Interactions with ``cid``, the canonical person, and the columns the features read."""
    i = get_table(source, "interactions")
    p = get_table(source, "people")
    p = p.select(_p_id=p.person_id, _p_canon=p.canonical_id)
    j = i.left_join(p, i.person_id == p._p_id)
    t = j.select(
        cid=ibis.coalesce(p._p_canon, i.person_id),
        occurred_at=i.occurred_at,
        touchpoint=i.touchpoint,
        outcome=ibis.coalesce(i.outcome, ibis.literal("none")),
        value=i.value.cast("float64"),
        duration_minutes=i.duration_minutes.cast("float64"),
        attributes=i.attributes,
    )
    if touchpoints is not None:
        t = t.filter(t.touchpoint.isin(list(touchpoints)))
    return t


def _holds(value: Any, operator: str, threshold: float) -> Any:
    thr = ibis.literal(float(threshold), type="float64")
    return {
        "<=": value <= thr,
        ">=": value >= thr,
        "<": value < thr,
        ">": value > thr,
        "==": value == thr,
    }[operator]


def store_features(
    source: Source,
    as_of: datetime,
    until: datetime | None = None,
    touchpoints: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The features of the module docstring for every customer with records before ``until``,
    as of ``as_of`` (raw counts and sums, not yet logged); index ``person_id`` (canonical)."""
    t = _canonical(source, touchpoints)
    if until is not None:
        t = t.filter(t.occurred_at < ibis.literal(until))
    d30, d90, d180 = (ibis.literal(as_of - timedelta(days=d)) for d in (30, 90, 180))
    w30, w90 = t.occurred_at >= d30, t.occurred_at >= d90
    w_prev = (t.occurred_at >= d180) & ~w90
    unresolved = t.outcome.isin(list(UNRESOLVED_OUTCOMES))
    retained = t.outcome == RETAINED_OUTCOME
    spend = ibis.ifelse(t.value > 0, t.value, 0.0)
    base = (
        t.group_by("cid")
        .aggregate(
            contacts_30d=count_where(t, w30),
            unresolved_90d=count_where(t, w90 & unresolved),
            unresolved_all=count_where(t, unresolved),
            retained_90d=count_where(t, w90 & retained),
            retained_all=count_where(t, retained),
            spend_90d=ibis.coalesce(spend.sum(where=w90), 0.0),
            spend_prev=ibis.coalesce(spend.sum(where=w_prev), 0.0),
        )
        .to_pandas()
        .set_index("cid")
    )
    base.index = base.index.astype(str)
    frame = base.drop(columns="spend_prev").astype(float)
    frame["spend_change"] = np.log1p(base["spend_90d"]) - np.log1p(base["spend_prev"])
    recent = t.filter(w90)
    pairs = recent.group_by(["cid", "touchpoint", "outcome"]).aggregate(n=recent.count())
    last30 = t.filter(w30)
    per_tp = last30.group_by(["cid", "touchpoint"]).aggregate(n=last30.count())
    parts = [
        frame,
        _pivot(pairs.to_pandas(), ["touchpoint", "outcome"], "contacts_90d"),
        _pivot(per_tp.to_pandas(), ["touchpoint"], "contacts_30d"),
        _promise_features(source, t, d90),
        _text_features(source, until, d90, touchpoints),
    ]
    out = pd.concat([p for p in parts if p is not None], axis=1)
    keyed = sorted(c for c in out.columns if c not in FIXED)
    out = out.reindex(columns=[*FIXED, *keyed]).fillna(0.0)
    out.index.name = "person_id"
    return out


def _pivot(rows: pd.DataFrame, keys: list[str], prefix: str) -> pd.DataFrame:
    if rows.empty:
        return pd.DataFrame(index=pd.Index([], dtype=object, name="cid"))
    column = pd.Series(prefix, index=rows.index, dtype=object)
    for k in keys:
        column = column + ":" + rows[k].astype(str)
    rows = rows.assign(cid=rows["cid"].astype(str), column=column)
    wide = rows.pivot_table(index="cid", columns="column", values="n", aggfunc="sum")
    wide.columns.name = None
    return wide.astype(float)


def _promise_features(source: Source, t: Any, d90: Any) -> pd.DataFrame | None:
    """Broken promises per customer, from the promises measured on interactions."""
    if _optional(source, "promises") is None:
        return None
    promises: list[Promise] = [p for p in load_promises(source) if p.measured_on != "feedback"]
    if not promises:
        return None
    units = []
    for p in promises:
        u = t.filter(t.touchpoint == p.touchpoint)
        value = (
            u[p.metric].cast("float64")
            if p.metric in INTERACTION_COLUMNS
            else attribute_value(u.attributes, p.metric)
        )
        u = u.mutate(_v=value)
        u = u.filter(u._v.notnull())
        units.append(
            u.select(
                cid=u.cid,
                promise=ibis.literal(p.key, type="string"),
                broken=ibis.ifelse(_holds(u._v, p.operator, p.threshold), 0, 1).cast("int64"),
                recent=ibis.ifelse(u.occurred_at >= d90, 1, 0).cast("int64"),
            )
        )
    all_units = ibis.union(*units, distinct=False) if len(units) > 1 else units[0]
    g = all_units.group_by(["cid", "promise"]).aggregate(
        measured=all_units.count(),
        broken=all_units.broken.sum(),
        broken_90d=(all_units.broken * all_units.recent).sum(),
    )
    rows = g.to_pandas()
    if rows.empty:
        return None
    rows["cid"] = rows["cid"].astype(str)
    per = rows.groupby("cid")[["measured", "broken", "broken_90d"]].sum().astype(float)
    out = pd.DataFrame(
        {
            "broken_promises_90d": per["broken_90d"],
            "broken_promises_all": per["broken"],
            "broken_share": per["broken"] / per["measured"].where(per["measured"] > 0),
        }
    )
    wide = _pivot(rows.rename(columns={"broken_90d": "n"}), ["promise"], "broken_90d")
    return pd.concat([out, wide], axis=1)


def _text_features(
    source: Source, until: datetime | None, d90: Any, touchpoints: Sequence[str] | None
) -> pd.DataFrame | None:
    """Complaints and sentiment of the customer's analysed feedback texts."""
    a = _optional(source, "text_analysis")
    if a is None:
        return None
    f = get_table(source, "feedback")
    p = get_table(source, "people")
    p = p.select(_p_id=p.person_id, _p_canon=p.canonical_id)
    a = a.select(_a_id=a.feedback_id, _sent=a.sentiment.cast("float64"), _intent=a.intent)
    j = f.join(a, f.feedback_id == a._a_id).left_join(p, f.person_id == p._p_id)
    preds = [f.person_id.notnull()]
    if until is not None:
        preds.append(f.occurred_at < ibis.literal(until))
    if touchpoints is not None:
        i = get_table(source, "interactions").select(_i_id="interaction_id", _i_tp="touchpoint")
        j = j.left_join(i, f.interaction_id == i._i_id)
        preds.append(ibis.coalesce(f.touchpoint, i._i_tp).isin(list(touchpoints)))
    j = j.filter(*preds)
    rows = j.select(
        cid=ibis.coalesce(p._p_canon, f.person_id),
        recent=f.occurred_at >= d90,
        complaint=a._intent == COMPLAINT_INTENT,
        sentiment=a._sent,
    )
    g = rows.group_by("cid").aggregate(
        complaints_90d=count_where(rows, rows.complaint & rows.recent),
        complaints_all=count_where(rows, rows.complaint),
        texts_all=rows.count(),
        sentiment_mean=rows.sentiment.mean(),
    )
    out = g.to_pandas()
    if out.empty:
        return None
    out["cid"] = out["cid"].astype(str)
    return out.set_index("cid").astype(float)


def design_matrix(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str] = ()
) -> pd.DataFrame:
    """Numeric columns as float, and one indicator per level of each categorical column
    (missing is a level of its own), named ``column=level``."""
    parts = [frame[list(numeric)].astype(float).reset_index(drop=True)]
    for col in categorical:
        values = frame[col].astype("object").where(frame[col].notna(), "(missing)").astype(str)
        dummies = pd.get_dummies(values, prefix=col, prefix_sep="=", dtype=float)
        parts.append(dummies.reset_index(drop=True))
    return pd.concat(parts, axis=1)


def customer_features(
    ct: CustomerTable,
    touchpoints: Sequence[str],
    columns: Sequence[str] | None = None,
    centres: pd.Series | None = None,
    activity: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The model features of every customer in ``ct``: tenure and log tenure (months), log
    interactions per observed month, log interactions in the last 90 days, log days since the
    last interaction, segment and region indicators, each of ``touchpoints``' latest gap
    (centred; unrated = 0, the centre), and the columns of ``activity`` (from
    :func:`store_features`, logged as :func:`model_columns` says; customers without a row
    have 0). ``columns`` aligns the result to a fitted model's columns (missing ones are 0);
    gaps are centred on ``centres`` (per touch point; default: their means in ``ct``), so
    that scoring uses the training set's centres."""
    p = ct.people.reset_index(drop=True)
    observed = np.maximum(p["tenure"] - p["entry"], 1.0 / MONTH_DAYS)
    base = pd.DataFrame(
        {
            "tenure_months": p["tenure"],
            "log_tenure": np.log1p(p["tenure"]),
            "log_interactions_per_month": np.log1p(p["n_interactions"] / observed),
            "log_recent_interactions": np.log1p(p["n_recent"]),
            "log_days_since_last": np.log1p(p["days_since_last"]),
            "segment": p["segment"],
            "region": p["region"],
        }
    )
    gaps = ct.latest.reindex(index=p["person_id"], columns=list(touchpoints))
    mid = gaps.mean() if centres is None else centres.reindex(gaps.columns).fillna(0.0)
    centred = (gaps - mid).fillna(0.0).reset_index(drop=True)
    centred.columns = [f"gap:{c}" for c in touchpoints]
    numeric = [c for c in base.columns if c not in ("segment", "region")]
    parts = [design_matrix(base, numeric, ["segment", "region"]), centred]
    if activity is not None:
        act = activity.reindex(index=p["person_id"].astype(str)).fillna(0.0)
        parts.append(model_columns(act).reset_index(drop=True))
    X = pd.concat(parts, axis=1)
    if columns is not None:
        X = X.reindex(columns=list(columns), fill_value=0.0)
    return X


def occlusion_groups(columns: Sequence[str]) -> dict[str, list[str]]:
    """The feature groups the boosted model's reasons occlude together: a categorical column's
    indicators (named after the column), tenure with log tenure (``tenure_months``), every
    other feature alone."""
    groups: dict[str, list[str]] = {}
    for c in columns:
        name = c.split("=", 1)[0] if c.startswith(("segment=", "region=")) else c
        groups.setdefault("tenure_months" if c == "log_tenure" else name, []).append(c)
    return groups


def _count(value: float, logged: bool = True) -> str:
    n = float(np.expm1(value)) if logged else value
    return f"{n:.0f}" if abs(n - round(n)) < 1e-9 else f"{n:.1f}"


def describe(feature: str, value: float) -> str:
    """A feature and the customer's value of it, in words (``value`` as the model reads it:
    counts logged)."""
    if feature.startswith("gap:"):
        return f"gap at {feature[4:]} {value:+.1f} vs average"
    if "=" in feature:
        return feature
    head, _, rest = feature.partition(":")
    if head == "contacts_30d" and rest:
        return f"{_count(value)} contacts at {rest} in 30 days"
    if head == "contacts_90d" and rest:
        tp, _, outcome = rest.rpartition(":")
        return f"{_count(value)} contacts at {tp} ending {outcome} in 90 days"
    if head == "broken_90d" and rest:
        return f"promise {rest} broken {_count(value)}× in 90 days"
    fixed = {
        "tenure_months": f"tenure {value:.0f} months",
        "log_tenure": f"tenure {np.expm1(value):.0f} months",
        "log_interactions_per_month": f"{np.expm1(value):.1f} interactions a month",
        "log_recent_interactions": f"{np.expm1(value):.0f} interactions in 90 days",
        "log_days_since_last": f"{np.expm1(value):.0f} days since last interaction",
        "contacts_30d": f"{_count(value)} interactions in 30 days",
        "unresolved_90d": f"{_count(value)} unresolved contacts in 90 days",
        "unresolved_all": f"{_count(value)} unresolved contacts in all",
        "retained_90d": f"{_count(value)} saved cancellation requests in 90 days",
        "retained_all": f"{_count(value)} saved cancellation requests in all",
        "broken_promises_90d": f"{_count(value)} broken promises in 90 days",
        "broken_promises_all": f"{_count(value)} broken promises in all",
        "broken_share": f"{100 * value:.0f} % of measured promises broken",
        "spend_90d": f"spend {np.expm1(value):,.0f} in 90 days",
        "spend_change": f"spend in 90 days {np.exp(value):.2f}× (of 1 + spend) the 90 before",
        "complaints_90d": f"{_count(value)} complaints in 90 days",
        "complaints_all": f"{_count(value)} complaints in all",
        "texts_all": f"{_count(value)} feedback texts",
        "sentiment_mean": f"mean text sentiment {value:+.2f}",
    }
    return fixed.get(feature, feature)


def reason_texts(contrib: pd.DataFrame, X: pd.DataFrame, top: int = 3) -> list[str]:
    """Per row, the up to ``top`` features (or feature groups) with the largest positive
    contributions, in words with their log-odds: ``;``-separated. An indicator the row does not
    have is skipped (its term is the absence of a level); a group names the row's level."""
    c = contrib.to_numpy()
    order = np.argsort(-c, axis=1)[:, :top]
    names = [str(n) for n in contrib.columns]
    xv = X.to_numpy(float)
    col = {n: j for j, n in enumerate(X.columns)}
    members = {
        n: [j for k, j in col.items() if k.startswith(n + "=")] for n in names if n not in col
    }
    out = []
    for i in range(len(c)):
        parts = []
        for j in order[i]:
            if c[i, j] <= 0:
                break
            name = names[j]
            if name in col:
                value = float(xv[i, col[name]])
                if "=" in name and value == 0:
                    continue
                said = describe(name, value)
            else:  # a categorical group: the row's level
                on = [k for k in members[name] if xv[i, k] == 1]
                said = str(X.columns[on[0]]) if on else name
            parts.append(f"{said} (+{c[i, j]:.2f} log-odds)")
        out.append("; ".join(parts))
    return out


def supported_columns(features: pd.DataFrame) -> list[str]:
    """The columns of ``features`` (the training customers') a model uses: every fixed one, and
    the per touch point / outcome / promise ones that enough customers have (module docstring)."""
    need = max(MIN_CUSTOMERS, MIN_SHARE * len(features))
    have = (features != 0).sum()
    return [c for c in features.columns if not c.startswith(PER_KEY) or float(have[c]) >= need]


def model_columns(features: pd.DataFrame) -> pd.DataFrame:
    """``features`` as the models read them: counts and spends as log(1 + x)."""
    out = features.astype(float).copy()
    for c in out.columns:
        if c.startswith(LOGGED):
            out[c] = np.log1p(out[c].clip(lower=0.0))
    return out


__all__ = [
    "FIXED",
    "LOGGED",
    "MIN_CUSTOMERS",
    "MIN_SHARE",
    "PER_KEY",
    "customer_features",
    "describe",
    "design_matrix",
    "model_columns",
    "occlusion_groups",
    "reason_texts",
    "store_features",
    "supported_columns",
]
