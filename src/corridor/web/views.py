"""What each page shows, assembled from the analytics: plain dicts for the templates.

Every figure goes through the caller's :class:`~corridor.auth.scope.Scope` (filters forced by
``scope.restrict``), so a page can never show more than the same user's API calls would.
Views answer from the rollup wherever the analytics can (touch point, channel, partner, segment,
region, source at whole days), so the overview stays fast on big stores.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from corridor.analytics.core.dimensions import Query
from corridor.analytics.core.numbers import float_or_none
from corridor.analytics.core.result import frame_records
from corridor.analytics.feedback import records
from corridor.analytics.feedback.drift import expectation_drift
from corridor.analytics.feedback.gaps import GAP_SUMS, gap_sums, gap_table, summarise_gaps
from corridor.analytics.feedback.metrics import METRIC_SUMS, metric_sums, summarise_metrics
from corridor.analytics.feedback.promises import promise_table
from corridor.analytics.feedback.rollup import values
from corridor.auth.scope import Scope
from corridor.domain.corridor_map import CorridorMap
from corridor.store import Store
from corridor.text.redact import redact
from corridor.web import charts, forecast_views, insights
from corridor.web.window import Window

#: time windows a page can show, ending at the latest day with feedback
WINDOWS: dict[str, tuple[str, int | None]] = {
    "30d": ("last 30 days", 30),
    "90d": ("last 90 days", 90),
    "12m": ("last 12 months", 365),
    "all": ("all time", None),
}
DEFAULT_WINDOW = "12m"
#: the filters offered on pages (dimension -> label)
FACETS = {"segment": "Segment", "region": "Region", "channel": "Channel"}


def latest_day(store: Store) -> date | None:
    value = records.latest_at(store)
    return value.astimezone(UTC).date() if value is not None else None


def window(store: Store, key: str | None) -> Window:
    key = key if key in WINDOWS else DEFAULT_WINDOW
    label, days = WINDOWS[key]
    last = latest_day(store)
    if last is None or days is None:
        return Window(key, label, None, None)
    until = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    return Window(key, label, until - timedelta(days=days), until)


def facet_options(store: Store) -> dict[str, list[str]]:
    """The values each page filter offers (from the rollup: small, always current enough)."""
    return {dim: values(store, dim) for dim in FACETS}


def gap_band(gap: float | None) -> tuple[str, str]:
    """(css class, words) for a mean gap: colour is never the only signal."""
    if gap is None:
        return "none", "no ratings"
    if gap <= -1.0:
        return "bad", "well below expectation"
    if gap <= -0.25:
        return "weak", "below expectation"
    if gap < 0.25:
        return "even", "as expected"
    return "good", "above expectation"


def trend(delta: float | None, p: float | None) -> dict[str, str]:
    if delta is None or p is None:
        return {"symbol": "·", "words": "no previous month to compare", "cls": "flat"}
    if p >= 0.05:
        return {"symbol": "→", "words": f"steady vs previous month (p = {p:.2f})", "cls": "flat"}
    if delta > 0:
        return {"symbol": "▲", "words": f"improved {delta:+.2f} (p = {p:.3f})", "cls": "up"}
    return {"symbol": "▼", "words": f"worsened {delta:+.2f} (p = {p:.3f})", "cls": "down"}


def window_and_months(
    store: Store,
    kind: str,
    by: list[str],
    filters: dict[str, list[str | None]] | None,
    win: Window,
    confidence: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(whole window, per month, n) of the gap or metric analytics from one engine query: the
    monthly sufficient statistics are additive, so their sum is exactly the window's."""
    sums_of, summarise, columns = (
        (gap_sums, summarise_gaps, GAP_SUMS)
        if kind == "gap"
        else (metric_sums, summarise_metrics, METRIC_SUMS)
    )
    sums = sums_of(store, Query.build(by, "month", filters, win.since, win.until))
    monthly = summarise(sums, by, "month", confidence)
    cols = list(columns)
    if by:
        total = sums.groupby(by, dropna=False)[cols].sum().reset_index()
    else:
        total = (
            pd.DataFrame([sums[cols].sum()])
            if len(sums)
            else pd.DataFrame([dict.fromkeys(cols, 0)])
        )
    return summarise(total, by, None, confidence), monthly, int(sums["n"].sum())


