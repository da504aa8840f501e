"""Ripple effects: what each operational event did to customers, and which departments hurt most.

Every ``operational_events`` row (a stock-out, a billing error, a carrier change …) is measured
against comparable units it did not touch, over three customer outcomes:

* **gap** — mean experience − expectation of the feedback about interactions in the window;
* **complaint share** — share of records with ``experience ≤ 4`` (below the 0–10 scale's
  midpoint; :data:`COMPLAINT_MAX`);
* **churn** — share of the customers who had an interaction there who cancel (an interaction
  with outcome ``cancel``) within :data:`CHURN_HORIZON_DAYS` days of their first one.

**Where it acts.** The event's own ``touchpoints``; without them, the touch points its department
owns in the corridor map; when the department owns none (e.g. HR), the whole corridor. Its
``region`` (people's region) or every region.

**When.** The *window* runs from the UTC day of ``started_at`` to that of ``ended_at`` (an
open-ended event: :data:`OPEN_DAYS` days, or to the end of the data). The *pre-window* is the
same length just before it, at least :data:`MIN_PRE_DAYS` and at most :data:`MAX_PRE_DAYS` days.
Feedback is placed at the time of the interaction it is about (its own time when it names none).

**Against what** (``design``):

* ``did-regions`` — a regional event: the same touch points in the other regions;
* ``did-touchpoints`` — an event everywhere: the other touch points, in every region;
* ``its`` — an event on the whole corridor everywhere has no untouched comparison: interrupted
  time series on daily means (segmented regression with a common linear trend and a level change
  at the start; Bernal, Cummins & Gasparrini 2017).

Control units (touch point × region) named by *another* operational event, or by a market event,
whose window overlaps the event's pre-window or window are left out; other events touching the
event's own units in that span are listed in ``overlapping``.

**Estimator.** Difference in differences (Angrist & Pischke 2009, ch. 5) with unit fixed effects:
each unit's change ``Δᵤ = ȳᵤ,window − ȳᵤ,pre`` is averaged over the treated and over the control
units with precision weights ``wᵤ = 1/(1/nᵤ,pre + 1/nᵤ,window)``; effect = treated − control.
Its standard error is the larger of the independent-records one (pooled within-unit variances)
and a cluster-robust one by UTC day (the sandwich over day totals of the influence function, with
the ``G/(G − 1)`` correction), so shocks shared by all records of a day — a carrier's bad day, a
site outage — do not pass for evidence; taking the larger guards against the small-sample
downward bias of cluster-robust errors (Angrist & Pischke 2009, §8.2). Intervals and p-values use
Student's t with ``G − 1`` degrees of freedom (``G`` days). Churn shares are compared the same way
at group level with binomial variances (a person can be in both windows; the independent variance
is then conservative). p-values are adjusted over all events per measure by Benjamini & Hochberg
(1995) (``q_value_…``); an event is ``significant`` when ``q_value_gap < alpha``.

**Department impact** (:func:`department_impact`): per department, the sum over its significant
events of ``effect_gap × affected interactions`` (gap points × interactions in the event's units
and window; negative = harm), with an interval from the events' standard errors, plus the excess
churned customers ``Σ effect_churn × exposed customers`` over all its events; ranked most harmful
first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from scipy import stats as _sp

from corridor.analytics import stats
from corridor.analytics.dimensions import Source, TimeLike, check_confidence, check_time, get_table
from corridor.analytics.errors import AnalyticsQueryError
from corridor.analytics.periods import as_utc
from corridor.analytics.result import AnalyticsResult

#: a record is a complaint when its experience is at most this (0–10 scale)
COMPLAINT_MAX = 4.0
CHURN_HORIZON_DAYS = 90
OPEN_DAYS = 90
MIN_PRE_DAYS = 28
MAX_PRE_DAYS = 90
#: fewest records (customers, for churn) per group and phase for an estimate
MIN_RECORDS = 30
MEASURES = ("gap", "complaint", "churn")
DAY = pd.Timedelta(days=1)

METHOD = (
    "difference in differences per operational event: the change from the pre-window to the "
    "event window at its touch points (and region) minus the change at untouched comparable "
    "units (other regions, else other touch points), unit fixed effects, precision weights; SE = "
    "max(independent, cluster-robust by day), t with G − 1 df; interrupted time series when "
    "nothing comparable is untouched; Benjamini–Hochberg q over events"
)


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


class Effect(NamedTuple):
    """An estimated effect with its standard error, interval and two-sided p-value, and the
    treated group's raw means and the records behind it."""

    effect: float
    se: float
    low: float
    high: float
    p_value: float
    n_treated: float
    n_treated_pre: float
    n_control: float
    n_control_pre: float
    mean_pre: float
    mean_window: float


