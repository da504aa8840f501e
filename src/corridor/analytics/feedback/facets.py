"""Facets of the experience: functional against emotional, solicited against unsolicited.

Two views, each computed as sufficient statistics in the engine (one ``GROUP BY``) and
summarised without it:

* :func:`facet_table` — per grouping (and period), the *functional* facet, mean ``experience``
  (0–10), beside the *emotional* facet, mean ``emotion`` (−3…+3), each with a Student-t
  interval; the share of negative emotions (``emotion < 0``, Wilson interval); and, over the
  records that carry both, Pearson's correlation of the two with a Fisher-z interval. A
  grouping that is functionally fine but emotionally poor (or the reverse) shows at a glance.
* :func:`source_facets` — per touch point (or any grouping), the distribution of
  ``experience`` (or of the gap) in *solicited* feedback (``survey``: the company asked,
  representative) beside *unsolicited* feedback (``review``, ``social``: the customer chose to
  speak, mostly after a bad experience); transcripts and field notes are neither and are left
  out. Each side has counts per score, the mean with a t interval and the share below
  expectation (Wilson). The *negativity skew* is the share below expectation unsolicited minus
  solicited, with Newcombe's (1998) hybrid score interval and the pooled two-proportion z-test:
  how much darker the public picture is than the representative one.

Pearson's correlation from sums: with ``Sxx = Σx² − (Σx)²/n``, ``Syy`` alike and
``Sxy = Σxy − ΣxΣy/n``, ``r = Sxy / √(Sxx·Syy)``; interval ``tanh(atanh(r) ± z/√(n − 3))``
(Fisher 1921) and p-value from ``t = r√((n − 2)/(1 − r²))`` on ``n − 2`` degrees of freedom
— the same as ``scipy.stats.pearsonr`` and its ``confidence_interval()``.

References
----------
* Fisher, R. A. (1921), "On the 'probable error' of a coefficient of correlation deduced from a
  small sample", *Metron* 1 — the z transformation.
* Wilson (1927), Welch (1947) and Newcombe (1998): see :mod:`corridor.analytics.estimators.stats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Unpack

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core import registry, result_columns
from corridor.analytics.core.counting import count_where
from corridor.analytics.core.dimensions import Query, QueryArgs, Source
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.periods import key_frame
from corridor.analytics.core.result import AnalyticsResult, put_interval
from corridor.analytics.estimators import stats
from corridor.lazy import lazy

_sp = lazy("scipy.stats")

#: feedback sources on each side of :func:`source_facets`
SOLICITED: tuple[str, ...] = ("survey",)
UNSOLICITED: tuple[str, ...] = ("review", "social")
SIDES: tuple[str, ...] = ("solicited", "unsolicited")

#: the score bins of :func:`source_facets` per measure (a value v falls in bin ⌊v⌋, clipped)
BINS: dict[str, tuple[int, ...]] = {
    "experience": tuple(range(0, 11)),
    "gap": tuple(range(-10, 11)),
}


def feedback_rows(source: Source, query: Query, extra: Sequence[str] = ("emotion",)) -> ir.Table:
    """:func:`~corridor.analytics.core.dimensions.query_rows` plus feedback fields it does not carry
    (by default ``emotion``), as float64, joined back on the primary key ``feedback_id``
    (a LEFT JOIN on a key: never adds or drops rows)."""
    t = dims.query_rows(source, query)
    missing = [c for c in extra if c not in t.columns]
    if not missing:
        return t
    f = dims.get_table(source, "feedback").view()  # a self-join needs its own alias
    more = f.select(_fb_id=f.feedback_id, **{c: f[c].cast("float64") for c in missing})
    joined = t.left_join(more, t.feedback_id == more._fb_id)
    return joined.select(*t.columns, *missing)


# -- Pearson correlation from sums ---------------------------------------------------------------


class Correlation(NamedTuple):
    """Pearson's r with its Fisher-z interval and the two-sided p-value of r = 0."""

    r: Any
    low: Any
    high: Any
    p_value: Any


