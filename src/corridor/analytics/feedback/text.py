"""Reads over stored text analysis: sentiment, intents and emotions, themes, solicited against
unsolicited — per touch point, department, partner or any feedback dimension, with n and
intervals. Pages and surfaces read these; nothing is recomputed from the texts.

Every function takes the parameters of :func:`corridor.analytics.feedback.gaps.gap_table` (``by``,
``period``, ``filters``, ``since``, ``until``, ``confidence``) and returns an
:class:`~corridor.analytics.core.result.AnalyticsResult`. Sums are computed in the engine (one
``GROUP BY`` over ``feedback`` ⋈ ``text_analysis``); intervals come from
:mod:`corridor.analytics.estimators.stats`: Student-t for mean sentiment (−1…+1), Wilson for shares,
Welch and Newcombe for differences. A merged theme counts under the theme it was merged into.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Unpack

import ibis
import ibis.expr.types as ir
import pandas as pd

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core import registry, result_columns
from corridor.analytics.core.counting import count_where
from corridor.analytics.core.dimensions import Filters, Query, QueryArgs, Source
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.periods import key_frame
from corridor.analytics.core.result import AnalyticsResult, put_interval
from corridor.analytics.estimators import stats
from corridor.analytics.feedback.facets import SOLICITED, UNSOLICITED, put_side_differences
from corridor.text.affect import EMOTIONS, INTENTS

__all__ = [
    "intent_table",
    "recent_comments",
    "sentiment_table",
    "source_sentiment",
    "text_rows",
    "theme_summary",
    "theme_table",
]


def text_rows(source: Source, query: Query) -> ir.Table:
    """Feedback rows of the query (its dimensions, filters, time range and period) that have a
    text analysis, with ``sentiment``, ``sentiment_label``, ``intent``, ``emotions``, ``theme``
    (merges resolved) and ``theme_label``."""
    t = dims.query_rows(source, query)
    a = dims.get_table(source, "text_analysis")
    a = a.select(
        "sentiment", "sentiment_label", "intent", "emotions", _a_id=a.feedback_id, _theme=a.theme_id
    )
    th = dims.get_table(source, "text_themes")
    target = th.view()
    themes = th.left_join(target, th.merged_into == target.theme_id).select(
        _th_id=th.theme_id,
        theme=ibis.coalesce(th.merged_into, th.theme_id),
        theme_label=ibis.coalesce(target.label, th.label),
    )
    joined = t.inner_join(a, t.feedback_id == a._a_id).left_join(themes, a._theme == themes._th_id)
    return joined.select(
        *t.columns, "sentiment", "sentiment_label", "intent", "emotions", "theme", "theme_label"
    )


def _sentiment_sums(t: ir.Table) -> dict[str, Any]:
    s = t.sentiment
    return {
        "n": t.count(),
        "sum_sentiment": s.sum(),
        "sumsq_sentiment": (s * s).sum(),
        "n_positive": count_where(t, t.sentiment_label == "positive"),
        "n_negative": count_where(t, t.sentiment_label == "negative"),
    }


def _add_sentiment(out: pd.DataFrame, sums: pd.DataFrame, conf: float, prefix: str = "") -> None:
    n = sums["n"].to_numpy(dtype=float)
    est = stats.mean_interval(n, sums["sum_sentiment"], sums["sumsq_sentiment"], conf)
    out[f"{prefix}n"] = sums["n"].astype("int64").to_numpy()
    put_interval(out, f"{prefix}mean_sentiment", est.mean, est.low, est.high)
    for side in ("positive", "negative"):
        p = stats.proportion(sums[f"n_{side}"], sums["n"], conf)
        put_interval(out, f"{prefix}share_{side}", p.share, p.low, p.high)


def _per_group(
    source: Source,
    confidence: float,
    args: QueryArgs,
    sums_of: Callable[[ir.Table], dict[str, Any]],
    add: Callable[[pd.DataFrame, pd.DataFrame, float], None],
    method: str,
) -> AnalyticsResult:
    """One row per group (touch point by default) and period: the engine's ``sums_of`` the
    query's text rows, then ``add`` puts the estimates from those sums on the key frame."""
    conf = dims.check_confidence(confidence)
    query = Query.of(args, by=("touchpoint",))
    t = text_rows(source, query)
    sums = dims.aggregate(t, query.keys, sums_of(t))
    out = key_frame(sums, query.keys, query.period)
    add(out, sums, conf)
    return AnalyticsResult.from_sums(out, sums, conf, method, query.describe())