_NAN = float("nan")


def _t_effect(est: float, se: float, df: float, conf: float) -> tuple[float, float, float]:
    if not (np.isfinite(est) and np.isfinite(se) and se > 0 and df > 0):
        return _NAN, _NAN, _NAN
    half = float(stats.t_critical(conf, df)) * se
    p = float(2.0 * _sp.t.sf(abs(est / se), df))
    return est - half, est + half, p


def _units(sub: pd.DataFrame) -> pd.DataFrame:
    unit = sub["touchpoint"].astype(str) + "\x00" + sub["region"].astype(object).fillna("\x00")
    return sub.assign(_u=unit.to_numpy())


def _raw_means(d: pd.DataFrame, n: str, s: str) -> tuple[float, float, float, float]:
    """Treated pre / window means and counts (all treated records)."""
    t = d[d["_t"]]
    pre, win = t[~t["_w"]], t[t["_w"]]
    with np.errstate(all="ignore"):
        m0 = pre[s].sum() / pre[n].sum() if pre[n].sum() > 0 else _NAN
        m1 = win[s].sum() / win[n].sum() if win[n].sum() > 0 else _NAN
    return float(m0), float(m1), float(pre[n].sum()), float(win[n].sum())


def did(sub: pd.DataFrame, n: str, s: str, ss: str, conf: float) -> Effect:
    """Difference in differences from day × unit sums (rows flagged ``_t`` treated, ``_w``
    window); see the module notes. Pure."""
    d = _units(sub[sub[n] > 0])
    m0, m1, nt0, nt1 = _raw_means(d, n, s)
    nc = d[~d["_t"]]
    ncp, ncw = float(nc.loc[~nc["_w"], n].sum()), float(nc.loc[nc["_w"], n].sum())
    empty = Effect(_NAN, _NAN, _NAN, _NAN, _NAN, nt1, nt0, ncw, ncp, m0, m1)
    if d.empty:
        return empty
    g = d.groupby(["_u", "_t", "_w"], sort=False)[[n, s, ss]].sum().reset_index()
    w1, w0 = g[g["_w"]].set_index("_u"), g[~g["_w"]].set_index("_u")
    both = w1.index.intersection(w0.index)
    if len(both) == 0:
        return empty
    u = pd.DataFrame(
        {
            "t": w1.loc[both, "_t"].astype(bool),
            "N1": w1.loc[both, n].astype(float),
            "S1": w1.loc[both, s].astype(float),
            "Q1": w1.loc[both, ss].astype(float),
            "N0": w0.loc[both, n].astype(float),
            "S0": w0.loc[both, s].astype(float),
            "Q0": w0.loc[both, ss].astype(float),
        }
    )
    if not (u["t"].any() and (~u["t"]).any()):
        return empty
    u["delta"] = u["S1"] / u["N1"] - u["S0"] / u["N0"]
    u["w"] = 1.0 / (1.0 / u["N0"] + 1.0 / u["N1"])
    u["a"] = np.where(u["t"], 1.0, -1.0) * u["w"] / u.groupby("t")["w"].transform("sum")
    est = float((u["a"] * u["delta"]).sum())
    v_iid = 0.0
    for flag in (True, False):
        gu = u[u["t"] == flag]
        for ph in ("0", "1"):
            dof = float((gu[f"N{ph}"] - 1.0).clip(lower=0).sum())
            within = float((gu[f"Q{ph}"] - gu[f"S{ph}"] ** 2 / gu[f"N{ph}"]).sum())
            var = max(within, 0.0) / dof if dof > 0 else _NAN
            v_iid += float((gu["a"] ** 2 / gu[f"N{ph}"]).sum()) * var
    # cluster-robust by day: influence of each day's records on the estimate
    rows = d[d["_u"].isin(both)]
    mean_ph = np.where(
        rows["_w"],
        (u["S1"] / u["N1"]).reindex(rows["_u"]).to_numpy(),
        (u["S0"] / u["N0"]).reindex(rows["_u"]).to_numpy(),
    )
    size = np.where(
        rows["_w"], u["N1"].reindex(rows["_u"]).to_numpy(), -u["N0"].reindex(rows["_u"]).to_numpy()
    )
    a = u["a"].reindex(rows["_u"]).to_numpy()
    infl = a / size * (rows[s].to_numpy(float) - rows[n].to_numpy(float) * mean_ph)
    psi = pd.Series(infl).groupby(rows["day"].to_numpy()).sum()
    n_days = len(psi)
    v_cr = n_days / (n_days - 1.0) * float((psi**2).sum()) if n_days > 1 else _NAN
    se = float(np.sqrt(np.nanmax([v_iid, v_cr])))
    low, high, p = _t_effect(est, se, n_days - 1.0, conf)
    return Effect(est, se, low, high, p, nt1, nt0, ncw, ncp, m0, m1)


