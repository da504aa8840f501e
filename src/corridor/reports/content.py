"""The report's content: a typed object built from the registered analyses, as the reader sees
them.

Every figure comes from an analysis of the registry run through
:func:`~corridor.analytics.core.scoping.run_scoped` with the reader's
:class:`~corridor.auth.scope.Scope` (the filters forced to a department head's department or a
partner manager's partner, a subject outside it refused with a 403), or from
:func:`corridor.loop.reports.case_report` with the same scope — never from a query around it.
Each figure keeps its ``n``, its interval and, where the analysis tests it, the change against
the previous period with its p-value; :meth:`Figure.change_words` says it in words.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import ibis
import pandas as pd

from corridor.analytics.core import registry
from corridor.analytics.core.dimensions import Query
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.core.scoping import run_scoped
from corridor.analytics.estimators import stats
from corridor.auth.scope import LOCAL_ADMIN, Scope
from corridor.loop.reports import case_report
from corridor.reports.model import (
    Cases,
    DriftFinding,
    Figure,
    Forecast,
    ForecastPoint,
    Mover,
    Report,
    RippleFinding,
    Theme,
    TrendPoint,
)
from corridor.reports.periods import ReportPeriod, ReportRequestError, Subject
from corridor.store import Store
from corridor.store.maps import load_map
from corridor.text.redact import redact

#: periods shown in the trend (the reported one included)
TREND_PERIODS = 6
#: forecast periods after the reported one
HORIZON = 3


def _num(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return float(value)


def _int(value: Any) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


class _Runner:
    """Runs registered analyses as the reader's scope sees them, over the report's subject."""

    def __init__(
        self, store: Store, scope: Scope, subject: Subject, period: ReportPeriod, conf: float
    ):
        self.store, self.scope, self.subject, self.period, self.conf = (
            store,
            scope,
            subject,
            period,
            conf,
        )
        # the subject's filters narrowed to what the reader sees (another department: a 403)
        wanted = subject.filters
        self.filters = (wanted if scope.sees_all else scope.restrict(wanted)) or {}

    def run(self, name: str, **given: Any) -> AnalyticsResult:
        analysis = registry.get(name)
        if analysis.filters and "filters" not in given:
            given["filters"] = dict(self.filters) or None
        kwargs = analysis.bind({"confidence": self.conf, **given})
        return run_scoped(analysis, self.store, self.scope, kwargs)

    def window(self, back: int = 1) -> dict[str, Any]:
        return {"since": self.period.back(back), "until": self.period.end}


def _current(frame: pd.DataFrame, period: ReportPeriod, previous: bool = False) -> pd.DataFrame:
    """The rows of the reported period (or, ``previous``, of the one before)."""
    if frame.empty or "period" not in frame:
        return frame.iloc[0:0]
    starts = pd.to_datetime(frame["period"], utc=True)
    return frame[starts == pd.Timestamp(period.previous_start if previous else period.start)]


def _figure(
    run: _Runner,
    name: str,
    label: str,
    cols: tuple[str, str, str, str],
    unit: str,
    higher_is_better: bool = True,
) -> Figure:
    """The analysis ``name`` over the subject for the period and the one before; ``cols``:
    the value (with ``_low``/``_high``), n, change and p-value columns."""
    value, n_col, delta, p = cols
    result = run.run(name, by=[], period=run.period.kind, **run.window())
    rows = _current(result.frame, run.period)
    if rows.empty or _int(rows.iloc[0][n_col]) == 0:
        return Figure(name, label, None, None, None, 0, unit, higher_is_better)
    r = rows.iloc[0]
    prev = _current(result.frame, run.period, previous=True)
    return Figure(
        name,
        label,
        _num(r[value]),
        _num(r[f"{value}_low"]),
        _num(r[f"{value}_high"]),
        _int(r[n_col]),
        unit,
        higher_is_better,
        _num(r.get(delta)),
        _num(r.get(p)),
        _int(prev.iloc[0][n_col]) if not prev.empty else 0,
        result.method,
    )


def headline(run: _Runner) -> tuple[Figure, ...]:
    """The gap, NPS, CSAT (top-two share) and CES (mean) of the subject in the period."""
    return (
        _figure(run, "gaps", "Gap (experience − expectation)",
                ("mean_gap", "n", "delta_mean_gap", "p_value_mean_gap"), "points"),
        _figure(run, "nps", "NPS", ("nps", "nps_n", "delta_nps", "p_value_nps"), ""),
        _figure(run, "csat", "CSAT (share 4–5)",
                ("csat_top2_share", "csat_n", "delta_csat_top2_share",
                 "p_value_csat_top2_share"), "share"),
        _figure(run, "ces", "CES (mean, 7 = very easy)",
                ("ces_mean", "ces_n", "delta_ces_mean", "p_value_ces_mean"), ""),
    )  # fmt: skip


def movers(run: _Runner, limit: int = 5) -> tuple[Mover, ...]:
    """The touch points whose mean gap moved most against the previous period."""
    result = run.run("gaps", by=["touchpoint"], period=run.period.kind, **run.window())
    rows = _current(result.frame, run.period)
    if not rows.empty:  # a change to show, and an interval (two answers or more)
        rows = rows[rows["delta_mean_gap"].notna() & rows["mean_gap_low"].notna()]
    out = [
        Mover(str(r["touchpoint"]), float(r["mean_gap"]), float(r["mean_gap_low"]),
              float(r["mean_gap_high"]), int(r["n"]), float(r["delta_mean_gap"]),
              _num(r["p_value_mean_gap"]))
        for _, r in rows.iterrows()
    ]  # fmt: skip
    out.sort(key=lambda m: -abs(m.delta))
    return tuple(out[:limit])


def trend(run: _Runner) -> tuple[TrendPoint, ...]:
    result = run.run("gaps", by=[], period=run.period.kind, **run.window(TREND_PERIODS - 1))
    return tuple(
        TrendPoint(str(r["period_label"]), float(r["mean_gap"]), float(r["mean_gap_low"]),
                   float(r["mean_gap_high"]), int(r["n"]))
        for _, r in result.frame.iterrows()
        if _int(r["n"]) > 0 and _num(r["mean_gap_low"]) is not None
    )  # fmt: skip


def forecast(run: _Runner) -> Forecast | None:
    """The gap forecast for the periods after the reported one (none where the series is too
    short for the forecast analysis)."""
    try:
        result = run.run(
            "forecast", by=[], period=run.period.kind, until=run.period.end, horizon=HORIZON
        )
    except Exception as e:  # a series the forecast refuses (too short): no forecast section
        if getattr(e, "status_code", 500) >= 500:
            raise
        return None
    f = result.frame
    if f.empty:
        return None
    first = f.iloc[0]
    return Forecast(
        str(first["model"]),
        _int(first["n"]),
        _int(first["n_periods"]),
        _num(first.get("mase")),
        _num(first.get("mase_naive")),
        tuple(
            ForecastPoint(str(r["period_label"]), float(r["forecast"]), float(r["low_80"]),
                          float(r["high_80"]), float(r["low_95"]), float(r["high_95"]))
            for _, r in f.iterrows()
        ),
    )  # fmt: skip


def drift(run: _Runner, limit: int = 5) -> tuple[DriftFinding, ...]:
    """Steps in expectation within the trend's window, newest first."""
    result = run.run("drift", period=run.period.kind, **run.window(TREND_PERIODS - 1))
    f = result.frame
    if f.empty:
        return ()
    f = f[pd.to_datetime(f["date"], utc=True) < pd.Timestamp(run.period.end)]
    f = f.sort_values("date", ascending=False).head(limit)
    return tuple(
        DriftFinding(str(r["touchpoint"]), str(r["period_label"]), float(r["size"]),
                     _num(r["size_low"]), _num(r["size_high"]), _num(r["p_value_adjusted"]),
                     _int(r["n_before"]), _int(r["n_after"]), float(r["mean_before"]),
                     float(r["mean_after"]))
        for _, r in f.iterrows()
    )  # fmt: skip


