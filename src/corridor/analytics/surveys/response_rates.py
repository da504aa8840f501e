"""Response analytics of hosted surveys: how many invited people answered, and how the people
who answered differ from those who did not.

``response_rates``: per group (survey and touch point by default; also channel, department,
segment, region, partner) the invitations made, held back by the contact rules, sent, opened
(the link visited), started (an answer saved), completed (submitted), and the rates with Wilson
(1927) score intervals: response rate = completed / sent, open rate = opened / sent, completion
rate = completed / started (how many who began finished). Invitations are counted by the time
they were due (``since``/``until``).

``nonresponse``: among the sent invitations, responders (completed) against non-responders on
what the store knew of each person before the invitation went out: interactions in the 90 days
before, and the mean experience and gap (experience − expectation) of their earlier feedback.
Each measure's two means with Welch's (1947) difference, interval and t-test: a significant
difference says the scores of the responders cannot stand for everyone invited without
weighting (Groves 2006, *Nonresponse rates and nonresponse bias in household surveys*).

Both read the survey tables of a store (DuckDB or PostgreSQL); the lake has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core.dimensions import Filters, TimeLike
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.registry import Analysis, by_param, register
from corridor.analytics.core.result import AnalyticsResult, put_interval
from corridor.analytics.core.result_columns import described
from corridor.analytics.core.scoping import ScopeRule
from corridor.analytics.estimators import stats
from corridor.store.sql import add_time_range

#: what a group or filter can name, and the column it reads
GROUPS: dict[str, str] = {
    "survey": "i.survey_id",
    "touchpoint": "i.touchpoint",
    "channel": "i.channel",
    "department": "t.department",
    "segment": "p.segment",
    "region": "p.region",
    "partner": "x.partner_id",
}
FILTERS: tuple[str, ...] = ("touchpoint", "channel", "department", "segment", "region", "partner")
_FROM = """FROM survey_invitations i
LEFT JOIN touchpoints t ON t.key = i.touchpoint
LEFT JOIN people p ON p.person_id = i.person_id
LEFT JOIN interactions x ON x.interaction_id = i.interaction_id
LEFT JOIN (
    SELECT link_id, count(*) AS opened, count(started_at) AS started,
        sum(CASE WHEN state = 'submitted' THEN 1 ELSE 0 END) AS completed
    FROM survey_responses GROUP BY link_id
) r ON r.link_id = i.link_id"""
RATES_METHOD = (
    "counts of invitations by state and of their links' responses (opened: visited; started: an "
    "answer saved; completed: submitted); response rate = completed / sent, open rate = opened "
    "/ sent, completion rate = completed / started, each with a Wilson score interval"
)
BIAS_METHOD = (
    "sent invitations split into responders (completed) and non-responders; per measure (known "
    "before the invitation was sent) the two means and their difference responders − "
    "non-responders with Welch's interval and t-test"
)
MEASURES: dict[str, str] = {
    "interactions_90d": "interactions in the 90 days before the invitation",
    "prior_experience": "mean experience of the person's earlier feedback",
    "prior_gap": "mean gap (experience − expectation) of the person's earlier feedback",
}


#: what :func:`response_rates` groups by unless told
_RATES_BY = ("survey", "touchpoint")


def _store(source: Any) -> Any:
    from corridor.store import Store

    if not isinstance(source, Store):
        raise AnalyticsQueryError(
            "survey response analyses read the survey tables of a store (DuckDB or "
            "PostgreSQL), not a lake"
        )
    return source


def _where(
    by: Sequence[str] | str | None,
    default: Sequence[str],
    filters: Filters | None,
    since: TimeLike,
    until: TimeLike,
) -> tuple[list[str], list[str], list[Any]]:
    """The groups (``by``, one or several; ``default`` when None), conditions and parameters
    of an analysis's read of the invitations."""
    by = [by] if isinstance(by, str) else (default if by is None else by)
    groups = list(dict.fromkeys(by))  # a group named twice groups once
    for g in groups:
        if g not in GROUPS:
            raise AnalyticsQueryError(f"unknown group {g!r}; allowed: {', '.join(GROUPS)}")
    conds: list[str] = ["TRUE"]
    params: list[Any] = []
    for name, wanted in (filters or {}).items():
        if name not in FILTERS:
            raise AnalyticsQueryError(
                f"survey responses cannot be filtered by {name!r}; allowed: {', '.join(FILTERS)}"
            )
        values = [wanted] if isinstance(wanted, str) or wanted is None else list(wanted)
        named = [v for v in values if v not in (None, "")]
        parts = []
        if named:
            parts.append(f"{GROUPS[name]} IN ({', '.join('?' for _ in named)})")
            params += named
        if len(named) < len(values):  # an empty value selects invitations without one
            parts.append(f"{GROUPS[name]} IS NULL")
        conds.append(f"({' OR '.join(parts)})")
    lo, hi = dims.check_range(since, until)
    add_time_range(conds, params, lo, hi, "i.due_at")
    return groups, conds, params