def its(sub: pd.DataFrame, n: str, s: str, ss: str, conf: float) -> Effect:
    """Interrupted time series on the treated units' daily means (within-unit deviations):
    weighted least squares of ``y_d = a + b·t + c·window``, ``c`` the effect; SE the larger of
    the classical and the HC1 sandwich one, t with ``G − 3`` df. Pure."""
    d = _units(sub[(sub[n] > 0) & sub["_t"]])
    m0, m1, nt0, nt1 = _raw_means(d, n, s)
    empty = Effect(_NAN, _NAN, _NAN, _NAN, _NAN, nt1, nt0, 0.0, 0.0, m0, m1)
    if d.empty or d["_w"].all() or not d["_w"].any():
        return empty
    unit_mean = d.groupby("_u")[s].transform("sum") / d.groupby("_u")[n].transform("sum")
    dev = d[s].to_numpy(float) - d[n].to_numpy(float) * unit_mean.to_numpy()
    day = pd.DataFrame({"day": d["day"], "n": d[n].astype(float), "dev": dev, "w": d["_w"]})
    day = day.groupby("day").agg(n=("n", "sum"), dev=("dev", "sum"), w=("w", "first"))
    k = len(day)
    if k < 4:
        return empty
    y = (day["dev"] / day["n"]).to_numpy()
    t = ((day.index - day.index.min()) / DAY).to_numpy(float)
    x = np.column_stack([np.ones(k), (t - t.mean()) / max(t.std(), 1.0), day["w"].astype(float)])
    wt = day["n"].to_numpy()
    xtwx_inv = np.linalg.pinv(x.T @ (x * wt[:, None]))
    beta = xtwx_inv @ (x.T @ (wt * y))
    r = y - x @ beta
    sigma2 = float((wt * r * r).sum() / (k - 3))
    v_classic = sigma2 * xtwx_inv[2, 2]
    score = x * (wt * r)[:, None]
    meat = score.T @ score
    v_hc1 = float((xtwx_inv @ meat @ xtwx_inv)[2, 2]) * k / (k - 3)
    se = float(np.sqrt(max(v_classic, v_hc1)))
    est = float(beta[2])
    low, high, p = _t_effect(est, se, k - 3.0, conf)
    return Effect(est, se, low, high, p, nt1, nt0, 0.0, 0.0, m0, m1)


def proportion_did(counts: dict[str, float], before_after: bool, conf: float) -> Effect:
    """``(p_T,window − p_T,pre) − (p_C,window − p_C,pre)`` of churn shares (or the treated change
    alone when ``before_after``), binomial variances, normal interval and z-test. Pure."""

    def share(key: str) -> tuple[float, float]:
        k = counts.get(f"persons_{key}", 0.0)
        return (counts.get(f"churned_{key}", 0.0) / k if k > 0 else _NAN), k

    (pt1, nt1), (pt0, nt0) = share("T1"), share("T0")
    (pc1, nc1), (pc0, nc0) = share("C1"), share("C0")
    parts = [(pt1, nt1), (pt0, nt0)] + ([] if before_after else [(pc1, nc1), (pc0, nc0)])
    est = pt1 - pt0 - (0.0 if before_after else pc1 - pc0)
    with np.errstate(all="ignore"):
        var = sum(p * (1.0 - p) / k if k > 0 else _NAN for p, k in parts)
    se = float(np.sqrt(var)) if np.isfinite(var) and var > 0 else _NAN
    if np.isfinite(est) and np.isfinite(se):
        z = stats.z_critical(conf)
        low, high, p = est - z * se, est + z * se, float(2.0 * _sp.norm.sf(abs(est / se)))
    else:
        low = high = p = _NAN
    return Effect(float(est), se, low, high, p, nt1, nt0, nc1, nc0, pt0, pt1)


