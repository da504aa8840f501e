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
open-ended event: :data:`~corridor.analytics.attribution.ripple_events.OPEN_DAYS` days, or to the
end of the data). The *pre-window* is the same length just before it, at least
:data:`~corridor.analytics.attribution.ripple_events.MIN_PRE_DAYS` and at most
:data:`~corridor.analytics.attribution.ripple_events.MAX_PRE_DAYS` days. Feedback is placed at the
time of the interaction it is about (its own time when it names none).

**Against what** (``design``):

* ``did-regions`` — a regional event: the same touch points in the other regions;
* ``did-touchpoints`` — an event everywhere: the other touch points, in every region;
* ``its`` — an event on the whole corridor everywhere has no untouched comparison: interrupted
  time series on daily means (segmented regression with a common linear trend and a level change
  at the start; Bernal, Cummins & Gasparrini 2017).

Control units (touch point × region) named by *another* operational event, or by a market event,
whose window overlaps the event's pre-window or window are left out; other events touching the
event's own units in that span are listed in ``overlapping``.

**Estimator.** Difference in differences with unit fixed effects, precision weights and a
day-clustered standard error (notes in :mod:`corridor.analytics.estimators.ripple_estimators`;
events and cells in :mod:`corridor.analytics.attribution.ripple_events`). p-values are adjusted over
all events per measure by Benjamini & Hochberg (1995) (``q_value_…``); an event is ``significant``
when ``q_value_gap < alpha``.

**Department impact** (:func:`department_impact`): per department, the sum over its significant
events of ``effect_gap × affected interactions`` (gap points × interactions in the event's units
and window; negative = harm), with an interval from the events' standard errors, plus the excess
churned customers ``Σ effect_churn × exposed customers`` over all its events; ranked most harmful
first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from corridor.analytics.attribution.ripple_events import (
    CHURN_HORIZON_DAYS,
    COMPLAINT_MAX,
    Event,
    Others,
    Scope,
    Span,
    churn_counts_of,
    event_context,
    feedback_cells,
    interaction_cells,
    load_events,
    market_events,
    phase_masks,
    scope_of,
    span_of,
    unit_masks,
)
from corridor.analytics.core import dimensions as dims
from corridor.analytics.core.dimensions import Source, TimeLike
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.registry import Analysis, Param, register
from corridor.analytics.core.result import AnalyticsResult, put_interval
from corridor.analytics.core.result_columns import columns
from corridor.analytics.core.scoping import ScopeRule, sees_row_operations
from corridor.analytics.estimators import stats
from corridor.analytics.estimators.ripple_estimators import (
    DAY,
    Effect,
    benjamini_hochberg,
    did,
    its,
    proportion_did,
    unit_keys,
)

if TYPE_CHECKING:
    from corridor.auth.scope import Scope as ViewScope

#: fewest records (customers, for churn) per group and phase for an estimate
MIN_RECORDS = 30
MEASURES = ("gap", "complaint", "churn")
_NAN = float("nan")

