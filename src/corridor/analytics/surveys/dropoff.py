"""Drop-off per question of one hosted survey: where people stop answering.

For each question of the survey's latest version, in the order asked: ``shown`` — responses that
reached its page (saved that far, or submitted) and were asked it (its skip logic held on their
answers); ``answered`` — those that answered it; the answer rate ``answered / shown`` with a
Wilson (1927) interval; and ``stopped_here`` — responses not submitted whose first unanswered
question asked is this one, as a share of every response opened (Wilson). Responses to older
versions count for the questions they share (by question id).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core.dimensions import TimeLike
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.registry import Analysis, Param, register
from corridor.analytics.core.result import AnalyticsResult, put_interval
from corridor.analytics.core.result_columns import described
from corridor.analytics.core.scoping import ScopeRule
from corridor.analytics.estimators import stats
from corridor.analytics.surveys.response_rates import _store
from corridor.store.sql import add_time_range

if TYPE_CHECKING:
    from corridor.auth.scope import Scope

METHOD = (
    "per question of the latest version, in order: responses that reached its page and were "
    "asked it (skip logic on their answers), those that answered, the answer rate with a "
    "Wilson interval; responses not submitted whose first unanswered question is this one, as "
    "a share of the responses opened (Wilson)"
)


def _answers(value: Any) -> dict[str, Any]:
    doc = json.loads(value) if isinstance(value, str | bytes) else value
    return dict(doc) if isinstance(doc, dict) else {}


def survey_dropoff(
    source: Any,
    survey: str = "",
    since: TimeLike = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    touchpoints: Sequence[str] | None = None,
    partners: Sequence[str] | None = None,
) -> AnalyticsResult:
    """Drop-off per question of ``survey`` (see the module). ``touchpoints`` / ``partners``:
    only responses about those touch points / about interactions through those partners (a
    scoped user's, set by the scope rule)."""
    store = _store(source)
    conf = dims.check_confidence(confidence)
    lo, hi = dims.check_range(since, until)  # (checked before any early answer)
    from corridor.surveys import catalog
    from corridor.surveys.errors import SurveyError

    if not survey:  # the survey changed last
        latest = store.query("SELECT survey_id FROM surveys ORDER BY updated_at DESC LIMIT 1")
        if not latest:  # no survey yet: no question to report on
            return _empty(conf)
        survey = str(latest[0][0])
    try:
        definition = catalog.get(store, survey).survey
    except SurveyError as e:
        raise AnalyticsQueryError(str(e)) from None
    conds: list[str] = ["survey_id = ?"]
    params: list[Any] = [survey]
    add_time_range(conds, params, lo, hi, "created_at")
    if touchpoints is not None:
        conds.append(f"touchpoint IN ({', '.join('?' for _ in touchpoints) or 'NULL'})")
        params.extend(touchpoints)
    if partners is not None:
        conds.append(
            "interaction_id IN (SELECT interaction_id FROM interactions WHERE partner_id IN "
            f"({', '.join('?' for _ in partners) or 'NULL'}))"
        )
        params.extend(partners)
    rows = store.query(
        f"SELECT state, page, answers FROM survey_responses WHERE {' AND '.join(conds)}", params
    )
    questions = list(definition.questions)
    shown = [0] * len(questions)
    answered = [0] * len(questions)
    stopped = [0] * len(questions)
    for state, page, raw in rows:
        answers = _answers(raw)
        done = state == "submitted"
        first_gap = None
        for k, q in enumerate(questions):
            if not definition.shown(q, answers):
                continue
            reached = done or int(page or 1) >= q.page or q.id in answers
            if not reached:
                continue
            shown[k] += 1
            if answers.get(q.id) not in (None, ""):
                answered[k] += 1
            elif first_gap is None:
                first_gap = k
        if not done and first_gap is not None:
            stopped[first_gap] += 1
        elif not done:  # everything reached was answered: stopped at the next page's first
            nxt = next(
                (k for k, q in enumerate(questions)
                 if q.page > int(page or 1) and definition.shown(q, answers)),
                None,
            )  # fmt: skip
            if nxt is not None:
                stopped[nxt] += 1
    opened = len(rows)
    frame = pd.DataFrame(
        {
            "question": [q.id for q in questions],
            "page": [q.page for q in questions],
            "text": [definition.t(q.text, definition.fallback_language) for q in questions],
            "shown": shown,
            "answered": answered,
        }
    )
    rate = stats.proportion(answered, shown, conf)
    put_interval(frame, "answer_rate", rate.share, rate.low, rate.high)
    frame["stopped_here"] = stopped
    share = stats.proportion(stopped, [opened] * len(questions), conf)
    put_interval(frame, "stopped_share", share.share, share.low, share.high)
    return AnalyticsResult(
        frame=frame,
        n=opened,
        confidence=conf,
        method=METHOD,
        query={
            "survey": survey,
            "since": lo.isoformat() if lo else None,
            "until": hi.isoformat() if hi else None,
        },
    )


def _in_scope(scope: Scope, kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs = {**kwargs}
    if scope.touchpoints is not None:
        kwargs["touchpoints"] = sorted(scope.touchpoints)
    if scope.partners is not None:
        kwargs["partners"] = sorted(scope.partners)
    return kwargs


def _empty(conf: float) -> AnalyticsResult:
    columns = ["question", "page", "text", "shown", "answered", "answer_rate", "answer_rate_low",
               "answer_rate_high", "stopped_here", "stopped_share", "stopped_share_low",
               "stopped_share_high"]  # fmt: skip
    return AnalyticsResult(
        frame=pd.DataFrame(columns=columns), n=0, confidence=conf, method=METHOD,
        query={"survey": None, "since": None, "until": None},
    )  # fmt: skip


DROPOFF = register(
    Analysis(
        "survey_dropoff",
        "Drop-off per question of a survey",
        survey_dropoff,
        path="/survey-dropoff",
        command=("surveys", "dropoff"),
        tag="surveys",
        description="Where people stop answering one survey: per question, in the order asked, "
        "the responses that reached it and were asked it, those that answered (answer rate, "
        "Wilson interval), and those left unfinished at it (`stopped_here`, as a share of the "
        "responses opened). `since`/`until` select responses by when they were opened.",
        params=(
            Param(
                "survey",
                "str",
                help="the survey's id (default: the survey changed last)",
                example="delivery-pulse",
            ),
        ),
        columns=described(
            "question:str the question's id",
            "page:int its page",
            "text:str its words (the fallback language)",
            "shown:int responses that reached it and were asked it",
            "answered:int responses that answered it",
            "answer_rate± answered / shown",
            "stopped_here:int unfinished responses whose first unanswered question it is",
            "stopped_share± stopped_here / responses opened",
        ),
        brief=(
            "question",
            "page",
            "shown",
            "answered",
            "answer_rate",
            "stopped_here",
            "stopped_share",
        ),
        scope=ScopeRule(
            keep=None,
            prepare=_in_scope,
            note="counts only the responses about the scope's touch points (a department "
            "head) or about interactions through the scope's partner (a partner manager)",
        ),
    )
)

__all__ = ["DROPOFF", "survey_dropoff"]