SENTIMENT_METHOD = (
    "sentiment of each feedback text (stored model score −1…+1; labels at ±0.05 for the "
    "lexicon model); mean with a Student-t interval, shares positive and negative with Wilson "
    "score intervals"
)


def sentiment_table(
    source: Source, *, confidence: float = 0.95, **args: Unpack[QueryArgs]
) -> AnalyticsResult:
    """Mean text sentiment and shares positive/negative per group (and period)."""
    return _per_group(source, confidence, args, _sentiment_sums, _add_sentiment, SENTIMENT_METHOD)


INTENT_METHOD = (
    "intent (complaint, praise, suggestion, question) and emotion facets of each text by the "
    "rules of corridor.text.affect; shares of the group's analysed texts with Wilson score "
    "intervals (a text may carry several emotions)"
)


def intent_table(
    source: Source, *, confidence: float = 0.95, **args: Unpack[QueryArgs]
) -> AnalyticsResult:
    """Share of each intent and each emotion facet per group (and period)."""
    return _per_group(source, confidence, args, _intent_sums, _add_intents, INTENT_METHOD)


def _intent_sums(t: ir.Table) -> dict[str, Any]:
    aggs: dict[str, Any] = {"n": t.count()}
    for i in INTENTS:
        aggs[f"n_{i}"] = count_where(t, t.intent == i)
    for e in EMOTIONS:
        aggs[f"n_{e}"] = count_where(t, t.emotions.contains(e))
    return aggs


def _add_intents(out: pd.DataFrame, sums: pd.DataFrame, conf: float) -> None:
    out["n"] = sums["n"].astype("int64").to_numpy()
    for name in (*INTENTS, *EMOTIONS):
        p = stats.proportion(sums[f"n_{name}"], sums["n"], conf)
        out[f"n_{name}"] = sums[f"n_{name}"].astype("int64").to_numpy()
        put_interval(out, f"share_{name}", p.share, p.low, p.high)


THEME_METHOD = (
    "texts per theme (merged themes counted under their target): share of the group's "
    "analysed texts with a Wilson interval; mean sentiment with a Student-t interval; with a "
    "period, the change in share against the previous period (Newcombe interval, pooled z-test)"
)


def theme_table(
    source: Source, *, confidence: float = 0.95, **args: Unpack[QueryArgs]
) -> AnalyticsResult:
    """Size, share, sentiment (and trend, with a period) of each theme per group."""
    conf = dims.check_confidence(confidence)
    query = Query.of(args)
    if "theme" in query.by:
        raise AnalyticsQueryError("themes are always a row key; leave 'theme' out of the grouping")
    t = text_rows(source, query)
    totals = dims.aggregate(t, query.keys, {"group_n": t.count()})
    themed = t.filter(t.theme.notnull())
    sums = dims.aggregate(themed, [*query.keys, "theme", "theme_label"], _sentiment_sums(themed))
    sums = (
        sums.merge(totals, on=query.keys, how="left")
        if query.keys
        else sums.assign(group_n=int(totals["group_n"].iloc[0]) if len(totals) else 0)
    )
    out = key_frame(sums, query.keys, query.period)
    out["theme"] = sums["theme"].to_numpy()
    out["theme_label"] = sums["theme_label"].to_numpy()
    _add_sentiment(out, sums, conf)
    out["group_n"] = sums["group_n"].astype("int64").to_numpy()
    share = stats.proportion(sums["n"], sums["group_n"], conf)
    put_interval(out, "share", share.share, share.low, share.high)
    if query.period:
        _add_trend(out, query, conf)
    order = [*[k for k in query.by], "theme", *(["period"] if query.period else [])]
    out = out.sort_values(order, na_position="last", kind="mergesort").reset_index(drop=True)
    return AnalyticsResult(out, int(totals["group_n"].sum()), conf, THEME_METHOD,
                           query.describe())  # fmt: skip


def _add_trend(out: pd.DataFrame, query: Query, conf: float) -> None:
    """Change in share against the previous period of the same group and theme (rows with no
    texts in the theme in the previous period compare with a share of 0 over its total)."""
    keys = [*query.by, "theme"]
    out.sort_values([*keys, "period"], inplace=True, kind="mergesort")
    prev = out.groupby(keys, dropna=False, sort=False)[["n", "group_n", "period"]].shift(1)
    diff = stats.proportion_difference(out["n"], out["group_n"], prev["n"], prev["group_n"], conf)
    put_interval(
        out, "delta_share", diff.delta, diff.low, diff.high, p_value=("p_value_share", diff.p_value)
    )