def ripple(run: _Runner, limit: int = 5) -> tuple[RippleFinding, ...] | None:
    """Operational events of the window with an estimated effect on the gap; None where the
    reader or the subject does not cover operations (a partner)."""
    if run.subject.kind == "partner" or run.scope.partners is not None:
        return None
    given: dict[str, Any] = dict(run.window(TREND_PERIODS - 1))
    if run.subject.kind == "department":
        given["department"] = run.subject.value
    elif run.subject.kind == "touchpoint":
        return None
    result = run.run("ripple", churn=False, **given)
    f = result.frame
    if f.empty:
        return ()
    f = f[f["effect_gap"].notna()]
    f = f.assign(_q=f["q_value_gap"].fillna(1.0)).sort_values("_q").head(limit)
    return tuple(
        RippleFinding(str(r["event_id"]), str(r["kind"]), str(r["started_at"])[:10],
                      float(r["effect_gap"]), _num(r["effect_gap_low"]),
                      _num(r["effect_gap_high"]), _num(r["q_value_gap"]),
                      bool(r["significant"]), _int(r["n_treated"]))
        for _, r in f.iterrows()
    )  # fmt: skip


def _quotes(run: _Runner, theme: str, count: int) -> tuple[str, ...]:
    """The latest ``count`` texts of ``theme`` in the period, within the reader's scope,
    redacted again before they are shown."""
    from corridor.analytics.core import dimensions as dims
    from corridor.analytics.feedback.text import text_rows

    query = Query.build([], None, run.filters or None, run.period.start, run.period.end)
    t = text_rows(run.store, query)
    t = t.filter(t.theme == theme)
    f = dims.get_table(run.store, "feedback").view()
    f = f.select(_f_id=f.feedback_id, text=f.text)
    t = t.inner_join(f, t.feedback_id == f._f_id)
    t = t.filter(t.text.notnull()).order_by([ibis.desc(t.occurred_at), t.feedback_id])
    texts = t.select("text").limit(count).to_pyarrow().column("text").to_pylist()
    return tuple(redact(str(x)).text for x in texts)


