"""Alignment: does the company see what its customers see, and do its channels agree?

**Employees against customers** (:func:`alignment_table`, ``view="employees"``). Each
``employee_predictions`` row says what a department believes customers experience at a touch
point in a month (``predicted_experience``, 0–10). It is paired with the customers' actual mean
experience there that month (feedback with an experience, placed by ``feedback.occurred_at`` in
UTC months, touch point as in :mod:`~corridor.analytics.core.dimensions`). Per department (or touch
point):

* ``bias`` = mean of (predicted − actual) over the pairs, with a Student-t interval over the
  pairs (df = pairs − 1; the pair-to-pair spread includes the actual means' sampling error) —
  positive: staff think customers fare better than they say;
* ``mean_absolute_error`` of the pairs;
* ``correlation`` — Pearson's r of predicted and actual over the pairs, Fisher-z interval and
  t-test: do staff at least know *where* experience is good or bad?
* ``n`` (pairs), ``n_records`` (feedback behind the actual means), ``n_unmatched`` (predictions
  with no feedback that month).

**Consistency across channels** (``view="channels"``). For every touch point with feedback in at
least two channels (the interaction's channel): per channel ``n`` and mean experience (or gap)
with a t interval and its deviation from the touch point's mean; per touch point the ``spread``
(highest − lowest channel mean), ``sd_channels`` (standard deviation of the channel means) and
Welch's (1951) heteroscedastic one-way ANOVA of equal channel means (``statistic`` F,
``df_between``, ``df_within``, ``p_value``; ``q_value`` Benjamini–Hochberg over touch points) —
the same as ``statsmodels.stats.oneway.anova_oneway(..., use_var="unequal")``. Channels with
fewer than 2 records are shown but not tested.

References: Welch, B. L. (1951), "On the comparison of several mean values: an alternative
approach", *Biometrika* 38(3/4); Fisher, R. A. (1921), "On the 'probable error' of a coefficient
of correlation deduced from a small sample", *Metron* 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from corridor.analytics.attribution.ripple import benjamini_hochberg
from corridor.analytics.core import dimensions as dims
from corridor.analytics.core.dimensions import Filters, Query, Source, TimeLike
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.periods import labels
from corridor.analytics.core.registry import DIMENSION_NAMES, Analysis, Param, register
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.core.result_columns import columns
from corridor.analytics.core.scoping import Row, ScopeRule
from corridor.analytics.estimators import stats
from corridor.analytics.feedback.facets import pearson
from corridor.lazy import lazy

_sp = lazy("scipy.stats")

if TYPE_CHECKING:
    from corridor.auth.scope import Scope

VIEWS: tuple[str, ...] = ("employees", "channels")
GROUPINGS: tuple[str, ...] = ("department", "touchpoint")
CHANNEL_MEASURES: tuple[str, ...] = ("experience", "gap")

EMPLOYEE_METHOD = (
    "pairs of employee prediction and customers' mean experience per touch point and UTC month; "
    "bias = mean(predicted − actual) with a t interval over pairs; Pearson correlation over "
    "pairs with Fisher-z interval and t-test"
)
CHANNEL_METHOD = (
    "per touch point with ≥ 2 channels: channel means with t intervals, spread (max − min) and "
    "SD of channel means; Welch's heteroscedastic one-way ANOVA of equal channel means; "
    "Benjamini–Hochberg q over touch points"
)


def alignment_table(
    source: Source,
    *,
    view: str = "employees",
    by: str = "department",
    filters: Filters | None = None,
    since: TimeLike = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    measure: str = "experience",
) -> AnalyticsResult:
    """Employees' predictions against customers (``view="employees"``, grouped ``by``
    department or touch point) or consistency across channels (``view="channels"``, measure
    ``experience`` or ``gap``); see the module notes. ``filters`` restrict the feedback (and, for
    ``department``/``touchpoint``, the predictions)."""
    if view not in VIEWS:
        raise AnalyticsQueryError(f"unknown alignment view {view!r}; allowed: {', '.join(VIEWS)}")
    conf = dims.check_confidence(confidence)
    query = Query.build(None, None, filters, since, until)
    if view == "channels":
        if measure not in CHANNEL_MEASURES:
            raise AnalyticsQueryError(
                f"unknown measure {measure!r}; allowed: {', '.join(CHANNEL_MEASURES)}"
            )
        sums = channel_sums(source, query, measure)
        meta = query.describe() | {"view": view, "measure": measure}
        frame = summarise_channels(sums, conf)
        return AnalyticsResult.from_sums(frame, sums, conf, CHANNEL_METHOD, meta)
    if by not in GROUPINGS:
        raise AnalyticsQueryError(
            f"unknown alignment grouping {by!r}; allowed: {', '.join(GROUPINGS)}"
        )
    pairs = prediction_pairs(source, query)
    return AnalyticsResult(
        frame=summarise_predictions(pairs, by, conf),
        n=int(pairs["n_records"].sum()),
        confidence=conf,
        method=EMPLOYEE_METHOD,
        query=query.describe() | {"view": view, "by": by},
    )


def prediction_pairs(source: Source, query: Query) -> pd.DataFrame:
    """Every prediction with the actual mean experience of its touch point and month:
    ``department, touchpoint, period, predicted, n_records, actual`` (``actual`` missing and
    ``n_records`` 0 when no feedback matches)."""
    wanted = tuple(dict.fromkeys(("touchpoint", *query.filters)))
    t = dims.query_rows(source, Query(wanted, "month", query.filters, query.since, query.until))
    t = t.filter(t.experience.notnull(), t.touchpoint.notnull())
    actual = dims.aggregate(
        t,
        ["touchpoint", "period"],
        {"n_records": t.count(), "sum_experience": t.experience.sum()},
    )
    actual["period"] = labels(actual["period"], "month")
    actual["actual"] = actual["sum_experience"] / actual["n_records"]
    p = dims.get_table(source, "employee_predictions")
    preds = p.select("department", "touchpoint", "period", "predicted_experience")
    df = preds.to_pyarrow().to_pandas().rename(columns={"predicted_experience": "predicted"})
    for dim in ("department", "touchpoint"):
        allowed = query.filters.get(dim)
        if allowed is not None:
            df = df[df[dim].isin([v for v in allowed if v is not None])]
    if query.since is not None or query.until is not None:
        start = pd.to_datetime(df["period"] + "-01", utc=True, errors="coerce")
        keep = pd.Series(True, index=df.index)
        if query.since is not None:
            keep &= start >= pd.Timestamp(query.since).floor("D").replace(day=1)
        if query.until is not None:
            keep &= start < pd.Timestamp(query.until)
        df = df[keep]
    out = df.merge(
        actual[["touchpoint", "period", "n_records", "actual"]],
        on=["touchpoint", "period"],
        how="left",
    )
    out["n_records"] = out["n_records"].fillna(0).astype("int64")
    return out.reset_index(drop=True)


def summarise_predictions(pairs: pd.DataFrame, by: str, confidence: float = 0.95) -> pd.DataFrame:
    """Bias, error and correlation per ``by`` group from :func:`prediction_pairs`. Pure."""
    cols = [
        by, "n", "n_records", "n_unmatched", "mean_predicted", "mean_actual",
        "bias", "bias_low", "bias_high", "p_value_bias", "mean_absolute_error",
        "correlation", "correlation_low", "correlation_high", "p_value_correlation",
    ]  # fmt: skip
    if pairs.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    m = pairs.assign(
        matched=pairs["actual"].notna(),
        diff=pairs["predicted"] - pairs["actual"],
        x=pairs["predicted"].where(pairs["actual"].notna()),
    )
    m = m.assign(
        x2=m["x"] ** 2, y2=m["actual"] ** 2, xy=m["x"] * m["actual"], d2=m["diff"] ** 2,
        ad=m["diff"].abs(),
    )  # fmt: skip
    g = m.groupby(by, sort=True).agg(
        n=("matched", "sum"),
        rows=("predicted", "size"),
        n_records=("n_records", "sum"),
        sx=("x", "sum"),
        sy=("actual", "sum"),
        sxx=("x2", "sum"),
        syy=("y2", "sum"),
        sxy=("xy", "sum"),
        sd=("diff", "sum"),
        sdd=("d2", "sum"),
        sad=("ad", "sum"),
    )
    n = g["n"].to_numpy(float)
    bias = stats.mean_interval(n, g["sd"], g["sdd"], confidence)
    with np.errstate(all="ignore"):
        tstat = np.asarray(bias.mean) / np.asarray(bias.se)
        p_bias = 2.0 * _sp.t.sf(np.abs(tstat), n - 1.0)
    r = pearson(n, g["sx"], g["sy"], g["sxx"], g["syy"], g["sxy"], confidence)
    with np.errstate(all="ignore"):
        out = pd.DataFrame(
            {
                by: g.index,
                "n": g["n"].astype("int64").to_numpy(),
                "n_records": g["n_records"].astype("int64").to_numpy(),
                "n_unmatched": (g["rows"] - g["n"]).astype("int64").to_numpy(),
                "mean_predicted": (g["sx"] / g["n"]).to_numpy(),
                "mean_actual": (g["sy"] / g["n"]).to_numpy(),
                "bias": bias.mean,
                "bias_low": bias.low,
                "bias_high": bias.high,
                "p_value_bias": np.where(n > 1, p_bias, np.nan),
                "mean_absolute_error": (g["sad"] / g["n"]).to_numpy(),
                "correlation": r.r,
                "correlation_low": r.low,
                "correlation_high": r.high,
                "p_value_correlation": r.p_value,
            }
        )
    return out[cols].reset_index(drop=True)


def channel_sums(source: Source, query: Query, measure: str = "experience") -> pd.DataFrame:
    """``touchpoint, department, channel, n, sum, sumsq`` of the measure, from the engine."""
    wanted = tuple(dict.fromkeys(("touchpoint", "department", "channel", *query.filters)))
    t = dims.query_rows(source, Query(wanted, None, query.filters, query.since, query.until))
    x: Any = t.experience if measure == "experience" else t.experience - t.expectation
    t = t.mutate(_x=x)
    t = t.filter(t._x.notnull(), t.touchpoint.notnull(), t.channel.notnull())
    return dims.aggregate(
        t,
        ["touchpoint", "department", "channel"],
        {"n": t.count(), "sum": t._x.sum(), "sumsq": (t._x * t._x).sum()},
    )


def welch_anova(n: Any, mean: Any, var: Any) -> tuple[float, float, float, float]:
    """Welch's (1951) one-way ANOVA from per-group n, mean and variance (groups with n < 2 or
    zero variance left out): ``(F, df_between, df_within, p)``; NaN with fewer than 2 groups."""
    k_n, m, v = (np.asarray(a, dtype=float) for a in (n, mean, var))
    ok = (k_n > 1) & np.isfinite(v) & (v > 0)
    k_n, m, v = k_n[ok], m[ok], v[ok]
    k = len(k_n)
    if k < 2:
        return (np.nan,) * 4
    w = k_n / v
    mw = float((w * m).sum() / w.sum())
    a = float((w * (m - mw) ** 2).sum() / (k - 1))
    lam = float((((1 - w / w.sum()) ** 2) / (k_n - 1)).sum())
    b = 1.0 + 2.0 * (k - 2) / (k * k - 1) * lam
    f = a / b
    df2 = (k * k - 1) / (3.0 * lam)
    return f, float(k - 1), df2, float(_sp.f.sf(f, k - 1, df2))


def summarise_channels(sums: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Channel rows of the touch points with at least two channels. Pure."""
    cols = [
        "touchpoint", "department", "channel", "n", "mean", "mean_low", "mean_high",
        "deviation", "channels", "spread", "sd_channels", "statistic", "df_between",
        "df_within", "p_value", "q_value",
    ]  # fmt: skip
    s = sums[sums["n"] > 0]
    s = s[s.groupby("touchpoint")["channel"].transform("nunique") >= 2].copy()
    if s.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    est = stats.mean_interval(s["n"].to_numpy(float), s["sum"], s["sumsq"], confidence)
    mom = stats.moments(s["n"].to_numpy(float), s["sum"], s["sumsq"])
    s["mean"], s["mean_low"], s["mean_high"] = est.mean, est.low, est.high
    s["_var"] = mom.var
    tp_mean = s.groupby("touchpoint")["sum"].transform("sum") / s.groupby("touchpoint")[
        "n"
    ].transform("sum")
    s["deviation"] = s["mean"] - tp_mean
    rows = []
    for tp, g in s.groupby("touchpoint", sort=True):
        f, d1, d2, p = welch_anova(g["n"], g["mean"], g["_var"])
        rows.append(
            {
                "touchpoint": tp,
                "channels": len(g),
                "spread": float(g["mean"].max() - g["mean"].min()),
                "sd_channels": float(g["mean"].std(ddof=1)),
                "statistic": f,
                "df_between": d1,
                "df_within": d2,
                "p_value": p,
            }
        )
    tests = pd.DataFrame(rows)
    tests["q_value"] = benjamini_hochberg(tests["p_value"])
    out = s.merge(tests, on="touchpoint", how="left")
    out["n"] = out["n"].astype("int64")
    out = out.sort_values(["touchpoint", "mean"], ascending=[True, False], kind="mergesort")
    return out[cols].reset_index(drop=True)