SOURCE_METHOD = (
    "solicited = survey, unsolicited = review and social; per side: mean text sentiment with a "
    "Student-t interval and share negative with a Wilson interval; unsolicited − solicited: "
    "mean by Welch's t-test, negativity skew (share negative) by Newcombe's hybrid score "
    "interval and the pooled two-proportion z-test"
)


def source_sentiment(
    source: Source, *, confidence: float = 0.95, **args: Unpack[QueryArgs]
) -> AnalyticsResult:
    """Text sentiment of solicited against unsolicited feedback per group, with the negativity
    skew (how much darker the public picture is than the representative one)."""
    conf = dims.check_confidence(confidence)
    query = Query.of(args, by=("touchpoint",))
    if "source" in query.by:
        raise AnalyticsQueryError(
            "source_sentiment already splits by source (solicited: survey; unsolicited: review, "
            "social); leave 'source' out of the grouping"
        )
    flt = dict(query.filters)
    flt.setdefault("source", (*SOLICITED, *UNSOLICITED))
    t = text_rows(source, replace(query, filters=flt))
    side = ibis.cases(
        (t.source.isin(list(SOLICITED)), "solicited"),
        (t.source.isin(list(UNSOLICITED)), "unsolicited"),
        else_=ibis.null("string"),
    )
    t = t.mutate(_side=side).filter(lambda r: r._side.notnull())
    sums = dims.aggregate(t, [*query.keys, "_side"], _sentiment_sums(t))
    groups = (
        sums[query.keys].drop_duplicates().reset_index(drop=True)
        if query.keys
        else (pd.DataFrame(index=range(1)))
    )
    out = key_frame(groups, query.keys, query.period)
    per: dict[str, pd.DataFrame] = {}
    for name in ("solicited", "unsolicited"):
        rows = sums[sums["_side"] == name].drop(columns="_side")
        side_sums = (groups.merge(rows, on=query.keys, how="left") if query.keys else
                     rows.reset_index(drop=True).reindex(range(1)))  # fmt: skip
        side_sums = side_sums.fillna({c: 0 for c in _sentiment_sums(t)})
        per[name] = side_sums
        _add_sentiment(out, side_sums, conf, prefix=f"{name}_")
    put_side_differences(
        out, per["solicited"], per["unsolicited"], conf, value="sentiment", below="n_negative",
        rated="n", mean_column="delta_mean_sentiment",
    )  # fmt: skip
    frame = out.reset_index(drop=True)
    return AnalyticsResult.from_sums(frame, sums, conf, SOURCE_METHOD, query.describe())


# -- for pages -------------------------------------------------------------------------------


def recent_comments(
    source: Source,
    touchpoint: str | None = None,
    limit: int = 20,
    scope_filters: Filters | None = None,
) -> list[dict[str, Any]]:
    """The latest analysed (redacted) feedback texts, newest first, with sentiment, intent,
    emotions and theme; ``touchpoint`` and ``scope_filters`` (e.g. an access scope's forced
    department or partner) narrow them."""
    if not 1 <= int(limit) <= 1000:
        raise AnalyticsQueryError(f"limit must be 1…1000, got {limit}")
    filters: dict[str, Any] = dict(scope_filters or {})
    if touchpoint is not None:
        filters["touchpoint"] = [touchpoint]
    query = Query.build(["touchpoint", "source"], None, filters)
    t = text_rows(source, query)
    f = dims.get_table(source, "feedback").view()
    f = f.select(_f_id=f.feedback_id, text=f.text)
    t = t.left_join(f, t.feedback_id == f._f_id).drop("_f_id")
    t = t.order_by([ibis.desc(t.occurred_at), t.feedback_id]).limit(int(limit))
    cols = ["feedback_id", "occurred_at", "touchpoint", "source", "text", "sentiment",
            "sentiment_label", "intent", "emotions", "theme", "theme_label"]  # fmt: skip
    df = t.select(*cols).to_pyarrow().to_pandas()
    result = AnalyticsResult(df, len(df), 0.95, "")
    rows = result.to_records()
    for r in rows:
        r["emotions"] = [e for e in (r["emotions"] or "").split(",") if e]
    return rows


def theme_summary(
    source: Source, filters: Filters | None = None, confidence: float = 0.95
) -> list[dict[str, Any]]:
    """Every theme with its size, share of the analysed texts and mean sentiment (with
    intervals), largest first — for a page's theme panel."""
    result = theme_table(source, filters=filters, confidence=confidence)
    rows = result.to_records()
    rows.sort(key=lambda r: -(r["n"] or 0))
    return rows