def themes(run: _Runner, limit: int = 3, quotes: int = 2) -> tuple[Theme, ...]:
    """The largest themes of the period's analysed texts, with their change in share."""
    result = run.run("text_themes", by=[], period=run.period.kind, **run.window())
    rows = _current(result.frame, run.period)
    if rows.empty:
        return ()
    rows = rows.sort_values(["n", "theme_label"], ascending=[False, True]).head(limit)
    return tuple(
        Theme(str(r["theme_label"]), int(r["n"]), float(r["share"]), float(r["share_low"]),
              float(r["share_high"]), _int(r["group_n"]), _num(r["delta_share"]),
              _num(r["p_value_share"]), _num(r["mean_sentiment"]),
              _quotes(run, str(r["theme"]), quotes))
        for _, r in rows.iterrows()
    )  # fmt: skip


def cases(run: _Runner) -> Cases:
    """Cases opened in the period that the reader sees, within the subject."""
    groups = {"partner": "partner_id", "touchpoint": "touchpoint"}
    by = groups.get(run.subject.kind or "", "department")
    rows = case_report(
        run.store, run.scope, by=by, since=run.period.start, until=run.period.end,
        confidence=run.conf,
    )  # fmt: skip
    if run.subject.kind is not None:
        rows = [r for r in rows if r["group"] == run.subject.value]
    total: dict[str, int] = {
        k: sum(int(r[k]) for r in rows)
        for k in ("opened", "open_now", "breached", "verification_decided", "verified")
    }
    decided, verified = total["verification_decided"], total["verified"]
    share = stats.proportion(verified, decided, run.conf) if decided else None
    return Cases(
        total["opened"],
        total["open_now"],
        total["breached"],
        decided,
        verified,
        None if share is None else float(share.share),
        None if share is None else float(share.low),
        None if share is None else float(share.high),
    )


def reader_subject(subject: Subject, scope: Scope) -> Subject:
    """A report on "the whole corridor" for a department head or partner manager is about
    their department or partner (what they see of it), and says so."""
    if subject.kind is not None or scope.sees_all:
        return subject
    if scope.departments is not None:
        return Subject("department", sorted(scope.departments)[0])
    if scope.partners is not None:
        return Subject("partner", sorted(scope.partners)[0])
    return subject


def check_subject(store: Store, subject: Subject) -> None:
    """A department or touch point the corridor map does not know is refused, naming those it
    does (a partner is an id in the records: one without any gives an empty report)."""
    if subject.kind not in ("department", "touchpoint"):
        return
    cmap = load_map(store)
    if cmap is None:
        return
    known = sorted(
        {t.department for t in cmap.touchpoints if t.department}
        if subject.kind == "department"
        else {t.key for t in cmap.touchpoints}
    )
    if subject.value not in known:
        raise ReportRequestError(
            f"no {subject.kind} {subject.value!r} in the corridor map; known: {', '.join(known)}"
        )


def build_report(
    store: Store,
    subject: Subject,
    period: ReportPeriod,
    *,
    scope: Scope | None = None,
    confidence: float = 0.95,
    now: datetime | None = None,
) -> Report:
    """The report on ``subject`` for ``period`` as ``scope`` (default: everything) sees it."""
    scope = scope or Scope.of(LOCAL_ADMIN, None)
    subject = reader_subject(subject, scope)
    check_subject(store, subject)
    run = _Runner(store, scope, subject, period, confidence)
    with store.reading():
        head = headline(run)
        notes: list[str] = []
        if head[0].n == 0:
            notes.append(
                f"No rated feedback of {subject.label} in {period.label}: the figures below "
                "are empty. Ask for an earlier period (--at on the command line, at= in the "
                "API) or another subject."
            )
        return Report(
            subject=subject,
            period=period,
            reader=scope.principal.label,
            generated_at=now or datetime.now(UTC),
            confidence=confidence,
            headline=head,
            movers=movers(run),
            trend=trend(run),
            forecast=forecast(run),
            drift=drift(run),
            ripple=ripple(run),
            themes=themes(run),
            cases=cases(run),
            notes=tuple(notes),
        )


def as_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-friendly data (the API's ``format=json``)."""
    from dataclasses import asdict

    out: dict[str, Any] = asdict(report)
    out["title"] = report.title
    out["subject"] = {"kind": report.subject.kind, "value": report.subject.value}
    out["period"] = {
        "kind": report.period.kind,
        "previous_start": report.period.previous_start.isoformat(),
        "key": report.period.key,
        "label": report.period.label,
        "start": report.period.start.isoformat(),
        "end": report.period.end.isoformat(),
    }
    out["generated_at"] = report.generated_at.isoformat()
    for fig, raw in zip(report.headline, out["headline"], strict=True):
        raw["change"] = fig.change_words()
    return out


__all__ = [
    "HORIZON", "TREND_PERIODS", "as_dict", "build_report", "check_subject", "reader_subject",
]  # fmt: skip
