"""Churn: how long customers stay, what shortens it, and who is at risk now.

* :func:`survival_table` — Kaplan–Meier retention curves by segment (or region, or none) read
  at monthly milestones, with log-log intervals, and the log-rank test across the groups.
* :func:`cox_table` — Cox proportional hazards of churn on each touch point's mean gap
  (experience − expectation): hazard ratios per point of gap with intervals and p-values,
  concordance, and a proportional-hazards check per covariate.
* :func:`risk_table` / :func:`person_risk` — each active customer's probability of churning
  within the next months, with the reasons that raise it most
  (:mod:`corridor.analytics.customers.churn_risk`).

Who counts as a customer, what churn is and how time is measured:
:mod:`corridor.analytics.customers.churn_people`. Formulas and references:
``docs/churn-and-lifetime.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from corridor.analytics.core.dimensions import Filters, Source, TimeLike, check_confidence
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.registry import Analysis, Param, by_param, register
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.core.result_columns import described
from corridor.analytics.core.scoping import ScopeRule, own_touchpoints
from corridor.analytics.customers.churn_people import (
    ALLOWED_FILTERS,
    FILTERS_NOTE,
    PERSON_FILTERS,
    CustomerTable,
    customer_table,
    months_between,
)
from corridor.analytics.estimators.survival import CoxPH, kaplan_meier, log_rank, survival_at

#: months at which retention curves are read
MILESTONES: tuple[float, ...] = (1, 3, 6, 12, 18, 24, 36, 48, 60)
#: touch points need this many rated customers to enter the Cox model
MIN_RATED = 30

KM_METHOD = (
    "Kaplan–Meier product-limit estimate of the share of customers still customers t months "
    "after they started (churn = first interaction with outcome 'cancel'; others censored at "
    "the as-of time; customers who started before the data begins enter at its first day), "
    "Greenwood variance, log-log pointwise intervals; log-rank (Mantel–Haenszel) test that "
    "every group has the same curve"
)
COX_METHOD = (
    "Cox proportional hazards (partial likelihood, Efron ties, delayed entry) of churn on "
    "each touch point's latest gap per customer as a time-varying covariate (experience − "
    "expectation of the customer's most recent rating there, centred on the touch point's "
    "mean; the mean before the first rating); hazard ratio per point of gap with Wald "
    "intervals; Harrell's C on each customer's final covariates; Grambsch–Therneau test of "
    "proportional hazards (KM time scale)"
)


@dataclass(frozen=True, eq=False)
class SurvivalResult(AnalyticsResult):
    """Retention curves per group, read at :data:`MILESTONES` months.

    ``frame`` columns: the grouping (when ``by``), ``month``, ``customers`` (in the group),
    ``at_risk`` (still customers and observed at that month), ``churned`` (churn events up to
    it), ``survival`` (share still a customer), ``survival_low``/``survival_high``. ``n`` is the
    number of customers; ``test`` the log-rank test across groups (NaN with one group);
    ``median`` the median lifetime per group where the curve crosses one half.
    """

    test: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "test": self.test}


@dataclass(frozen=True, eq=False)
class CoxResult(AnalyticsResult):
    """Cox model of churn. ``frame``: one row per covariate (``touchpoint``, ``covariate``,
    ``rated`` customers, ``coef``, ``se``, ``hazard_ratio`` with ``_low``/``_high``, ``z``,
    ``p_value``, ``ph_p_value``). ``model``: ``events``, ``concordance``, ``log_likelihood``,
    ``ph_global_p_value``."""

    model: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "model": self.model}


def _check_by(by: Sequence[str] | str | None) -> str | None:
    names = [by] if isinstance(by, str) else list(by or [])
    if not names:
        return None
    if len(names) > 1 or names[0] not in PERSON_FILTERS:
        raise AnalyticsQueryError(
            f"churn curves group by one of {', '.join(PERSON_FILTERS)} (or nothing), got "
            f"{', '.join(map(str, names))}"
        )
    return names[0]


def _query(by: str | None, filters: Filters | None, until: TimeLike, **extra: Any) -> dict:
    return {
        "by": [by] if by else [],
        "filters": {
            k: list(v) if isinstance(v, list | tuple) else [v] for k, v in (filters or {}).items()
        },
        "until": str(until) if until is not None else None,
        **extra,
    }


def survival_table(
    source: Source,
    by: Sequence[str] | str | None = ("segment",),
    filters: Filters | None = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    milestones: Sequence[float] = MILESTONES,
    table: CustomerTable | None = None,
) -> SurvivalResult:
    """Kaplan–Meier retention by ``by`` (``segment``, ``region`` or none) at ``milestones``
    months, with the log-rank test across groups."""
    conf = check_confidence(confidence)
    group = _check_by(by)
    ct = table if table is not None else customer_table(source, until, filters, gaps=False)
    people = ct.people
    keys = (
        people[group].fillna("(missing)").astype(str) if group else pd.Series("all", people.index)
    )
    rows = []
    medians: dict[str, float | None] = {}
    top = float(people["tenure"].max()) if len(people) else 0.0
    months = [m for m in milestones if m <= max(top, milestones[0])]
    for label in sorted(keys.unique()):
        sel = people[keys == label]
        curve = kaplan_meier(sel["tenure"], sel["event"], sel["entry"], conf)
        at = survival_at(curve, months)
        below = curve[curve["survival"] <= 0.5]
        medians[label] = float(below["time"].iloc[0]) if len(below) else None
        tenure = sel["tenure"].to_numpy()
        entry = sel["entry"].to_numpy()
        for m, (_, r) in zip(months, at.iterrows(), strict=True):
            row: dict[str, Any] = {group: label} if group else {}
            row.update(
                month=m,
                customers=len(sel),
                at_risk=int(((entry < m) & (tenure >= m)).sum()),
                churned=int(((sel["event"] == 1) & (tenure <= m)).sum()),
                survival=float(r["survival"]),
                survival_low=float(r["low"]),
                survival_high=float(r["high"]),
            )
            rows.append(row)
    test: dict[str, Any] = (
        log_rank(people["tenure"], people["event"], keys, people["entry"]).as_dict()
        if group and len(people)
        else {"test": "log-rank", "chi2": None, "df": 0, "p_value": None, "groups": 1}
    )
    test["median_months"] = medians
    frame = pd.DataFrame(rows)
    return SurvivalResult(
        frame=frame,
        n=len(people),
        confidence=conf,
        method=KM_METHOD,
        query=_query(group, filters, until),
        test=_plain(test),
    )


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = _plain(v)
        elif isinstance(v, float | np.floating):
            out[k] = float(v) if np.isfinite(v) else None
        elif isinstance(v, np.integer):
            out[k] = int(v)
        else:
            out[k] = v
    return out


def gap_episodes(
    ct: CustomerTable, min_rated: int = MIN_RATED, touchpoints: Sequence[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Counting-process rows for a Cox model with time-varying covariates.

    Each customer's time at risk is cut at every rating of a modelled touch point; in each
    episode ``gap:<touchpoint>`` is the customer's most recent gap there (centred on the touch
    point's mean over all ratings; 0, i.e. the mean, before the first rating). Touch points
    need ``min_rated`` rated customers (and are among ``touchpoints`` when given).

    Returns the episodes (``person_id``, ``start``, ``stop``, ``event``), the covariates (one
    row per episode) and the rated customers per modelled touch point.
    """
    people = ct.people
    if ct.rated.empty:
        return pd.DataFrame(), pd.DataFrame(), pd.Series(dtype="int64")
    rated_people = (ct.rated > 0).sum()
    cols = [str(c) for c in rated_people.index if rated_people[c] >= min_rated]
    if touchpoints is not None:
        wanted = set(touchpoints)
        cols = [c for c in cols if c in wanted]
    if not cols:
        return pd.DataFrame(), pd.DataFrame(), pd.Series(dtype="int64")
    # people are sorted by person_id (unique), so a person's row number orders like the id
    pid = people["person_id"].to_numpy()
    entry = people["entry"].to_numpy(float)
    tenure = people["tenure"].to_numpy(float)
    r = ct.ratings[ct.ratings["touchpoint"].isin(cols)]
    who = pd.Index(pid).get_indexer(r["person_id"])
    r, who = r[who >= 0], who[who >= 0]
    start = people["start"].iloc[who].reset_index(drop=True)
    t = np.maximum(months_between(start, r["occurred_at"].reset_index(drop=True)), entry[who])
    at_risk = t < tenure[who]
    r, who, t = r[at_risk], who[at_risk], t[at_risk]
    c = (r["gap"] - r["touchpoint"].map(r.groupby("touchpoint")["gap"].mean())).to_numpy(float)
    tp = pd.Index(cols).get_indexer(r["touchpoint"])
    # one row per person and time: the start of their time at risk and each rating time
    key_who = np.r_[np.arange(len(pid)), who]
    key_t = np.r_[entry, t]
    order = np.lexsort((key_t, key_who))
    fresh = np.r_[True, (np.diff(key_who[order]) != 0) | (np.diff(key_t[order]) != 0)]
    row = np.empty(len(order), np.int64)
    row[order] = np.cumsum(fresh) - 1
    first = order[fresh]
    row_who, row_t = key_who[first], key_t[first]
    n, k = len(first), len(cols)
    # each touch point's latest gap at each row: the last rating there at that time ...
    cell = tp * n + row[len(pid) :]
    last = len(cell) - 1 - np.unique(cell[::-1], return_index=True)[1]
    flat = np.full(k * n, np.nan)
    flat[cell[last]] = c[last]
    columns = flat.reshape(k, n)  # one touch point a row: contiguous
    # ... carried forward over the person's later rows, and 0 (the mean) before the first
    here = np.arange(n)
    for j in range(k):
        src = np.maximum.accumulate(np.where(np.isnan(columns[j]), -1, here))
        own = (src >= 0) & (row_who[np.maximum(src, 0)] == row_who)
        columns[j] = np.where(own, columns[j][np.maximum(src, 0)], 0.0)
    ends = np.r_[row_who[1:] != row_who[:-1], True]
    stop = np.where(ends, tenure[row_who], np.r_[row_t[1:], np.nan])
    event = people["event"].to_numpy()
    episodes = pd.DataFrame(
        {
            "person_id": pid[row_who],
            "start": row_t,
            "stop": stop,
            "event": np.where(ends, event[row_who], 0).astype("int64"),
        }
    )
    X = pd.DataFrame(columns.T, columns=cols)
    # touch points whose gap varies: two different values certainly have a standard deviation
    # above 0; pandas decides for the constant ones (its mean of equal values may be inexact)
    varies = columns.min(axis=1) != columns.max(axis=1)
    same = [c for c, v in zip(cols, varies, strict=True) if not v]
    if same:
        varies |= np.isin(cols, [str(c) for c, sd in X[same].std().items() if sd > 0])
    X = X.loc[:, varies]
    X.columns = [f"gap:{c}" for c in X.columns]
    keep = episodes["stop"] > episodes["start"]
    kept = [c.removeprefix("gap:") for c in X.columns]
    return (
        episodes[keep].reset_index(drop=True),
        X[keep].reset_index(drop=True),
        rated_people[kept],
    )