def metric_tiles(
    store: Store, filters: dict[str, list[str | None]] | None, win: Window
) -> list[dict[str, Any]]:
    """NPS, CSAT (top-2-box) and CES for the window with intervals, and a monthly trend."""
    now, series, _ = window_and_months(store, "metric", [], filters, win)
    row = now.iloc[0].to_dict() if len(now) else {}
    specs = [
        ("nps", "NPS", "nps", "nps_n", 1.0, "{:+.0f}", "promoters − detractors, %"),
        ("csat", "CSAT", "csat_top2_share", "csat_n", 100.0, "{:.0f}%", "top-2-box share"),
        ("ces", "CES", "ces_mean", "ces_n", 1.0, "{:.2f}", "effort, 1 (easy) to 7"),
    ]
    tiles = []
    for key, title, col, ncol, scale, fmt, note in specs:
        value, low, high = (float_or_none(row.get(c)) for c in (col, f"{col}_low", f"{col}_high"))
        n = int(float_or_none(row.get(ncol)) or 0)
        chart = None
        if len(series) and n:
            chart = charts.band(
                [str(x) for x in series["period_label"]],
                [(float_or_none(v) or math.nan) * scale for v in series[col]],
                [(float_or_none(v) or math.nan) * scale for v in series[f"{col}_low"]],
                [(float_or_none(v) or math.nan) * scale for v in series[f"{col}_high"]],
                title=f"{title} by month",
                height=120,
                compact=True,
            )
        tiles.append(
            {
                "key": key,
                "title": title,
                "note": note,
                "n": n,
                "value": fmt.format(value * scale) if value is not None else "–",
                "interval": (
                    f"{fmt.format(low * scale)} to {fmt.format(high * scale)}"
                    if low is not None and high is not None
                    else "not enough answers"
                ),
                "chart": chart,
            }
        )
    return tiles


def overview(
    store: Store,
    scope: Scope,
    cmap: CorridorMap,
    win: Window,
    filters: dict[str, list[str | None]] | None,
    forecasts: forecast_views.ForecastCache | None = None,
) -> dict[str, Any]:
    """The corridor's cards (each touch point's gap, trend and whether its gap is forecast to
    worsen) and tiles; ``forecasts``: the app's cache of the forecasts."""
    f = scope.restrict(filters)
    now, monthly, n = window_and_months(store, "gap", ["touchpoint"], f, win)
    worsening = forecast_views.worsening_touchpoints(store, f, win, forecasts)
    by_tp = {r["touchpoint"]: r for r in now.to_dict("records")}
    series: dict[str, pd.DataFrame] = {
        str(k): g.sort_values("period") for k, g in monthly.groupby("touchpoint")
    }
    stages = []
    for stage in cmap.stages:
        cards = []
        for t in cmap.touchpoints:
            if t.stage != stage or not scope.sees_touchpoint(t.key):
                continue
            r = by_tp.get(t.key, {})
            gap = float_or_none(r.get("mean_gap"))
            cls, words = gap_band(gap)
            s = series.get(t.key)
            last = s.iloc[-1] if s is not None and len(s) else None
            tr = trend(
                float_or_none(last["delta_mean_gap"]) if last is not None else None,
                float_or_none(last["p_value_mean_gap"]) if last is not None else None,
            )
            cards.append(
                {
                    "key": t.key,
                    "name": t.name,
                    "department": t.department,
                    "n": int(float_or_none(r.get("n")) or 0),
                    "gap": gap,
                    "low": float_or_none(r.get("mean_gap_low")),
                    "high": float_or_none(r.get("mean_gap_high")),
                    "cls": cls,
                    "words": words,
                    "trend": tr,
                    "forecast": worsening.get(t.key),
                    "spark": [
                        round(v, 3) if (v := float_or_none(x)) is not None else None
                        for x in (s["mean_gap"] if s is not None else [])
                    ],
                }
            )
        if cards:
            stages.append({"key": stage, "label": stage.replace("_", " "), "cards": cards})
    return {
        "stages": stages,
        "n": n,
        "tiles": metric_tiles(store, f, win),
        "confidence": 0.95,
        "worsen_horizon": forecast_views.WORSEN_HORIZON,
    }