__all__ = [
    "GROUPINGS",
    "VIEWS",
    "alignment_table",
    "channel_sums",
    "prediction_pairs",
    "summarise_channels",
    "summarise_predictions",
    "welch_anova",
]


# -- declarations --------------------------------------------------------------------------------


def _sees_alignment_row(scope: Scope, kwargs: dict[str, Any]) -> Callable[[Row], bool]:
    """Rows of departments and touch points outside the scope are dropped; a partner manager
    sees the departments their partner's customers rated, not the other departments'
    prediction counts."""

    def keep(r: Row) -> bool:
        dept_ok = "department" not in r or scope.sees_department(r["department"])
        tp_ok = "touchpoint" not in r or scope.sees_touchpoint(r["touchpoint"])
        return dept_ok and tp_ok and (scope.partners is None or bool(r.get("n_records")))

    return keep


def _partner_view(scope: Scope, run: Callable[..., Any]) -> Callable[..., Any]:
    """For a partner manager, predictions left unmatched by the partner's feedback are the
    departments' own: ``n_unmatched`` is not shown."""
    if scope.partners is None:
        return run

    def partner_view(source: Source, **params: Any) -> AnalyticsResult:
        res: AnalyticsResult = run(source, **params)
        return replace(res, frame=res.frame.assign(n_unmatched=None))

    return partner_view


