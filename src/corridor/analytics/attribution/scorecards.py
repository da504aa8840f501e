"""Partner and agent scorecards: who represents the brand well, shrunk so small samples don't lie.

Per partner (``partner_id``: the feedback's own, else its interaction's) or per agent
(``agent_id`` of the interaction):

* **adjusted gap** — the unit's effect on experience − expectation *at the same touch points*.
  For partners, a two-way model ``gap = μ_touchpoint + θ_partner + ε`` fitted by least squares
  on the touch point × partner cells, with the brand's own channels (records with no partner) as
  the reference ``θ = 0``: ``θ`` is how much better (+) or worse (−) customers fare with the
  partner than with the brand itself at comparable touch points, which is what "selecting who
  represents the brand" needs. Touch points only partners serve are tied to the brand through
  the partners that also serve shared ones. Standard errors from the model's covariance
  ``σ²(X'WX)⁻¹`` (pooled residual variance); partners not connected to the brand's own records
  have none. For agents, the reference is the average agent: ``θ`` = mean of ``gap − μ_tp``
  over the agent's records, ``μ_tp`` the mean gap of all agent-handled records at the touch
  point (indirect standardisation), with the standard error of that mean.
* **NPS**, **promise-kept rate** (every promise of the corridor map measured on the unit's
  interactions or feedback, :mod:`~corridor.analytics.feedback.promises`) and **complaint share**
  (experience ≤ 4, as in :mod:`~corridor.analytics.attribution.ripple`) — raw, with their usual
  intervals (Wald for NPS, Wilson for shares); not adjusted for touch-point mix.

Each is then **shrunk** by empirical Bayes (:mod:`~corridor.analytics.estimators.shrinkage`):
normal–normal with REML ``τ²`` for the adjusted gap and NPS, beta–binomial for the shares. The
``shrunk_…`` columns are posterior means with posterior intervals; ``rank`` orders units by shrunk
adjusted gap (1 = best). ``select`` names partners credibly ``better`` or ``worse`` than the brand's
own channels — the posterior interval of the adjusted gap lies wholly above or below 0 — and
``p_value`` / ``q_value`` give the plain z-test of ``θ = 0`` and its Benjamini–Hochberg
adjustment over the units. For agents "better/worse" is against the average agent.

The partner card has one more row, ``partner = None`` (``baseline = True``): the brand's own
channels, raw, for comparison.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, TypedDict, Unpack

import ibis
import numpy as np
import pandas as pd

from corridor.analytics.attribution.ripple import COMPLAINT_MAX, benjamini_hochberg
from corridor.analytics.core import dimensions as dims
from corridor.analytics.core.counting import count_where
from corridor.analytics.core.dimensions import Filters, Query, Source, TimeLike
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.registry import DIMENSION_NAMES, Analysis, Param, register
from corridor.analytics.core.result import AnalyticsResult, put_interval
from corridor.analytics.core.result_columns import columns
from corridor.analytics.core.scoping import ScopeRule
from corridor.analytics.estimators import stats
from corridor.analytics.estimators.shrinkage import beta_binomial_shrinkage, normal_shrinkage
from corridor.analytics.feedback.promises import load_promises, promise_sums
from corridor.lazy import lazy

_sp = lazy("scipy.stats")

Kind = Literal["partner", "agent"]
KINDS: tuple[str, ...] = ("partner", "agent")

METHOD = (
    "adjusted gap = unit effect at the same touch points (partners: two-way least squares "
    "against the brand's own channels; agents: mean of gap − touch-point mean of all agents), "
    "NPS, promise-kept rate and complaint share (experience ≤ 4); empirical-Bayes shrinkage "
    "(normal–normal with REML τ², beta–binomial by marginal maximum likelihood) with posterior "
    "intervals; select = posterior interval of the adjusted gap above/below 0; BH q-values"
)

CELL_SUMS = ("n", "sum_gap", "sumsq_gap")


def scorecard_cells(source: Source, kind: Kind, query: Query) -> pd.DataFrame:
    """Sums per unit × touch point over the query's feedback: rated records (``n``,
    ``sum_gap``, ``sumsq_gap``), NPS answers (``nps_n``, ``promoters``, ``detractors``),
    records with an experience (``n_exp``, ``n_complaint``)."""
    wanted = tuple(dict.fromkeys((kind, "touchpoint", *query.filters)))
    t = dims.query_rows(source, Query(wanted, None, query.filters, query.since, query.until))
    t = t.mutate(unit=t[kind])
    rated = t.expectation.notnull() & t.experience.notnull()
    gap = t.experience - t.expectation
    aggs = {
        "n": count_where(t, rated),
        "sum_gap": gap.sum(where=rated),
        "sumsq_gap": (gap * gap).sum(where=rated),
        "nps_n": count_where(t, t.nps.notnull()),
        "promoters": count_where(t, t.nps >= 9),
        "detractors": count_where(t, t.nps <= 6),
        "n_exp": count_where(t, t.experience.notnull()),
        "n_complaint": count_where(t, t.experience <= ibis.literal(COMPLAINT_MAX)),
    }
    return dims.aggregate(t, ["unit", "touchpoint"], aggs)


def two_way_effects(cells: pd.DataFrame) -> pd.DataFrame:
    """Least-squares unit effects ``θ`` in ``y = μ_tp + θ_unit`` on cell sums (columns
    ``unit`` — missing for the reference —, ``touchpoint``, ``n``, ``sum_gap``,
    ``sumsq_gap``), reference ``θ = 0``. Returns ``unit, effect, se``. Pure.

    Normal equations solved through the touch-point block:
    ``S = D_tp − C D_u⁻¹ C'``, ``μ = S⁻¹(b_tp − C D_u⁻¹ b_u)``, ``θ = D_u⁻¹(b_u − C'μ)``,
    ``Var θ_u = σ²(1/D_u + c_u' S⁻¹ c_u)`` with ``c_u = C[:, u]/D_u``."""
    c = cells[(cells["n"] > 0) & cells["touchpoint"].notna()]
    units = sorted(c["unit"].dropna().unique().tolist())
    out = pd.DataFrame({"unit": units, "effect": np.nan, "se": np.nan})
    if not units:
        return out
    tps = sorted(c["touchpoint"].unique().tolist())
    ti = {t: k for k, t in enumerate(tps)}
    ui = {u: k for k, u in enumerate(units)}
    n = c["n"].to_numpy(float)
    s = c["sum_gap"].to_numpy(float)
    t_idx = c["touchpoint"].map(ti).to_numpy()
    u_idx = c["unit"].map(ui).to_numpy(dtype=float, na_value=-1).astype(int)
    d_tp = np.bincount(t_idx, weights=n, minlength=len(tps))
    b_tp = np.bincount(t_idx, weights=s, minlength=len(tps))
    has = u_idx >= 0
    cm = np.zeros((len(tps), len(units)))
    np.add.at(cm, (t_idx[has], u_idx[has]), n[has])
    d_u = cm.sum(axis=0)
    b_u = np.bincount(u_idx[has], weights=s[has], minlength=len(units))
    schur = np.diag(d_tp) - (cm / d_u) @ cm.T
    s_inv = np.linalg.pinv(schur, rcond=1e-10, hermitian=True)
    mu = s_inv @ (b_tp - cm @ (b_u / d_u))
    theta = (b_u - cm.T @ mu) / d_u
    fitted = mu[t_idx] + np.where(has, theta[np.maximum(u_idx, 0)], 0.0)
    rss = float((c["sumsq_gap"].to_numpy(float) - 2 * fitted * s + n * fitted**2).sum())
    dof = n.sum() - len(tps) - len(units)
    sigma2 = max(rss, 0.0) / dof if dof > 0 else np.nan
    cu = cm / d_u
    var = sigma2 * (1.0 / d_u + np.einsum("tu,ts,su->u", cu, s_inv, cu))
    # a unit is identified when its touch-point profile lies in the range of S
    null = _null_space(schur)
    free = np.abs(null.T @ cu).max(axis=0) > 1e-8 if null.size else np.zeros(len(units), bool)
    out["effect"] = np.where(free, np.nan, theta)
    out["se"] = np.where(free, np.nan, np.sqrt(np.maximum(var, 0.0)))
    return out


def _null_space(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return v[:, np.abs(w) <= 1e-9 * max(1.0, float(np.abs(w).max()))]


def standardised_effects(cells: pd.DataFrame) -> pd.DataFrame:
    """Indirect standardisation against the average unit: ``θ_u`` = mean of ``gap − μ_tp`` over
    the unit's records, ``μ_tp`` the mean over all units' records there. Pure."""
    c = cells[(cells["n"] > 0) & cells["touchpoint"].notna() & cells["unit"].notna()].copy()
    tp = c.groupby("touchpoint")[["n", "sum_gap"]].sum()
    mu = (tp["sum_gap"] / tp["n"]).reindex(c["touchpoint"]).to_numpy()
    n = c["n"].to_numpy(float)
    c["adj_sum"] = c["sum_gap"].to_numpy(float) - n * mu
    c["adj_sumsq"] = c["sumsq_gap"].to_numpy(float) - 2 * mu * c["sum_gap"] + n * mu**2
    g = c.groupby("unit")[["n", "adj_sum", "adj_sumsq"]].sum()
    n_u = g["n"].to_numpy(float)
    effect = g["adj_sum"].to_numpy(float) / n_u
    # pooled within-unit variance: small units' own variances are too noisy to trust
    within = float((g["adj_sumsq"] - g["adj_sum"] ** 2 / g["n"]).sum())
    dof = float(n_u.sum() - len(g))
    sigma2 = max(within, 0.0) / dof if dof > 0 else np.nan
    return pd.DataFrame({"unit": g.index, "effect": effect, "se": np.sqrt(sigma2 / n_u)})


def _promise_counts(source: Source, kind: Kind, query: Query) -> pd.DataFrame:
    promises = load_promises(source)
    q = Query((kind,), None, query.filters, query.since, query.until)
    units, _ = promise_sums(source, q, promises, gaps=False)  # the counts only
    if units.empty:
        return pd.DataFrame({"unit": [], "promise_n": [], "promise_kept": []})
    g = units.groupby(kind, dropna=False)[["n", "n_kept"]].sum().reset_index()
    return g.rename(columns={kind: "unit", "n": "promise_n", "n_kept": "promise_kept"})


def partner_scorecard(
    source: Source,
    *,
    kind: str = "partner",
    filters: Filters | None = None,
    since: TimeLike = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    min_n: int = 1,
) -> AnalyticsResult:
    """The scorecard of every partner (``kind="partner"``) or agent (``kind="agent"``); see the
    module notes for the columns. ``filters`` are dimension filters as in
    :func:`~corridor.analytics.feedback.gaps.gap_table` (not on ``kind`` itself: the prior is fitted
    over all units; drop rows afterwards). Units with fewer than ``min_n`` rated records are left
    out of the frame (they still inform nothing: shrinkage needs data)."""
    if kind not in KINDS:
        raise AnalyticsQueryError(f"unknown scorecard kind {kind!r}; allowed: {', '.join(KINDS)}")
    conf = dims.check_confidence(confidence)
    query = Query.build(None, None, filters, since, until)
    if kind in query.filters:
        raise AnalyticsQueryError(
            f"a {kind} scorecard cannot be filtered by {kind!r}: every {kind} is needed to fit "
            "the shrinkage prior; select rows from the result instead"
        )
    cells = scorecard_cells(source, kind, query)  # type: ignore[arg-type]
    effects = two_way_effects(cells) if kind == "partner" else standardised_effects(cells)
    promises = _promise_counts(source, kind, query)  # type: ignore[arg-type]
    frame = summarise_scorecard(cells, effects, promises, kind, conf, min_n)
    return AnalyticsResult(
        frame=frame,
        n=int(cells["n"].sum()),
        confidence=conf,
        method=METHOD,
        query=query.describe() | {"kind": kind, "min_n": int(min_n)},
    )


def summarise_scorecard(
    cells: pd.DataFrame,
    effects: pd.DataFrame,
    promises: pd.DataFrame,
    kind: str,
    confidence: float = 0.95,
    min_n: int = 1,
) -> pd.DataFrame:
    """The scorecard frame from unit × touch point cells, unit effects and promise counts. Pure."""
    sums = ["n", "sum_gap", "sumsq_gap", "nps_n", "promoters", "detractors", "n_exp"]
    g = cells.groupby("unit", dropna=False)[[*sums, "n_complaint"]].sum().reset_index()
    # an empty frame (no feedback matches the filters) types its unit column float: make the
    # key one type everywhere so an empty selection merges to an empty scorecard
    g, effects, promises = (d.astype({"unit": object}) for d in (g, effects, promises))
    g = g.merge(effects, on="unit", how="left").merge(promises, on="unit", how="left")
    for col in ("promise_n", "promise_kept"):
        g[col] = g[col].astype(float).fillna(0.0)
    base = g["unit"].isna()
    units = g[~base & (g["n"] >= min_n)].reset_index(drop=True)
    z = stats.z_critical(confidence)
    out = pd.DataFrame({kind: units["unit"], "baseline": False})
    _raw(out, units, confidence)
    out["adjusted_gap"] = units["effect"]
    out["adjusted_gap_se"] = units["se"]
    out["adjusted_gap_low"] = units["effect"] - z * units["se"]
    out["adjusted_gap_high"] = units["effect"] + z * units["se"]
    sh = normal_shrinkage(units["effect"], units["se"], confidence=confidence)
    put_interval(out, "shrunk_gap", sh.estimate, sh.low, sh.high)
    out["shrink_weight"] = sh.weight
    nps = stats.nps(units["promoters"], units["detractors"], units["nps_n"], confidence)
    se_nps = np.where(np.asarray(nps.se) > 0, nps.se, np.nan)
    shn = normal_shrinkage(nps.nps, se_nps, confidence=confidence)
    out["shrunk_nps"], out["shrunk_nps_low"], out["shrunk_nps_high"] = (
        shn.estimate,
        shn.low,
        shn.high,
    )
    for name, x, n in (
        ("kept_rate", "promise_kept", "promise_n"),
        ("complaint_share", "n_complaint", "n_exp"),
    ):
        b = beta_binomial_shrinkage(units[x], units[n], confidence=confidence)
        out[f"shrunk_{name}"], out[f"shrunk_{name}_low"] = b.share, b.low
        out[f"shrunk_{name}_high"] = b.high
    with np.errstate(all="ignore"):
        zstat = units["effect"] / units["se"]
    out["p_value"] = 2.0 * _sp.norm.sf(np.abs(zstat))
    out["q_value"] = benjamini_hochberg(out["p_value"])
    out["rank"] = out["shrunk_gap"].rank(ascending=False, method="min").astype("Int64")
    select = pd.Series(None, index=out.index, dtype=object)
    select[out["shrunk_gap_low"] > 0] = "better"
    select[out["shrunk_gap_high"] < 0] = "worse"
    out["select"] = select
    out = out.sort_values(["rank", kind], na_position="last", kind="mergesort")
    if kind == "partner" and base.any():
        row = pd.DataFrame({kind: [None], "baseline": [True]})
        _raw(row, g[base].reset_index(drop=True), confidence)
        row["adjusted_gap"] = 0.0
        out = pd.concat([row, out], ignore_index=True)
    return out.reset_index(drop=True)


def _pooled_nps_se(g: pd.DataFrame) -> np.ndarray:
    """Standard error of each unit's NPS (points) from the pooled within-unit variance of the
    ±100/0 scores, so that a unit of one or two answers does not look certain."""
    n = g["nps_n"].to_numpy(float)
    p, d = g["promoters"].to_numpy(float), g["detractors"].to_numpy(float)
    with np.errstate(all="ignore"):
        within = (p + d) - (p - d) ** 2 / n  # Σ(s − s̄)² on the ±1 scale, per unit
        sigma2 = np.nansum(np.where(n > 0, within, 0.0)) / max(float(n.sum() - (n > 0).sum()), 1)
        return np.where(n > 0, 100.0 * np.sqrt(sigma2 / n), np.nan)


def _raw(out: pd.DataFrame, g: pd.DataFrame, conf: float) -> None:
    """Raw columns: n, mean gap (t), NPS (Wald), kept rate and complaint share (Wilson)."""
    n = g["n"].to_numpy(float)
    gap = stats.mean_interval(n, g["sum_gap"], g["sumsq_gap"], conf)
    out["n"] = g["n"].astype("int64").to_numpy()
    out["mean_gap"], out["mean_gap_low"], out["mean_gap_high"] = gap.mean, gap.low, gap.high
    nps = stats.nps(g["promoters"], g["detractors"], g["nps_n"], conf)
    out["nps_n"] = g["nps_n"].astype("int64").to_numpy()
    out["nps"], out["nps_low"], out["nps_high"] = nps.nps, nps.low, nps.high
    for name, x, k in (
        ("kept_rate", "promise_kept", "promise_n"),
        ("complaint_share", "n_complaint", "n_exp"),
    ):
        p = stats.proportion(g[x], g[k], conf)
        out[f"{name}_n"] = g[k].astype("int64").to_numpy()
        out[name], out[f"{name}_low"], out[f"{name}_high"] = p.share, p.low, p.high


def select_list(result: AnalyticsResult) -> pd.DataFrame:
    """The partners (or agents) credibly better or worse than the baseline, best first."""
    f = result.frame
    return f[f["select"].notna()].reset_index(drop=True)


class _PassedOn(TypedDict, total=False):
    """What :func:`scorecard` passes on to :func:`partner_scorecard` as it is."""

    since: TimeLike
    until: TimeLike
    confidence: float
    min_n: int


def scorecard(
    source: Source,
    *,
    kind: str = "partner",
    filters: Filters | None = None,
    **args: Unpack[_PassedOn],
) -> AnalyticsResult:
    """:func:`partner_scorecard` as the cards serve it. On the partner card a ``partner`` filter
    (forced to their own for a partner manager) selects the rows shown, next to the brand's
    baseline row, rather than the records: the prior is fitted over every partner. ``n`` then
    counts the rows shown; the extra ``ranked`` is the number of units ranked on the whole card
    (the "of N" of a rank)."""
    shown: set[str | None] | None = None
    if kind == "partner" and filters and "partner" in filters:
        asked = filters["partner"]
        shown = {asked} if asked is None or isinstance(asked, str) else set(asked)
        filters = {k: v for k, v in filters.items() if k != "partner"} or None
    res = partner_scorecard(source, kind=kind, filters=filters, **args)
    frame = res.frame
    base = frame["baseline"].eq(True)
    ranked = int((frame["rank"].notna() & ~base).sum()) if "rank" in frame.columns else 0
    n = res.n
    if shown is not None:
        keep = base | frame[kind].isin(shown)
        if not keep.all():  # totals count only the rows shown
            frame = frame[keep].reset_index(drop=True)
            n = int(frame["n"].fillna(0).sum())
    return replace(res, frame=frame, n=n, extra={**res.extra, "ranked": ranked})


__all__ = [
    "KINDS",
    "partner_scorecard",
    "scorecard",
    "scorecard_cells",
    "select_list",
    "standardised_effects",
    "summarise_scorecard",
    "two_way_effects",
]


# -- declarations --------------------------------------------------------------------------------

MIN_N = Param("min_n", "int", 1, "leave out units with fewer rated records (at least 1)", ge=1)
SCORECARD_COLUMNS = columns(
    "baseline:bool n:int mean_gap mean_gap_low mean_gap_high nps_n:int nps nps_low nps_high "
    "kept_rate_n:int kept_rate kept_rate_low kept_rate_high complaint_share_n:int "
    "complaint_share complaint_share_low complaint_share_high adjusted_gap adjusted_gap_se "
    "adjusted_gap_low adjusted_gap_high shrunk_gap shrunk_gap_low shrunk_gap_high "
    "shrink_weight shrunk_nps shrunk_nps_low shrunk_nps_high shrunk_kept_rate "
    "shrunk_kept_rate_low shrunk_kept_rate_high shrunk_complaint_share "
    "shrunk_complaint_share_low shrunk_complaint_share_high p_value q_value rank:int "
    "select:str",
    baseline="the brand's own channels (records with no partner), raw, for comparison",
    n="rated records (expectation and experience)",
    mean_gap="raw mean gap",
    nps="raw NPS",
    kept_rate_n="promise measurements on the unit's interactions or feedback",
    kept_rate="raw promise-kept rate",
    complaint_share_n="records with an experience",
    complaint_share="raw share of complaints (experience ≤ 4)",
    adjusted_gap="effect on the gap at the same touch points (partners: against the brand's "
    "own channels; agents: against the average agent)",
    adjusted_gap_se="standard error of adjusted_gap",
    shrunk_gap="empirical-Bayes posterior mean of adjusted_gap (interval: posterior)",
    shrink_weight="weight of the unit's own estimate in shrunk_gap (1 = none shrunk)",
    shrunk_nps="empirical-Bayes NPS",
    shrunk_kept_rate="empirical-Bayes promise-kept rate (beta–binomial)",
    shrunk_complaint_share="empirical-Bayes complaint share (beta–binomial)",
    p_value="z-test of adjusted_gap = 0",
    q_value="Benjamini–Hochberg q-value of p_value over the units",
    rank="by shrunk_gap, 1 = best",
    select="better or worse: the posterior interval of the adjusted gap lies wholly above or "
    "below 0",
)
SCORECARD_BRIEF = (
    "n", "mean_gap", "adjusted_gap", "shrunk_gap", "shrunk_gap_low", "shrunk_gap_high",
    "shrunk_nps", "shrunk_kept_rate", "shrunk_complaint_share", "rank", "select",
)  # fmt: skip


def _card(kind: str, title: str, description: str, scope_note: str) -> None:
    """Declare the scorecard of one kind of unit: the same function, columns and parameters."""
    register(
        Analysis(
            f"{kind}s",
            title,
            scorecard,
            path=f"/{kind}s",
            command=(f"{kind}s",),
            tag="attribution",
            description=description,
            filters=DIMENSION_NAMES,
            params=(MIN_N,),
            fixed={"kind": kind},
            columns=SCORECARD_COLUMNS,
            extras=("ranked",),
            brief=SCORECARD_BRIEF,
            scope=ScopeRule(recount=("n",), note=scope_note),
        )
    )


_card(
    "partner",
    "Partner scorecard",
    "The partner scorecard: touch-point-adjusted gap, NPS, promise-kept rate and complaint "
    "share with raw intervals and empirical-Bayes shrunk estimates with posterior intervals, a "
    "rank and a `select` flag (credibly better/worse than the brand's own channels), next to "
    "the brand's own baseline row. Filter by any dimension; `partner=` selects the rows shown "
    "(the prior is fitted over every partner).",
    "filters forced to the scope: a department head's card is computed over their "
    "department's records; a partner manager's partner selects their row (next to the "
    "baseline; the prior is still fitted over every partner), and n counts the rows shown",
)
_card(
    "agent",
    "Agent scorecard",
    "The agent scorecard: touch-point-adjusted gap, NPS, promise-kept rate and complaint share "
    "with raw intervals and empirical-Bayes shrunk estimates with posterior intervals, a rank "
    "and a `select` flag (credibly better/worse than the average agent). Filter by any "
    "dimension but `agent` (the prior is fitted over every agent).",
    "filters forced to the scope: a department head's card is computed over their "
    "department's records, a partner manager's over their partner's",
)