def benjamini_hochberg(p: Any) -> np.ndarray:
    """Benjamini & Hochberg (1995) adjusted p-values (q-values); NaN stays NaN and is not
    counted. Matches ``statsmodels.stats.multitest.multipletests(p, method="fdr_bh")``."""
    arr = np.asarray(pd.Series(p, dtype=float), dtype=float)
    out = np.full(arr.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(arr))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(arr[ok], kind="mergesort")]
    ranked = arr[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return out


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


Market = tuple[str, pd.Timestamp, tuple[str, ...]]


def _market_events(source: Source) -> list[Market]:
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
        n_gap=t.count(where=rated),
        sum_gap=gap.sum(where=rated),
        sumsq_gap=(gap * gap).sum(where=rated),
        n_exp=t.count(),
        n_complaint=t.count(where=t.experience <= COMPLAINT_MAX),
    )
    df = expr.to_pyarrow().to_pandas()
    for c in ("sum_gap", "sumsq_gap"):
        df[c] = df[c].astype(float).fillna(0.0)
    df["day"] = as_utc(df["day"])
    df["n_complaint_sq"] = df["n_complaint"].astype(float)
    return df


def interaction_cells(source: Source) -> pd.DataFrame:
    """Interactions per UTC day × touch point × region (``n_interactions``)."""
    i = get_table(source, "interactions")
    pe = get_table(source, "people").select("person_id", "region")
    pe = pe.select(_pe_id=pe.person_id, _pe_region=pe.region)
    j = i.left_join(pe, i.person_id == pe._pe_id)
    j = j.select(day=i.occurred_at.truncate("D"), touchpoint=i.touchpoint, region=pe._pe_region)
    expr = j.group_by("day", "touchpoint", "region").aggregate(n_interactions=j.count())
    df = expr.to_pyarrow().to_pandas()
    df["day"] = as_utc(df["day"])
    return df


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
    """The event's window and pre-window in whole UTC days (see the module notes)."""
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