def pearson(
    n: Any,
    sum_x: Any,
    sum_y: Any,
    sumsq_x: Any,
    sumsq_y: Any,
    sum_xy: Any,
    confidence: float = 0.95,
) -> Correlation:
    """Pearson's correlation from sufficient statistics, vectorised over groups (see the module
    notes). ``r`` needs ``n ≥ 2`` and both variances positive, the interval ``n ≥ 4``, the
    p-value ``n ≥ 3``; NaN otherwise."""
    k, sx, sy, sxx, syy, sxy = (
        np.asarray(pd.Series(v).to_numpy(dtype=float, na_value=np.nan), dtype=float)
        if isinstance(v, pd.Series)
        else np.asarray(v, dtype=float)
        for v in (n, sum_x, sum_y, sumsq_x, sumsq_y, sum_xy)
    )
    z = stats.z_critical(confidence)
    with np.errstate(all="ignore"):
        cxx = sxx - sx * sx / k
        cyy = syy - sy * sy / k
        cxy = sxy - sx * sy / k
        ok = (k >= 2) & (cxx > 0) & (cyy > 0)
        r = np.where(ok, np.clip(cxy / np.sqrt(cxx * cyy), -1.0, 1.0), np.nan)
        fz = np.arctanh(r)
        half = z / np.sqrt(k - 3.0)
        low = np.where(k > 3, np.tanh(fz - half), np.nan)
        high = np.where(k > 3, np.tanh(fz + half), np.nan)
        t = r * np.sqrt((k - 2.0) / (1.0 - r * r))
        p = np.where(k > 2, 2.0 * _sp.t.sf(np.abs(t), k - 2.0), np.nan)
    p = np.where(np.isnan(r) | (k < 3), np.nan, np.where(np.abs(r) == 1.0, 0.0, p))
    out = (r, low, high, np.asarray(p, dtype=float))
    return Correlation(*(a[()] if a.ndim == 0 else a for a in out))


# -- functional against emotional ----------------------------------------------------------------

#: sufficient statistics of :func:`facet_stats` (additive)
FACET_SUMS: tuple[str, ...] = (
    "n",
    "n_experience",
    "sum_experience",
    "sumsq_experience",
    "n_emotion",
    "sum_emotion",
    "sumsq_emotion",
    "n_negative_emotion",
    "n_both",
    "both_sum_experience",
    "both_sum_emotion",
    "both_sumsq_experience",
    "both_sumsq_emotion",
    "both_sum_product",
)

FACET_METHOD = (
    "functional facet = mean experience (0–10), emotional facet = mean emotion (−3…+3), each "
    "over the records that have it, with Student-t intervals; share of negative emotion "
    "(emotion < 0) with Wilson score intervals; Pearson correlation of experience and emotion "
    "over records with both, Fisher-z interval, t-test of r = 0"
)


def facet_sums(source: Source, query: Query) -> pd.DataFrame:
    """:func:`facet_stats` for an already validated query."""
    t = feedback_rows(source, query)
    t = t.filter(t.experience.notnull() | t.emotion.notnull())
    x, y = t.experience, t.emotion
    both = x.notnull() & y.notnull()
    bx = ibis.ifelse(both, x, ibis.null("float64"))
    by_ = ibis.ifelse(both, y, ibis.null("float64"))
    return dims.aggregate(
        t,
        query.keys,
        {
            "n": t.count(),
            "n_experience": x.count(),
            "sum_experience": x.sum(),
            "sumsq_experience": (x * x).sum(),
            "n_emotion": y.count(),
            "sum_emotion": y.sum(),
            "sumsq_emotion": (y * y).sum(),
            "n_negative_emotion": count_where(t, y < 0),
            "n_both": count_where(t, both),
            "both_sum_experience": bx.sum(),
            "both_sum_emotion": by_.sum(),
            "both_sumsq_experience": (bx * bx).sum(),
            "both_sumsq_emotion": (by_ * by_).sum(),
            "both_sum_product": (bx * by_).sum(),
        },
    )