def cox_table(
    source: Source,
    filters: Filters | None = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    min_rated: int = MIN_RATED,
    touchpoints: Sequence[str] | None = None,
    table: CustomerTable | None = None,
) -> CoxResult:
    """Cox model of churn on touch-point gaps (see :data:`COX_METHOD`); rows sorted by
    p-value. Touch points need ``min_rated`` rated customers; ``touchpoints`` restricts them."""
    conf = check_confidence(confidence)
    if min_rated < 1:
        raise AnalyticsQueryError(f"min_rated must be at least 1, got {min_rated}")
    ct = table if table is not None else customer_table(source, until, filters)
    episodes, X, rated = gap_episodes(ct, min_rated, touchpoints)
    if X.shape[1] == 0:
        raise AnalyticsQueryError(
            f"no touch point has {min_rated} or more customers with rated feedback; lower "
            "min_rated or widen the filters"
        )
    model = CoxPH(confidence=conf).fit(
        episodes["stop"], episodes["event"], X, episodes["start"], episodes["person_id"]
    )
    summary = model.summary
    ph = model.ph_test()
    tps = [c.removeprefix("gap:") for c in summary["covariate"]]
    frame = pd.DataFrame({"touchpoint": tps, "rated": rated.reindex(tps).to_numpy()}).join(summary)
    frame["ph_p_value"] = ph["p_value"].iloc[:-1].to_numpy()
    frame = frame.sort_values(["p_value", "touchpoint"], kind="mergesort").reset_index(drop=True)
    info = {
        "events": model.events_,
        "episodes": model.n_,
        "concordance": model.concordance_,
        "log_likelihood": model.log_likelihood_,
        "ph_global_chi2": float(ph["chi2"].iloc[-1]),
        "ph_global_p_value": float(ph["p_value"].iloc[-1]),
        "covariates": len(tps),
    }
    return CoxResult(
        frame=frame,
        n=model.subjects_,
        confidence=conf,
        method=COX_METHOD,
        query=_query(None, filters, until, min_rated=min_rated),
        model=_plain(info),
    )