def _masks(
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


def _phase(cells: pd.DataFrame, span: Span) -> tuple[np.ndarray, np.ndarray]:
    day = cells["day"]
    inside = ((day >= span.pre_start) & (day < span.end)).to_numpy()
    return inside, (day >= span.start).to_numpy()


def _context(
    event: Event,
    scope: Scope,
    span: Span,
    events: Sequence[Event],
    market: Sequence[Market],
    data_end: pd.Timestamp,
) -> tuple[Span, list[tuple[Sequence[str] | None, str | None]], list[str]]:
    """What else happened around an event (see the module notes): the span, its pre-window cut
    back to start after any confounding event that ended (or market event that happened) inside
    it; the (touch points, region) of other events whose units are therefore no control; and the
    ids of confounding events during the window (``overlapping``).

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


def _churn(
    source: Source,
    scope: Scope,
    span: Span,
    others: Sequence[tuple[Sequence[str] | None, str | None]],
    data_end: pd.Timestamp,
) -> dict[str, float]:
    """Customers exposed (first interaction in the treated/control units, per phase) and how many
    cancelled within the horizon; customers whose horizon passes the end of data are left out."""
    horizon = pd.Timedelta(days=CHURN_HORIZON_DAYS)
    i = get_table(source, "interactions")
    pe = get_table(source, "people")
    pe = pe.select(_pe_id=pe.person_id, _pe_region=pe.region, _pe_kind=pe.kind)
    j = i.left_join(pe, i.person_id == pe._pe_id)
    j = j.select(
        person_id=i.person_id,
        at=i.occurred_at,
        touchpoint=i.touchpoint,
        region=pe._pe_region,
        kind=pe._pe_kind,
    )
    j = j.filter(
        j.kind == "customer",
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
    first = j.group_by("person_id", "grp", "during").aggregate(first_at=j.at.min())
    last_ok = (data_end - horizon).to_pydatetime()
    first = first.filter(first.first_at < ibis.literal(last_ok))
    c = get_table(source, "interactions")
    c = c.filter(c.outcome == "cancel").select(_c_person=c.person_id, _c_at=c.occurred_at)
    hit = first.left_join(
        c,
        (first.person_id == c._c_person)
        & (c._c_at >= first.first_at)
        & (c._c_at < first.first_at + ibis.interval(days=CHURN_HORIZON_DAYS)),
    )
    hit = hit.select(
        person_id=first.person_id, grp=first.grp, during=first.during, cancel=c._c_person
    )
    per = hit.group_by("person_id", "grp", "during").aggregate(churned=hit.cancel.count())
    agg = per.group_by("grp", "during").aggregate(
        persons=per.count(), churned=per.count(where=per.churned > 0)
    )
    df = agg.to_pyarrow().to_pandas()
    out: dict[str, float] = {}
    for r in df.itertuples(index=False):
        key = f"{r.grp}{'1' if r.during else '0'}"
        out[f"persons_{key}"] = float(r.persons)
        out[f"churned_{key}"] = float(r.churned)
    return out


def ripple_table(
    source: Source,
    *,
    department: Sequence[str] | str | None = None,
    event: Sequence[str] | str | None = None,
    since: TimeLike = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    alpha: float = 0.05,
    churn: bool = True,
) -> AnalyticsResult:
    """One row per operational event (started in ``[since, until)``, of ``department`` /
    ``event`` ids when given) with its effect on gap, complaint share and churn; columns in
    :data:`COLUMNS`. BH q-values are computed over the events shown. ``churn=False`` skips the
    per-event churn query (one engine query per event)."""
    conf = check_confidence(confidence)
    if not 0.0 < float(alpha) < 1.0:
        raise AnalyticsQueryError(f"alpha must lie between 0 and 1 (e.g. 0.05), got {alpha!r}")
    lo, hi = check_time(since, "since"), check_time(until, "until")
    events = load_events(source)
    chosen = _choose(events, department, event, lo, hi)
    frame = _empty()
    if chosen:
        frame = _estimate(source, events, chosen, conf, float(alpha), churn)
    n = int(frame["n_treated"].sum() + frame["n_control"].sum()) if len(frame) else 0
    return AnalyticsResult(
        frame=frame,
        n=n,
        confidence=conf,
        method=METHOD,
        query={
            "department": _listed(department),
            "event": _listed(event),
            "since": lo.isoformat() if lo else None,
            "until": hi.isoformat() if hi else None,
            "alpha": float(alpha),
            "complaint_max_experience": COMPLAINT_MAX,
            "churn_horizon_days": CHURN_HORIZON_DAYS if churn else None,
        },
    )


def _listed(v: Sequence[str] | str | None) -> list[str] | None:
    return None if v is None else ([v] if isinstance(v, str) else list(v))


def _choose(
    events: list[Event],
    department: Sequence[str] | str | None,
    event: Sequence[str] | str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[Event]:
    depts, ids = _listed(department), _listed(event)
    if ids is not None:
        unknown = sorted(set(ids) - {e.event_id for e in events})
        if unknown:
            raise AnalyticsQueryError(
                f"unknown operational event {unknown[0]!r}; list them with `corridor ripple`"
            )
    return [
        e
        for e in events
        if (depts is None or e.department in depts)
        and (ids is None or e.event_id in ids)
        and (since is None or e.start >= since)
        and (until is None or e.start < until)
    ]


COLUMNS: tuple[str, ...] = (
    "event_id", "department", "kind", "started_at", "ended_at", "region", "touchpoints",
    "scope", "design", "window_days", "pre_days", "control_units", "overlapping",
    "affected_interactions", "n_treated", "n_treated_pre", "n_control", "n_control_pre",
    "mean_gap_pre", "mean_gap_window",
    "effect_gap", "effect_gap_low", "effect_gap_high", "se_gap", "p_value_gap", "q_value_gap",
    "complaint_share_pre", "complaint_share_window",
    "effect_complaint", "effect_complaint_low", "effect_complaint_high", "p_value_complaint",
    "q_value_complaint",
    "n_exposed", "churn_share_pre", "churn_share_window",
    "effect_churn", "effect_churn_low", "effect_churn_high", "p_value_churn", "q_value_churn",
    "significant", "direction", "note",
)  # fmt: skip


def _enough(res: Effect, with_control: bool) -> Effect:
    """``res`` without its estimate when the treated (or control) units have fewer than
    :data:`MIN_RECORDS` records in the window or the pre-window."""
    counts = [res.n_treated, res.n_treated_pre]
    if with_control:
        counts += [res.n_control, res.n_control_pre]
    if min(counts) >= MIN_RECORDS:
        return res
    return res._replace(effect=_NAN, se=_NAN, low=_NAN, high=_NAN, p_value=_NAN)


def _note(row: dict[str, Any], scope: Scope, overlapping: Sequence[str]) -> str | None:
    notes = []
    if min(row["n_treated"], row["n_treated_pre"]) < MIN_RECORDS:
        notes.append(f"fewer than {MIN_RECORDS} rated records in the window or pre-window")
    elif scope.design != "its" and min(row["n_control"], row["n_control_pre"]) < MIN_RECORDS:
        notes.append("no comparable untouched units with enough records")
    if overlapping:
        notes.append(f"other events on the same units: {', '.join(overlapping)}")
    if scope.source != "event":
        notes.append(f"touch points taken from the {scope.source} (the event names none)")
    return "; ".join(notes) or None


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})


def _estimate(
    source: Source,
    events: list[Event],
    chosen: list[Event],
    conf: float,
    alpha: float,
    churn: bool,
) -> pd.DataFrame:
    cells = feedback_cells(source)
    icells = interaction_cells(source)
    market = _market_events(source)
    tp = get_table(source, "touchpoints").select("key", "department").to_pyarrow().to_pandas()
    all_tps = tuple(tp["key"])
    owned = tp.groupby("department")["key"].apply(tuple).to_dict()
    data_end = (cells["day"].max() + DAY) if len(cells) else pd.Timestamp.now(tz="UTC")
    rows = []
    for ev in chosen:
        scope = scope_of(ev, owned, all_tps)
        span, others, overlapping = _context(
            ev, scope, span_of(ev, data_end), events, market, data_end
        )
        inside, during = _phase(cells, span)
        treated, control = _masks(cells, scope, others)
        row: dict[str, Any] = {
            "event_id": ev.event_id,
            "department": ev.department,
            "kind": ev.kind,
            "started_at": ev.start.to_pydatetime(),
            "ended_at": None if ev.end is None else ev.end.to_pydatetime(),
            "region": ev.region,
            "touchpoints": ";".join(scope.touchpoints),
            "scope": scope.source,
            "design": scope.design,
            "window_days": span.window_days,
            "pre_days": span.pre_days,
            "overlapping": ";".join(overlapping) or None,
        }
        sub = cells[inside & (treated | control)].assign(
            _t=treated[inside & (treated | control)],
            _w=during[inside & (treated | control)],
        )
        row["control_units"] = int(
            sub.loc[~sub["_t"], ["touchpoint", "region"]].drop_duplicates().shape[0]
        )
        ii, iw = _phase(icells, span)
        it, _ = _masks(icells, scope, [])
        row["affected_interactions"] = int(icells.loc[ii & iw & it, "n_interactions"].sum())
        estimator = its if scope.design == "its" else did
        for name, cols in (
            ("gap", ("n_gap", "sum_gap", "sumsq_gap")),
            ("complaint", ("n_exp", "n_complaint", "n_complaint_sq")),
        ):
            res = _enough(estimator(sub, *cols, conf), scope.design != "its")
            row[f"effect_{name}"] = res.effect
            row[f"effect_{name}_low"] = res.low
            row[f"effect_{name}_high"] = res.high
            row[f"p_value_{name}"] = res.p_value
            if name == "gap":
                row["se_gap"] = res.se
                row.update(
                    n_treated=res.n_treated,
                    n_treated_pre=res.n_treated_pre,
                    n_control=res.n_control,
                    n_control_pre=res.n_control_pre,
                    mean_gap_pre=res.mean_pre,
                    mean_gap_window=res.mean_window,
                )
            else:
                row["complaint_share_pre"] = res.mean_pre
                row["complaint_share_window"] = res.mean_window
        if churn:
            counts = _churn(source, scope, span, others, data_end)
            res_c = _enough(proportion_did(counts, scope.design == "its", conf), False)
            row.update(
                n_exposed=res_c.n_treated,
                churn_share_pre=res_c.mean_pre,
                churn_share_window=res_c.mean_window,
                effect_churn=res_c.effect,
                effect_churn_low=res_c.low,
                effect_churn_high=res_c.high,
                p_value_churn=res_c.p_value,
            )
        row["note"] = _note(row, scope, overlapping)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for name in MEASURES:
        p = frame.get(f"p_value_{name}")
        frame[f"q_value_{name}"] = benjamini_hochberg(p) if p is not None else np.nan
    sig = frame["q_value_gap"] < alpha
    frame["significant"] = sig.fillna(False).astype(bool)
    harm = np.where(frame["effect_gap"].to_numpy(float) < 0, "harmful", "helpful")
    frame["direction"] = pd.Series(harm, dtype=object).where(frame["significant"].to_numpy())
    for c in COLUMNS:
        if c not in frame.columns:
            frame[c] = np.nan
    for c in ("n_treated", "n_treated_pre", "n_control", "n_control_pre", "n_exposed"):
        frame[c] = pd.to_numeric(frame[c]).round().astype("Int64")
    return frame[list(COLUMNS)].reset_index(drop=True)


def department_impact(
    source: Source,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    alpha: float = 0.05,
    churn: bool = True,
    ripples: AnalyticsResult | None = None,
) -> AnalyticsResult:
    """Departments ranked by customer impact (see the module notes); pass an already computed
    :func:`ripple_table` as ``ripples`` to avoid computing it again."""
    conf = check_confidence(confidence)
    res = ripples or ripple_table(
        source, since=since, until=until, confidence=conf, alpha=alpha, churn=churn
    )
    frame = summarise_impact(res.frame, conf)
    return AnalyticsResult(
        frame=frame,
        n=res.n,
        confidence=conf,
        method=(
            "impact = Σ over a department's significant events (BH q < alpha) of effect_gap × "
            "affected interactions, interval from Σ (SE × interactions)²; excess churned = "
            "Σ over its events of effect_churn × exposed customers; " + res.method
        ),
        query=res.query,
    )


def summarise_impact(ripples: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Department rows from a :func:`ripple_table` frame. Pure."""
    z = stats.z_critical(confidence)
    cols = [
        "department", "events", "significant_events", "harmful_events", "helpful_events",
        "affected_interactions", "impact", "impact_low", "impact_high",
        "excess_churned", "excess_churned_low", "excess_churned_high", "worst_event", "rank",
    ]  # fmt: skip
    if ripples.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    rows = []
    for dept, g in ripples.groupby("department", sort=True):
        sig = g[g["significant"].astype(bool)]
        n = sig["affected_interactions"].astype(float)
        impact = float((sig["effect_gap"].astype(float) * n).sum())
        se = float(np.sqrt(((sig["se_gap"].astype(float) * n) ** 2).sum()))
        ch = g.dropna(subset=["effect_churn"]) if "effect_churn" in g else g.iloc[:0]
        exp_n = ch["n_exposed"].astype(float)
        excess = float((ch["effect_churn"].astype(float) * exp_n).sum()) if len(ch) else np.nan
        half = ((ch["effect_churn_high"] - ch["effect_churn_low"]).astype(float) / 2.0) * exp_n
        ch_se = float(np.sqrt(((half / z) ** 2).sum())) if len(ch) else np.nan
        worst = sig.sort_values("effect_gap").iloc[0]["event_id"] if len(sig) else None
        rows.append(
            {
                "department": dept,
                "events": len(g),
                "significant_events": len(sig),
                "harmful_events": int((sig["effect_gap"] < 0).sum()),
                "helpful_events": int((sig["effect_gap"] > 0).sum()),
                "affected_interactions": int(g["affected_interactions"].sum()),
                "impact": impact,
                "impact_low": impact - z * se,
                "impact_high": impact + z * se,
                "excess_churned": excess,
                "excess_churned_low": excess - z * ch_se,
                "excess_churned_high": excess + z * ch_se,
                "worst_event": worst,
            }
        )
    out = pd.DataFrame(rows).sort_values(["impact", "department"], kind="mergesort")
    out["rank"] = np.arange(1, len(out) + 1)
    return out[cols].reset_index(drop=True)


__all__ = [
    "CHURN_HORIZON_DAYS",
    "COLUMNS",
    "COMPLAINT_MAX",
    "department_impact",
    "feedback_cells",
    "interaction_cells",
    "load_events",
    "ripple_table",
    "span_of",
    "summarise_impact",
]