def facet_stats(source: Source, **args: Unpack[QueryArgs]) -> pd.DataFrame:
    """Sufficient statistics (:data:`FACET_SUMS`) of experience and emotion per group (and
    period), computed in the engine over feedback with at least one of the two."""
    return facet_sums(source, Query.of(args))


def summarise_facets(
    sums: pd.DataFrame,
    by: Sequence[str] | str | None = None,
    period: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The columns documented on :class:`FacetResult` from a :data:`FACET_SUMS` frame. Pure."""
    query = Query.build(by, period)
    conf = dims.check_confidence(confidence)
    out = key_frame(sums, query.keys, query.period)
    out["n"] = sums["n"].astype("int64")
    for name in ("experience", "emotion"):
        k = sums[f"n_{name}"].to_numpy(dtype=float)
        est = stats.mean_interval(k, sums[f"sum_{name}"], sums[f"sumsq_{name}"], conf)
        out[f"n_{name}"] = sums[f"n_{name}"].astype("int64")
        put_interval(out, f"mean_{name}", est.mean, est.low, est.high)
    neg = stats.proportion(sums["n_negative_emotion"], sums["n_emotion"], conf)
    out["n_negative_emotion"] = sums["n_negative_emotion"].astype("int64")
    put_interval(out, "share_negative_emotion", neg.share, neg.low, neg.high)
    corr = pearson(
        sums["n_both"],
        sums["both_sum_experience"],
        sums["both_sum_emotion"],
        sums["both_sumsq_experience"],
        sums["both_sumsq_emotion"],
        sums["both_sum_product"],
        conf,
    )
    out["n_both"] = sums["n_both"].astype("int64")
    put_interval(
        out,
        "correlation",
        corr.r,
        corr.low,
        corr.high,
        p_value=("p_value_correlation", corr.p_value),
    )
    return out.reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class FacetResult(AnalyticsResult):
    """The functional and the emotional facet side by side, per group (and period).

    ``frame`` columns, in order: the grouping dimensions, then ``period`` and ``period_label``
    with a period; ``n`` (records with experience or emotion); ``n_experience``,
    ``mean_experience`` with ``_low``/``_high`` (0–10, t interval); ``n_emotion``,
    ``mean_emotion`` with ``_low``/``_high`` (−3…+3, t interval); ``n_negative_emotion`` and
    ``share_negative_emotion`` with ``_low``/``_high`` (emotion < 0, Wilson); ``n_both``
    (records with both), ``correlation`` (Pearson r of experience and emotion) with
    ``_low``/``_high`` (Fisher z) and ``p_value_correlation`` (t-test of r = 0).
    """


def facet_table(
    source: Source, *, confidence: float = 0.95, **args: Unpack[QueryArgs]
) -> FacetResult:
    """Functional (experience) and emotional (emotion) facets side by side for any grouping,
    period, filters and time range — the parameters of
    :func:`corridor.analytics.feedback.gaps.gap_table`."""
    return FacetResult.per_group(
        source, confidence, args, facet_sums, summarise_facets, FACET_METHOD
    )


# -- solicited against unsolicited ---------------------------------------------------------------

#: sufficient statistics of :func:`source_facet_stats` per group, side and score bin (additive)
SOURCE_SUMS: tuple[str, ...] = ("n", "sum_value", "sumsq_value", "n_rated", "n_below")

SOURCE_METHOD = (
    "solicited = survey, unsolicited = review and social (transcripts and field notes left "
    "out); per side: counts per score bin ⌊value⌋, mean with a Student-t interval, share below "
    "expectation (experience < expectation, over records with both) with Wilson score "
    "intervals; unsolicited − solicited: mean by Welch's t-test and interval, negativity skew "
    "(share below) by the pooled two-proportion z-test and Newcombe's hybrid score interval"
)


def _check_measure(measure: str) -> str:
    if measure not in BINS:
        raise AnalyticsQueryError(f"unknown measure {measure!r}; allowed: {', '.join(BINS)}")
    return measure


def _check_not_source(query: Query) -> None:
    if "source" in query.by:
        raise AnalyticsQueryError(
            "source_facets already splits by source (solicited: survey; unsolicited: review, "
            "social); leave 'source' out of the grouping"
        )


def source_facet_sums(source: Source, query: Query, measure: str = "experience") -> pd.DataFrame:
    """:func:`source_facet_stats` for an already validated query."""
    _check_not_source(query)
    bins = BINS[_check_measure(measure)]
    filters = dict(query.filters)
    if "source" not in filters:  # keep the two sides only, and carry the source column
        filters["source"] = (*SOLICITED, *UNSOLICITED)
    t = dims.query_rows(source, replace(query, filters=filters))
    e, x = t.expectation, t.experience
    value = x - e if measure == "gap" else x
    side = ibis.cases(
        (t.source.isin(list(SOLICITED)), "solicited"),
        (t.source.isin(list(UNSOLICITED)), "unsolicited"),
        else_=ibis.null("string"),
    )
    t = t.mutate(
        _side=side,
        _v=value,
        _bin=value.floor().clip(bins[0], bins[-1]).cast("int64"),
        _rated=e.notnull() & x.notnull(),
    )
    t = t.filter(t._side.notnull(), t._v.notnull())
    e, x = t.expectation, t.experience
    sums = dims.aggregate(
        t,
        [*query.keys, "_side", "_bin"],
        {
            "n": t.count(),
            "sum_value": t._v.sum(),
            "sumsq_value": (t._v * t._v).sum(),
            "n_rated": count_where(t, t._rated),
            "n_below": count_where(t, x < e),
        },
    )
    return sums.rename(columns={"_side": "side", "_bin": "bin"})


def source_facet_stats(
    source: Source, *, measure: str = "experience", **args: Unpack[QueryArgs]
) -> pd.DataFrame:
    """Sufficient statistics per group (and period), side (``solicited``/``unsolicited``) and
    score bin, computed in the engine: the ``by`` columns, ``period``, ``side``, ``bin``, then
    :data:`SOURCE_SUMS`. ``measure`` is ``experience`` (bins 0…10) or ``gap`` (−10…10)."""
    return source_facet_sums(source, Query.of(args, by=("touchpoint",)), measure)


def summarise_source_facets(
    sums: pd.DataFrame,
    by: Sequence[str] | str | None = "touchpoint",
    period: str | None = None,
    measure: str = "experience",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The columns documented on :class:`SourceFacetResult` from a :func:`source_facet_stats`
    frame (rows per group, side and bin, sorted by the group keys). Pure: no engine.

    With no grouping and no period there is exactly one row (zeros when nothing matched)."""
    query = Query.build(by, period)
    conf = dims.check_confidence(confidence)
    bins = BINS[_check_measure(measure)]
    keys = query.keys
    work = sums.copy()
    for k in query.by:  # one sentinel for missing labels, so pandas groups them as SQL does
        work[k] = work[k].astype(object).where(work[k].notna(), _MISSING)
    if keys:
        groups = work[keys].drop_duplicates().reset_index(drop=True)
        ids = groups.reset_index(names="_g")
        work = work.merge(ids, on=keys, how="left", validate="many_to_one")
    else:
        groups = pd.DataFrame(index=range(1))
        work["_g"] = 0
    size = len(groups)
    out = key_frame(groups, keys, query.period)
    totals: dict[str, pd.DataFrame] = {}
    for side in SIDES:
        rows = work[work["side"] == side]
        tot = rows.groupby("_g")[list(SOURCE_SUMS)].sum().reindex(range(size), fill_value=0)
        totals[side] = tot
        counts = np.zeros((size, len(bins)), dtype=np.int64)
        np.add.at(
            counts,
            (rows["_g"].to_numpy(dtype=int), rows["bin"].to_numpy(dtype=int) - bins[0]),
            rows["n"].to_numpy(dtype=np.int64),
        )
        n = tot["n"].to_numpy(dtype=float)
        est = stats.mean_interval(n, tot["sum_value"], tot["sumsq_value"], conf)
        below = stats.proportion(tot["n_below"], tot["n_rated"], conf)
        out[f"{side}_n"] = tot["n"].to_numpy(dtype=np.int64)
        put_interval(out, f"{side}_mean", est.mean, est.low, est.high)
        out[f"{side}_counts"] = [[int(c) for c in row] for row in counts]
        out[f"{side}_n_rated"] = tot["n_rated"].to_numpy(dtype=np.int64)
        out[f"{side}_n_below"] = tot["n_below"].to_numpy(dtype=np.int64)
        put_interval(out, f"{side}_share_below", below.share, below.low, below.high)
    put_side_differences(
        out, totals["solicited"], totals["unsolicited"], conf, value="value", below="n_below",
        rated="n_rated", mean_column="delta_mean",
    )  # fmt: skip
    for k in query.by:
        out[k] = out[k].where(out[k] != _MISSING, None)
    return out.reset_index(drop=True)


_MISSING = "\x00missing"


def put_side_differences(
    out: pd.DataFrame,
    solicited: pd.DataFrame,
    unsolicited: pd.DataFrame,
    conf: float,
    *,
    value: str,
    below: str,
    rated: str,
    mean_column: str,
) -> None:
    """Unsolicited minus solicited, per row of the two sides' sums: the difference of the mean
    ``value`` (Welch; ``sum_<value>``, ``sumsq_<value>`` and ``n``) as ``mean_column`` with its
    p-value (``p_value`` + what follows ``delta`` in the name), and of the share of ``below``
    among ``rated`` as ``negativity_skew`` (with ``p_value_skew``)."""
    m_s = stats.moments(solicited["n"], solicited[f"sum_{value}"], solicited[f"sumsq_{value}"])
    m_u = stats.moments(
        unsolicited["n"], unsolicited[f"sum_{value}"], unsolicited[f"sumsq_{value}"]
    )
    diff = stats.welch_difference(m_u.mean, m_u.var, m_u.n, m_s.mean, m_s.var, m_s.n, conf)
    p_mean = "p_value" + mean_column.removeprefix("delta")
    put_interval(out, mean_column, diff.delta, diff.low, diff.high, p_value=(p_mean, diff.p_value))
    skew = stats.proportion_difference(
        unsolicited[below], unsolicited[rated], solicited[below], solicited[rated], conf
    )
    put_interval(
        out, "negativity_skew", skew.delta, skew.low, skew.high,
        p_value=("p_value_skew", skew.p_value),
    )  # fmt: skip


@dataclass(frozen=True, eq=False)
class SourceFacetResult(AnalyticsResult):
    """Solicited (survey) against unsolicited (review, social) feedback, per group.

    ``frame`` — one row per group (and period) with data on either side; columns: the grouping
    dimensions (by default ``touchpoint``), ``period`` and ``period_label`` with a period; then
    for ``solicited`` and ``unsolicited`` alike (prefix ``solicited_`` / ``unsolicited_``):

    * ``n`` (records with the measure), ``mean`` with ``mean_low``/``mean_high`` (t interval);
    * ``counts`` — a list of record counts per score bin, aligned with :attr:`bins` (a value v
      counts in bin ⌊v⌋, clipped to the scale);
    * ``n_rated`` (records with expectation and experience), ``n_below`` (experience <
      expectation), ``share_below`` with ``_low``/``_high`` (Wilson);

    and ``delta_mean`` (unsolicited − solicited) with ``_low``/``_high`` and ``p_value_mean``
    (Welch), ``negativity_skew`` (share below, unsolicited − solicited) with ``_low``/``_high``
    (Newcombe) and ``p_value_skew`` (pooled z).
    """

    measure: str = "experience"

    @property
    def bins(self) -> tuple[int, ...]:
        """The score bins the ``*_counts`` lists are aligned with."""
        return BINS[self.measure]

    def metadata(self) -> dict[str, Any]:
        return super().metadata() | {"measure": self.measure, "bins": list(self.bins)}


def source_facets(
    source: Source,
    *,
    measure: str = "experience",
    confidence: float = 0.95,
    **args: Unpack[QueryArgs],
) -> SourceFacetResult:
    """Score distributions of solicited against unsolicited feedback per touch point (or any
    grouping but ``source``), with the negativity skew. ``measure`` is ``experience`` or
    ``gap`` (experience − expectation)."""
    conf = dims.check_confidence(confidence)
    m = _check_measure(measure)
    query = Query.of(args, by=("touchpoint",))
    sums = source_facet_sums(source, query, m)
    frame = summarise_source_facets(sums, query.by, query.period, m, conf)
    meta = query.describe() | {"measure": m}
    return SourceFacetResult.from_sums(frame, sums, conf, SOURCE_METHOD, meta, measure=m)


__all__ = [
    "BINS",
    "FACET_SUMS",
    "SIDES",
    "SOLICITED",
    "SOURCE_SUMS",
    "UNSOLICITED",
    "Correlation",
    "FacetResult",
    "SourceFacetResult",
    "facet_stats",
    "facet_sums",
    "facet_table",
    "feedback_rows",
    "pearson",
    "put_side_differences",
    "source_facet_stats",
    "source_facet_sums",
    "source_facets",
    "summarise_facets",
    "summarise_source_facets",
]


registry.register(
    registry.Analysis(
        "facets",
        "Functional (experience) and emotional (emotion) facets",
        facet_table,
        path="/facets",
        command=("facets",),
        tag="feedback",
        description="The functional facet (experience rating) and the emotional facet "
        "(emotion rating) side by side per grouping and period: means with intervals and their "
        "Pearson correlation with a Fisher-z interval.",
        by=registry.by_param(),
        period=registry.PERIOD,
        filters=registry.DIMENSION_NAMES,
        brief=("n", "mean_experience±", "mean_emotion±", "correlation"),
        columns=result_columns.columns(
            "n:int n_experience:int mean_experience± n_emotion:int mean_emotion± "
            "n_negative_emotion:int share_negative_emotion± n_both:int correlation± "
            "p_value_correlation"
        ),
    )
)  # fmt: skip
registry.register(
    registry.Analysis(
        "sources",
        "Solicited (survey) against unsolicited (review, social) feedback",
        source_facets,
        path="/facets/sources",
        command=("sources",),
        tag="feedback",
        description="Solicited (survey) against unsolicited (review, social) feedback per "
        "grouping: means on each side and the negativity skew of unsolicited feedback with its "
        "interval and p-value.",
        by=registry.by_param(("touchpoint",)),
        period=registry.PERIOD,
        filters=registry.DIMENSION_NAMES,
        extras=("measure", "bins"),
        brief=(
            "solicited_n", "solicited_mean", "unsolicited_n", "unsolicited_mean",
            "negativity_skew±", "p_value_skew",
        ),
        columns=result_columns.columns(
            "solicited_n:int solicited_mean± solicited_counts:list solicited_n_rated:int "
            "solicited_n_below:int solicited_share_below± unsolicited_n:int unsolicited_mean± "
            "unsolicited_counts:list unsolicited_n_rated:int unsolicited_n_below:int "
            "unsolicited_share_below± delta_mean± p_value_mean negativity_skew± p_value_skew"
        ),
    )
)  # fmt: skip