register(
    Analysis(
        "alignment",
        "Employees' predictions against customers' experience",
        alignment_table,
        path="/alignment",
        command=("alignment",),
        tag="attribution",
        description="Employees' predicted experience against customers' actual per department "
        "(or touch point): bias with interval, mean absolute error, correlation with Fisher-z "
        "interval. Filter by any dimension (`department` and `touchpoint` filters restrict "
        "the predictions too).",
        filters=DIMENSION_NAMES,
        params=(
            Param("by", "str", "department", "group the predictions by", GROUPINGS),
        ),
        fixed={"view": "employees"},
        columns=columns(
            "n:int n_records:int n_unmatched:int mean_predicted mean_actual bias bias_low "
            "bias_high p_value_bias mean_absolute_error correlation correlation_low "
            "correlation_high p_value_correlation",
            n="predictions paired with customers' mean experience",
            n_records="feedback records behind the actual means",
            n_unmatched="predictions with no feedback that month (not shown to a partner "
            "manager)",
            mean_predicted="mean predicted experience over the pairs",
            mean_actual="mean actual experience over the pairs",
            bias="mean of predicted − actual (positive: staff think customers fare better than "
            "they say); t interval over the pairs",
            p_value_bias="t-test of bias = 0",
            mean_absolute_error="mean |predicted − actual|",
            correlation="Pearson's r of predicted and actual over the pairs (Fisher-z interval)",
            p_value_correlation="t-test of r = 0",
        ),
        brief=(
            "n", "mean_predicted", "mean_actual", "bias", "bias_low", "bias_high",
            "correlation", "correlation_low", "correlation_high",
        ),
        scope=ScopeRule(
            keep=_sees_alignment_row,
            rerun=_partner_view,
            recount=("n_records",),
            note="filters forced to the scope; rows of departments and touch points outside "
            "it dropped; a partner manager sees only departments their partner's customers "
            "rated, without n_unmatched; n counts the rows shown",
        ),
    )
)  # fmt: skip