METHOD = (
    "difference in differences per operational event: the change from the pre-window to the "
    "event window at its touch points (and region) minus the change at untouched comparable "
    "units (other regions, else other touch points), unit fixed effects, precision weights; SE = "
    "max(independent, cluster-robust by day), t with G − 1 df; interrupted time series when "
    "nothing comparable is untouched; Benjamini–Hochberg q over events"
)


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
    churn query (one engine query for all the events, over every customer's interactions)."""
    conf = dims.check_confidence(confidence)
    if not 0.0 < float(alpha) < 1.0:
        raise AnalyticsQueryError(f"alpha must lie between 0 and 1 (e.g. 0.05), got {alpha!r}")
    lo, hi = dims.check_range(since, until)
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


#: an estimate's record counts, put on a row as they are (the gap's)
_COUNTS = ("n_treated", "n_treated_pre", "n_control", "n_control_pre")
#: the row columns of each measure's raw treated means: ``<prefix>_pre``, ``<prefix>_window``
_MEANS = {"gap": "mean_gap", "complaint": "complaint_share", "churn": "churn_share"}


def _put_effect(row: dict[str, Any], name: str, res: Effect) -> None:
    """``effect_<name>`` with its interval, ``p_value_<name>`` and the treated units' raw means
    in the pre-window and the window from an estimate."""
    put_interval(
        row,
        f"effect_{name}",
        res.effect,
        res.low,
        res.high,
        p_value=(f"p_value_{name}", res.p_value),
    )
    row[f"{_MEANS[name]}_pre"] = res.mean_pre
    row[f"{_MEANS[name]}_window"] = res.mean_window


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
    cells["_u"] = unit_keys(cells)  # the estimators' unit keys, made once for every event
    market = market_events(source)
    tp = dims.get_table(source, "touchpoints").select("key", "department").to_pyarrow().to_pandas()
    all_tps = tuple(tp["key"])
    owned = tp.groupby("department")["key"].apply(tuple).to_dict()
    data_end = (cells["day"].max() + DAY) if len(cells) else pd.Timestamp.now(tz="UTC")
    # affected interactions are counted in the events' windows only: no other day is read
    windows = [span_of(ev, data_end) for ev in chosen]
    icells = interaction_cells(source, [(w.start, w.end) for w in windows])
    rows = []
    contexts: list[tuple[Scope, Span, Others]] = []
    for ev in chosen:
        scope = scope_of(ev, owned, all_tps)
        span, others, overlapping = event_context(
            ev, scope, span_of(ev, data_end), events, market, data_end
        )
        inside, during = phase_masks(cells, span)
        treated, control = unit_masks(cells, scope, others)
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
        ii, iw = phase_masks(icells, span)
        it, _ = unit_masks(icells, scope, [])
        row["affected_interactions"] = int(icells.loc[ii & iw & it, "n_interactions"].sum())
        estimator = its if scope.design == "its" else did
        for name, cols in (
            ("gap", ("n_gap", "sum_gap", "sumsq_gap")),
            ("complaint", ("n_exp", "n_complaint", "n_complaint_sq")),
        ):
            res = _enough(estimator(sub, *cols, conf), scope.design != "its")
            _put_effect(row, name, res)
            if name == "gap":
                row["se_gap"] = res.se
                row.update({c: getattr(res, c) for c in _COUNTS})
        row["note"] = _note(row, scope, overlapping)
        rows.append(row)
        contexts.append((scope, span, others))
    if churn:
        # every event's churn counts in one engine query
        for row, (scope, _, _), counts in zip(
            rows, contexts, churn_counts_of(source, contexts, data_end), strict=True
        ):
            res_c = _enough(proportion_did(counts, scope.design == "its", conf), False)
            row["n_exposed"] = res_c.n_treated
            _put_effect(row, "churn", res_c)
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
    for c in (*_COUNTS, "n_exposed"):
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
    conf = dims.check_confidence(confidence)
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
    "COLUMNS",
    "COMPLAINT_MAX",
    "benjamini_hochberg",
    "department_impact",
    "ripple_table",
    "summarise_impact",
]


# -- declarations --------------------------------------------------------------------------------