def _text(
    name: str,
    path: str,
    title: str,
    run: Any,
    description: str,
    by: tuple[str, ...],
    cols: str,
    brief: tuple[str, ...],
    command: tuple[str, ...] = (),
) -> None:
    registry.register(
        registry.Analysis(
            f"text_{name}",
            title,
            run,
            path=f"/text/{path}",
            command=command or ("text", name),
            tag="voice of the customer",
            description=description + " Read from the stored text analysis; per grouping and "
            "period, filters by any dimension.",
            by=registry.by_param(by),
            period=registry.PERIOD,
            filters=registry.DIMENSION_NAMES,
            columns=result_columns.columns(cols),
            brief=brief,
        )
    )


_text(
    "sentiment", "sentiment", "Text sentiment", sentiment_table,
    "Mean sentiment of feedback texts (−1 to 1) with its interval and the shares of negative, "
    "neutral and positive texts with Wilson intervals.", ("touchpoint",),
    (
        "n:int mean_sentiment mean_sentiment_low mean_sentiment_high share_positive "
        "share_positive_low share_positive_high share_negative share_negative_low "
        "share_negative_high"
    ),
    ("n", "mean_sentiment", "mean_sentiment_low", "mean_sentiment_high", "share_negative",
     "share_negative_low", "share_negative_high"),
)  # fmt: skip
_text(
    "intents", "intents", "Intents and emotions in feedback text", intent_table,
    "The share of texts with each intent (complaint, praise, question, ...) and emotion, with "
    "Wilson intervals.", ("touchpoint",),
    (
        "n:int n_complaint:int share_complaint share_complaint_low share_complaint_high "
        "n_praise:int share_praise share_praise_low share_praise_high n_suggestion:int "
        "share_suggestion share_suggestion_low share_suggestion_high n_question:int "
        "share_question share_question_low share_question_high n_anger:int share_anger "
        "share_anger_low share_anger_high n_frustration:int share_frustration "
        "share_frustration_low share_frustration_high n_disappointment:int "
        "share_disappointment share_disappointment_low share_disappointment_high n_worry:int "
        "share_worry share_worry_low share_worry_high n_joy:int share_joy share_joy_low "
        "share_joy_high n_trust:int share_trust share_trust_low share_trust_high "
        "n_surprise:int share_surprise share_surprise_low share_surprise_high"
    ),
    ("n", "share_complaint", "share_praise", "share_suggestion", "share_question",
     "share_anger", "share_frustration", "share_joy"),
)  # fmt: skip
_text(
    "sources", "sources", "Text sentiment, solicited (survey) against unsolicited (review, social)",
    source_sentiment,
    "Mean text sentiment of solicited against unsolicited feedback, their difference with its "
    "interval and p-value.", ("touchpoint",),
    (
        "solicited_n:int solicited_mean_sentiment solicited_mean_sentiment_low "
        "solicited_mean_sentiment_high solicited_share_positive solicited_share_positive_low "
        "solicited_share_positive_high solicited_share_negative solicited_share_negative_low "
        "solicited_share_negative_high unsolicited_n:int unsolicited_mean_sentiment "
        "unsolicited_mean_sentiment_low unsolicited_mean_sentiment_high "
        "unsolicited_share_positive unsolicited_share_positive_low "
        "unsolicited_share_positive_high unsolicited_share_negative "
        "unsolicited_share_negative_low unsolicited_share_negative_high delta_mean_sentiment "
        "delta_mean_sentiment_low delta_mean_sentiment_high p_value_mean_sentiment "
        "negativity_skew negativity_skew_low negativity_skew_high p_value_skew"
    ),
    ("solicited_n", "solicited_mean_sentiment", "unsolicited_n", "unsolicited_mean_sentiment",
     "negativity_skew", "negativity_skew_low", "negativity_skew_high", "p_value_skew"),
)  # fmt: skip
_text(
    "themes", "themes/stats", "Themes in feedback text", theme_table,
    "Each theme's share of the analysed texts with a Wilson interval and its mean sentiment "
    "with an interval.", (),
    (
        "theme:str theme_label:str n:int mean_sentiment mean_sentiment_low "
        "mean_sentiment_high share_positive share_positive_low share_positive_high "
        "share_negative share_negative_low share_negative_high group_n:int share share_low "
        "share_high delta_share delta_share_low delta_share_high p_value_share"
    ),
    ("theme_label", "n", "share", "share_low", "share_high", "mean_sentiment", "delta_share",
     "p_value_share"),
    ("themes", "show"),
)  # fmt: skip