register(
    Analysis(
        "channels",
        "Experience across channels of one touch point",
        alignment_table,
        path="/alignment/channels",
        command=("channels",),
        tag="attribution",
        description="Per touch point served in several channels: channel means with "
        "intervals, spread, standard deviation across channels and Welch's ANOVA of equal "
        "means. Filter by any dimension.",
        filters=DIMENSION_NAMES,
        params=(
            Param("measure", "str", "experience", "the measure compared", CHANNEL_MEASURES),
        ),
        fixed={"view": "channels"},
        columns=columns(
            "n:int mean mean_low mean_high deviation channels:int spread sd_channels statistic "
            "df_between df_within p_value q_value",
            n="records with the measure in the channel",
            mean="channel mean of the measure (t interval)",
            deviation="channel mean − the touch point's mean",
            channels="channels serving the touch point",
            spread="highest − lowest channel mean",
            sd_channels="standard deviation of the channel means",
            statistic="Welch's F",
            df_between="its numerator degrees of freedom",
            df_within="its denominator degrees of freedom",
            p_value="Welch's ANOVA of equal channel means",
            q_value="Benjamini–Hochberg q-value of p_value over touch points",
        ),
        brief=(
            "n", "mean", "mean_low", "mean_high", "deviation", "spread", "sd_channels",
            "p_value", "q_value",
        ),
        scope=ScopeRule(recount=("n",)),
    )
)  # fmt: skip