def touchpoint(
    store: Store,
    scope: Scope,
    cmap: CorridorMap,
    key: str,
    win: Window,
    filters: dict[str, list[str | None]] | None,
) -> dict[str, Any]:
    f = scope.restrict({**(filters or {}), "touchpoint": [key]}) or {}
    monthly = gap_table(store, by=[], period="month", filters=f, since=win.since, until=win.until)
    fr = monthly.frame.sort_values("period") if len(monthly.frame) else monthly.frame
    drift = expectation_drift(
        store, by=["touchpoint"], period="month", filters=f, since=win.since, until=win.until
    )
    markers = [
        {
            "x": str(r["period_label"]),
            "label": f"expectation shift {(float_or_none(r['size']) or 0):+.2f} "
            f"(p = {float_or_none(r['p_value']) or 0:.3f})",
        }
        for r in drift.frame.to_dict("records")
    ]
    chart = None
    if len(fr):
        chart = charts.band(
            [str(x) for x in fr["period_label"]],
            [float_or_none(v) for v in fr["mean_gap"]],
            [float_or_none(v) for v in fr["mean_gap_low"]],
            [float_or_none(v) for v in fr["mean_gap_high"]],
            title="Mean gap (experience − expectation) by month",
            markers=markers,
            zero_line=True,
        )
    forecast = forecast_views.touchpoint_forecast(store, f, win)
    chart = forecast_views.with_forecast(chart, forecast)
    by_channel = gap_table(store, by=["channel"], filters=f, since=win.since, until=win.until)
    promises = promise_table(store, by=[], filters=f, since=win.since, until=win.until)
    return {
        "chart": chart,
        "forecast": forecast,
        "months": frame_records(fr),
        "drift": drift.to_records(),
        "channels": by_channel.to_records(),
        "promises": promises.to_records(),
        "tiles": metric_tiles(store, f, win),
        **_voice(store, f, key, win),
        "n": monthly.n,
        "confidence": monthly.confidence,
    }


def _voice(store: Store, f: dict[str, list[str | None]], key: str, win: Window) -> dict[str, Any]:
    """Analysed comments (sentiment, intent, theme) when text analysis has run, else the plain
    latest comments; and the touch point's themes."""
    v = insights.voice(store, f, key)
    people = records.authors(store, [c["feedback_id"] for c in v["comments"]])
    comments = [
        {
            "at": c["occurred_at"],
            "source": c["source"],
            "text": redact(c["text"]).text if c.get("text") else "",
            "sentiment": c.get("sentiment_label"),
            "intent": c.get("intent"),
            "theme": c.get("theme_label"),
            "emotions": c.get("emotions") or [],
            "person_id": people.get(c["feedback_id"]),
        }
        for c in v["comments"]
        if c.get("text")
    ]
    return {"comments": comments or recent_comments(store, f, win), "themes": v["themes"]}


def recent_comments(
    store: Store, filters: dict[str, list[str | None]], win: Window, limit: int = 8
) -> list[dict[str, Any]]:
    """The latest feedback texts within the scope's filters, with PII redacted for display."""
    rows = records.latest_texts(store, filters, win.since, win.until, limit)
    return [{**r, "text": redact(r["text"]).text} for r in rows]