CHURN_SURVIVAL = register(
    Analysis(
        "churn_survival",
        "Retention curves (Kaplan–Meier)",
        survival_table,
        path="/churn/survival",
        command=("churn", "survival"),
        tag="churn and lifetime",
        description="Share of customers still customers 1, 3, 6, 12, 18, 24, 36, 48 and 60 "
        "months after they started, per `by` (segment — the default — or region; `by=` for "
        "none), with log-log intervals, the log-rank test across groups and each group's "
        f"median lifetime (`test`). {FILTERS_NOTE}",
        by=by_param(
            ("segment",), PERSON_FILTERS,
            "group by the customer's segment or region (one of them); an empty value for no "
            "grouping",
        ),
        filters=ALLOWED_FILTERS,
        since=False,
        columns=described(
            "month months since the customer started",
            "customers:int customers in the group",
            "at_risk:int still customers and observed at that month",
            "churned:int churn events up to that month",
            "survival± share still a customer",
        ),
        extras=("test",),
    )
)  # fmt: skip

_MIN_RATED = Param(
    "min_rated", "int", MIN_RATED,
    "customers with a rating a touch point needs to enter the model", ge=1,
)  # fmt: skip

CHURN_COX = register(
    Analysis(
        "churn_cox",
        "What drives churn (Cox model)",
        cox_table,
        path="/churn/cox",
        command=("churn", "cox"),
        tag="churn and lifetime",
        description="Cox proportional hazards of churn on each touch point's latest gap "
        "(time-varying): hazard ratio per point of gap with intervals and p-values, "
        "concordance, and a proportional-hazards check (`model`). A department head's model "
        f"reads their own touch points only. {FILTERS_NOTE}",
        filters=ALLOWED_FILTERS,
        since=False,
        params=(_MIN_RATED,),
        columns=described(
            "touchpoint:str the touch point whose gap is the covariate",
            "rated:int customers with a rating there",
            "covariate:str the model's covariate (gap:<touchpoint>)",
            "coef log hazard ratio per point of gap",
            "se its standard error",
            "hazard_ratio± hazard ratio per point of gap",
            "z Wald statistic",
            "p_value two-sided p-value",
            "ph_p_value Grambsch–Therneau test of proportional hazards",
        ),
        extras=("model",),
        brief=("rated", "hazard_ratio±", "p_value", "ph_p_value"),
        scope=ScopeRule(
            prepare=own_touchpoints,
            note="filters forced to the scope; a department head's model reads their own "
            "touch points only",
        ),
    )
)  # fmt: skip

from corridor.analytics.customers.churn_risk import RiskResult, person_risk, risk_table  # noqa: E402

__all__ = [
    "COX_METHOD",
    "KM_METHOD",
    "MILESTONES",
    "CoxResult",
    "RiskResult",
    "SurvivalResult",
    "cox_table",
    "gap_episodes",
    "person_risk",
    "risk_table",
    "survival_table",
]