def _own_departments(scope: ViewScope, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A department head's ``department`` is their own: asking for another is refused (403)."""
    if scope.departments is None:
        return kwargs
    asked = kwargs.get("department")
    scope.restrict({"department": asked} if asked else None)  # 403 outside the scope
    return {**kwargs, "department": sorted(scope.departments)}


def _own_impact(scope: ViewScope, run: Callable[..., Any]) -> Callable[..., Any]:
    """A department head's impact comes from their own department's events only, so its n,
    q-values and rank hold nothing of other departments (the rank is 1 of 1: dropped)."""
    if scope.departments is None:
        return run
    departments = sorted(scope.departments)

    def own_impact(source: Source, **params: Any) -> AnalyticsResult:
        ripples = ripple_table(source, department=departments, **params)
        res = department_impact(source, ripples=ripples, confidence=params["confidence"])
        return replace(res, frame=res.frame.drop(columns=["rank"], errors="ignore"))

    return own_impact


ALPHA = Param(
    "alpha", "float", 0.05,
    "false discovery rate: an event is significant when its gap q-value is below it (0 "
    "itself is refused)",
    ge=0.0, lt=1.0,
)  # fmt: skip
CHURN = Param("churn", "bool", True, "estimate churn effects (false skips the churn query)")

RIPPLE_COLUMNS = columns(
    "event_id:str kind:str started_at:time ended_at:time touchpoints:str scope:str design:str "
    "window_days:int pre_days:int control_units:int overlapping:str affected_interactions:int "
    "n_treated:int n_treated_pre:int n_control:int n_control_pre:int mean_gap_pre "
    "mean_gap_window effect_gap effect_gap_low effect_gap_high se_gap p_value_gap q_value_gap "
    "complaint_share_pre complaint_share_window effect_complaint effect_complaint_low "
    "effect_complaint_high p_value_complaint q_value_complaint n_exposed:int churn_share_pre "
    "churn_share_window effect_churn effect_churn_low effect_churn_high p_value_churn "
    "q_value_churn significant:bool direction:str note:str",
    event_id="the operational event",
    kind="its kind",
    started_at="its start (UTC)",
    ended_at="its end (UTC; missing when open-ended)",
    touchpoints="touch points it acts on, ;-joined",
    scope="where they come from: event, department (the touch points it owns) or corridor",
    design="did-regions, did-touchpoints or its (interrupted time series)",
    window_days="days in the event window",
    pre_days="days in the pre-window",
    control_units="comparable untouched units (touch point × region)",
    overlapping="other events on the same units in that span, ;-joined",
    affected_interactions="interactions at its units in the window",
    n_treated="rated records at its units in the window",
    n_treated_pre="rated records at its units in the pre-window",
    n_control="rated records at comparable units in the window",
    n_control_pre="rated records at comparable units in the pre-window",
    mean_gap_pre="mean gap at its units in the pre-window",
    mean_gap_window="mean gap at its units in the window",
    effect_gap="effect on the gap: difference in differences (window − pre-window, its units "
    "− comparable ones)",
    se_gap="standard error of effect_gap",
    p_value_gap="p-value of effect_gap",
    q_value_gap="Benjamini–Hochberg q-value of effect_gap over the events",
    complaint_share_pre="share of complaints (experience ≤ 4) at its units, pre-window",
    complaint_share_window="share of complaints at its units, window",
    effect_complaint="effect on the complaint share (difference in differences)",
    p_value_complaint="p-value of effect_complaint",
    q_value_complaint="Benjamini–Hochberg q-value of effect_complaint over the events",
    n_exposed="customers with an interaction at its units in the window",
    churn_share_pre="share of exposed customers who cancel, pre-window",
    churn_share_window="share of exposed customers who cancel, window",
    effect_churn="effect on churn (difference in differences of shares)",
    p_value_churn="p-value of effect_churn",
    q_value_churn="Benjamini–Hochberg q-value of effect_churn over the events",
    significant="q_value_gap below alpha",
    direction="harmful or helpful, when significant",
    note="why an estimate is missing, or what to read it with",
)

register(
    Analysis(
        "ripple",
        "Ripple effects of operational events",
        ripple_table,
        path="/ripple",
        command=("ripple",),
        tag="attribution",
        description="Per operational event: its effect on the gap, complaint share and churn "
        "at the touch points (and region) it may affect, by difference in differences against "
        "untouched comparable units (interrupted time series when there are none), with "
        "intervals, p-values and Benjamini–Hochberg q-values. `since`/`until` select events by "
        "their start.",
        filters=(),
        params=(
            Param("department", "list", None, "only these departments' events"),
            Param("event", "list", None, "only these events (operational event ids)"),
            ALPHA,
            CHURN,
        ),
        columns=RIPPLE_COLUMNS,
        brief=(
            "event_id", "n_treated", "effect_gap", "effect_gap_low",
            "effect_gap_high", "q_value_gap", "effect_churn", "direction",
        ),
        scope=ScopeRule(
            restrict_filters=False,
            prepare=_own_departments,
            keep=sees_row_operations,
            recount=("n_treated", "n_control"),
            note="a department head's department is forced (another is refused); rows of "
            "other departments' events dropped (a partner manager sees none); n counts the "
            "rows shown",
        ),
    )
)  # fmt: skip

register(
    Analysis(
        "department_impact",
        "Departments by customer impact",
        department_impact,
        path="/departments/impact",
        command=("impact",),
        tag="attribution",
        description="Departments ranked by customer impact: the sum over their significant "
        "events of effect on the gap × affected interactions (with an interval), and excess "
        "churned customers. `since`/`until` select events by their start.",
        filters=(),
        params=(ALPHA, CHURN),
        columns=columns(
            "events:int significant_events:int harmful_events:int helpful_events:int "
            "affected_interactions:int impact impact_low impact_high excess_churned "
            "excess_churned_low excess_churned_high worst_event:str rank:int",
            events="its operational events",
            significant_events="those with q_value_gap below alpha",
            harmful_events="significant events that widened the gap",
            helpful_events="significant events that narrowed it",
            affected_interactions="interactions at its events' units in their windows",
            impact="Σ effect_gap × affected interactions over its significant events "
            "(negative: harm)",
            excess_churned="Σ effect_churn × exposed customers over its events",
            worst_event="its significant event with the lowest effect on the gap",
            rank="1 = most harmful (not shown to a department head)",
        ),
        brief=(
            "rank", "events", "significant_events", "affected_interactions",
            "impact", "impact_low", "impact_high", "excess_churned", "worst_event",
        ),
        scope=ScopeRule(
            restrict_filters=False,
            rerun=_own_impact,
            keep=sees_row_operations,
            recount=(),
            note="a department head's impact comes from their own department's events only "
            "(no rank); a partner manager sees no departments",
        ),
    )
)  # fmt: skip