def _read(
    source: Any,
    by: Sequence[str] | str | None,
    default: Sequence[str],
    filters: Filters | None,
    since: TimeLike,
    until: TimeLike,
    confidence: float,
) -> tuple[Any, float, list[str], list[str], list[Any]]:
    """What both analyses start with: the store (a lake is refused), the checked confidence, and
    the groups, conditions and parameters of their read (:func:`_where`)."""
    store, conf = _store(source), dims.check_confidence(confidence)
    return store, conf, *_where(by, default, filters, since, until)


def _query(by: Sequence[str], filters: Filters | None, since: TimeLike, until: TimeLike) -> dict:
    lo, hi = dims.check_range(since, until)
    return {
        "by": list(by),
        "filters": {k: v if isinstance(v, list) else [v] for k, v in (filters or {}).items()},
        "since": lo.isoformat() if lo else None,
        "until": hi.isoformat() if hi else None,
    }


def response_rates(
    source: Any,
    by: Sequence[str] | str | None = _RATES_BY,
    filters: Filters | None = None,
    since: TimeLike = None,
    until: TimeLike = None,
    confidence: float = 0.95,
) -> AnalyticsResult:
    """Invitations, opens, starts and completes per group, with the rates (see the module)."""
    store, conf, groups, conds, params = _read(
        source, by, _RATES_BY, filters, since, until, confidence
    )
    keys = [f"{GROUPS[g]} AS {g}" for g in groups]
    sql = (
        f"SELECT {', '.join([*keys, ''])}count(*) AS invited, "
        "sum(CASE WHEN i.state = 'held' THEN 1 ELSE 0 END) AS held, "
        "count(i.sent_at) AS sent, "
        "sum(CASE WHEN i.sent_at IS NOT NULL AND r.opened > 0 THEN 1 ELSE 0 END) AS opened, "
        "sum(CASE WHEN i.sent_at IS NOT NULL AND r.started > 0 THEN 1 ELSE 0 END) AS started, "
        "sum(CASE WHEN i.sent_at IS NOT NULL AND r.completed > 0 THEN 1 ELSE 0 END) AS completed "
        f"{_FROM} WHERE {' AND '.join(conds)}"
        + (f" GROUP BY {', '.join(GROUPS[g] for g in groups)}" if groups else "")
        + (f" ORDER BY {', '.join(GROUPS[g] for g in groups)}" if groups else "")
    )
    rows = store.query(sql, params)
    names = [*groups, "invited", "held", "sent", "opened", "started", "completed"]
    sums = pd.DataFrame([list(r) for r in rows], columns=names)
    counts = ["invited", "held", "sent", "opened", "started", "completed"]
    sums[counts] = sums[counts].fillna(0).astype("int64")
    if not groups and int(sums["invited"].sum()) == 0:
        sums = sums.iloc[0:0]
    frame = sums.copy()
    for name, num, den in (
        ("response_rate", "completed", "sent"),
        ("open_rate", "opened", "sent"),
        ("completion_rate", "completed", "started"),
    ):
        p = stats.proportion(sums[num].to_numpy(float), sums[den].to_numpy(float), conf)
        put_interval(frame, name, p.share, p.low, p.high)
    return AnalyticsResult(
        frame=frame.reset_index(drop=True),
        n=int(sums["sent"].sum()),
        confidence=conf,
        method=RATES_METHOD,
        query=_query(groups, filters, since, until),
    )


def nonresponse(
    source: Any,
    by: Sequence[str] | str | None = (),
    filters: Filters | None = None,
    since: TimeLike = None,
    until: TimeLike = None,
    confidence: float = 0.95,
) -> AnalyticsResult:
    """Responders against non-responders on what was known of them before (see the module)."""
    store, conf, groups, conds, params = _read(source, by, (), filters, since, until, confidence)
    keys = "".join(f"{GROUPS[g]} AS {g}, " for g in groups)
    conds.append("i.sent_at IS NOT NULL")
    sql = f"""WITH inv AS (
        SELECT {keys}i.invitation_id, i.person_id, i.sent_at,
            CASE WHEN r.completed > 0 THEN 1 ELSE 0 END AS responded
        {_FROM} WHERE {" AND ".join(conds)}
    ), ia AS (
        SELECT v.invitation_id, count(y.interaction_id) AS n_int FROM inv v
        LEFT JOIN interactions y ON y.person_id = v.person_id AND y.occurred_at < v.sent_at
            AND y.occurred_at >= v.sent_at - INTERVAL '90 days'
        GROUP BY v.invitation_id
    ), fa AS (
        SELECT v.invitation_id, avg(f.experience) AS experience,
            avg(f.experience - f.expectation) AS gap FROM inv v
        JOIN feedback f ON f.person_id = v.person_id AND f.occurred_at < v.sent_at
        GROUP BY v.invitation_id
    )
    SELECT {"".join(f"v.{g}, " for g in groups)}v.responded, ia.n_int, fa.experience, fa.gap
    FROM inv v JOIN ia ON ia.invitation_id = v.invitation_id
    LEFT JOIN fa ON fa.invitation_id = v.invitation_id"""
    rows = store.query(sql, params)
    cols = [*groups, "responded", "interactions_90d", "prior_experience", "prior_gap"]
    data = pd.DataFrame([list(r) for r in rows], columns=cols)
    for c in MEASURES:
        data[c] = pd.to_numeric(data[c], errors="coerce").astype(float)
    out: list[dict[str, Any]] = []
    grouped = data.groupby(groups, dropna=False, sort=True) if groups else [((), data)]
    for key, part in grouped:
        labels = dict(zip(groups, key if isinstance(key, tuple) else (key,), strict=True))
        for measure in MEASURES:
            yes = part.loc[part["responded"] == 1, measure].dropna().to_numpy(float)
            no = part.loc[part["responded"] == 0, measure].dropna().to_numpy(float)
            row: dict[str, Any] = {**labels, "measure": measure}
            row["responders_n"], row["nonresponders_n"] = len(yes), len(no)
            row["responders_mean"] = float(yes.mean()) if len(yes) else np.nan
            row["nonresponders_mean"] = float(no.mean()) if len(no) else np.nan
            d = stats.welch_difference(
                row["responders_mean"], yes.var(ddof=1) if len(yes) > 1 else np.nan, len(yes),
                row["nonresponders_mean"], no.var(ddof=1) if len(no) > 1 else np.nan, len(no),
                conf,
            )  # fmt: skip
            put_interval(row, "difference", d.delta, d.low, d.high, p_value=("p_value", d.p_value))
            out.append(row)
    columns = [*groups, "measure", "responders_n", "responders_mean", "nonresponders_n",
               "nonresponders_mean", "difference", "difference_low", "difference_high",
               "p_value"]  # fmt: skip
    frame = pd.DataFrame(out, columns=columns)
    return AnalyticsResult(
        frame=frame,
        n=len(data),
        confidence=conf,
        method=BIAS_METHOD,
        query=_query(groups, filters, since, until),
    )


_SCOPE = ScopeRule(recount=("sent",), note="filters forced to the scope; rows of touch points "
                   "outside it dropped")  # fmt: skip

RESPONSE_RATES = register(
    Analysis(
        "response_rates",
        "Survey response rates",
        response_rates,
        path="/survey-response-rates",
        command=("surveys", "rates"),
        tag="surveys",
        description="Invitations of the hosted surveys per survey and touch point unless `by` "
        "says otherwise (channel, department, segment, region, partner): made, held back by "
        "the contact rules, sent, opened, started and completed, with the response rate "
        "(completed / sent), open rate and completion rate (completed / started) and their "
        "Wilson intervals. `since`/`until` select invitations by the time they were due.",
        by=by_param(("survey", "touchpoint"), choices=tuple(GROUPS)),
        filters=FILTERS,
        columns=described(
            "survey:str the survey (when grouped by it)",
            "invited:int invitations made",
            "held:int held back by a contact rule",
            "sent:int sent (a personal link mailed)",
            "opened:int sent invitations whose link was visited",
            "started:int sent invitations with an answer saved",
            "completed:int sent invitations answered (submitted)",
            "response_rate± completed / sent",
            "open_rate± opened / sent",
            "completion_rate± completed / started",
        ),
        brief=(
            "invited",
            "held",
            "sent",
            "completed",
            "response_rate",
            "response_rate_low",
            "response_rate_high",
            "completion_rate",
        ),
        scope=_SCOPE,
    )
)

NONRESPONSE = register(
    Analysis(
        "nonresponse",
        "Non-response bias of the surveys",
        nonresponse,
        path="/survey-nonresponse",
        command=("surveys", "nonresponse"),
        tag="surveys",
        description="How the people who answered a survey invitation differ from those who "
        "did not, on what was known of them before it was sent: interactions in the 90 days "
        "before, and the mean experience and gap of their earlier feedback. Per measure (and "
        "group, none unless `by` says), the two means and the difference responders − "
        "non-responders with Welch's interval and p-value: a clear difference means the "
        "scores of responders need weighting before they stand for everyone invited.",
        by=by_param((), choices=tuple(GROUPS)),
        filters=FILTERS,
        columns=described(
            "survey:str the survey (when grouped by it)",
            "measure:str " + "; ".join(f"{k}: {v}" for k, v in MEASURES.items()),
            "responders_n:int responders with the measure",
            "responders_mean mean among responders",
            "nonresponders_n:int non-responders with the measure",
            "nonresponders_mean mean among non-responders",
            "difference± responders − non-responders (Welch)",
            "p_value Welch's t-test of no difference",
        ),
        scope=ScopeRule(
            note="filters forced to the scope; rows of touch points outside it dropped"
        ),
    )
)

__all__ = ["GROUPS", "MEASURES", "NONRESPONSE", "RESPONSE_RATES", "nonresponse", "response_rates"]
