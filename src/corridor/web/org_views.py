"""Department and partner pages: their touch points, events and scores, within the scope."""

from __future__ import annotations

from typing import Any

import pandas as pd

from corridor.analytics.attribution.ripple_events import department_events
from corridor.analytics.core.numbers import float_or_none
from corridor.analytics.estimators.stats import welch_difference
from corridor.analytics.feedback.gaps import gap_table
from corridor.analytics.feedback.rollup import values
from corridor.auth.scope import Scope
from corridor.domain.corridor_map import CorridorMap
from corridor.store import Store
from corridor.web import charts
from corridor.web.insights import partner_card, ripples
from corridor.web.views import gap_band, metric_tiles
from corridor.web.window import Window

#: how a row of feedback with no touch point (its own or its interaction's) is labelled
NO_TOUCHPOINT = "(no touch point)"


def departments(cmap: CorridorMap, scope: Scope) -> list[str]:
    return sorted({t.department for t in cmap.touchpoints if scope.sees_department(t.department)})


def partners(store: Store, scope: Scope) -> list[str]:
    return [p for p in values(store, "partner") if scope.sees_partner(p)]


def department(
    store: Store, scope: Scope, cmap: CorridorMap, name: str, win: Window
) -> dict[str, Any]:
    f = scope.restrict({"department": [name]}) or {}  # a department outside the scope: 403
    by_tp = gap_table(store, by=["touchpoint"], filters=f, since=win.since, until=win.until)
    weekly = gap_table(store, by=[], period="week", filters=f, since=win.since, until=win.until)
    names = {t.key: t.name for t in cmap.touchpoints}
    rows = []
    for r in by_tp.to_records():
        cls, words = gap_band(r.get("mean_gap"))
        rows.append(
            {**r, "name": names.get(r["touchpoint"], r["touchpoint"]), "cls": cls, "words": words}
        )
    # a partner manager sees their partner's gaps at the department's touch points, but not
    # the department's own operational events or their ripple effects
    operations = scope.sees_operations(name)
    events = department_events(store, name, win.since, win.until) if operations else []
    wk = weekly.frame.sort_values("period") if len(weekly.frame) else weekly.frame
    chart = None
    if len(wk):
        chart = charts.spans(
            [p.isoformat() for p in wk["period"]],
            [float_or_none(v) for v in wk["mean_gap"]],
            [
                {
                    "start": e["started_at"].isoformat(),
                    "end": (e["ended_at"] or e["started_at"]).isoformat(),
                    "label": e["kind"],
                }
                for e in events
            ],
            title=f"{name}: weekly mean gap"
            + (", with the department's operational events shaded" if operations else ""),
            y_title="mean gap",
        )
    return {
        "name": name,
        "ripples": ripples(store, scope, name, win) if operations else [],
        "operations": operations,
        "touchpoints": rows,
        "events": events,
        "chart": chart,
        "tiles": metric_tiles(store, f, win),
        "n": by_tp.n,
        "confidence": by_tp.confidence,
    }


def partner(
    store: Store, scope: Scope, cmap: CorridorMap, partner_id: str, win: Window
) -> dict[str, Any]:
    """A partner's touch points against the brand's own channels (records with no partner).

    The brand baseline is an aggregate of the brand's own records; a partner manager sees it,
    as the yardstick their partner is held to, but not the other partners."""
    f = scope.restrict({"partner": [partner_id]}) or {}  # a partner outside the scope: 403
    ours = gap_table(store, by=["touchpoint"], filters=f, since=win.since, until=win.until)
    # feedback with no touch point of its own nor an interaction's is a row of its own (None)
    tps = [None if pd.isna(t) else str(t) for t in ours.frame.get("touchpoint", [])]
    base_filters: dict[str, list[str | None]] = {"partner": [None]}
    if tps:
        base_filters["touchpoint"] = list(tps)
    brand = gap_table(
        store, by=["touchpoint"], filters=base_filters, since=win.since, until=win.until
    )
    b = {r["touchpoint"]: r for r in brand.to_records()}
    names = {t.key: t.name for t in cmap.touchpoints}
    rows = []
    for r in ours.to_records():
        br = b.get(r["touchpoint"], {})
        diff = _diff(r, br, ours.confidence)
        cls, words = gap_band(r.get("mean_gap"))
        rows.append(
            {
                **r,
                "name": names.get(r["touchpoint"], r["touchpoint"]) or NO_TOUCHPOINT,
                "brand_n": br.get("n"),
                "brand_gap": br.get("mean_gap"),
                "brand_low": br.get("mean_gap_low"),
                "brand_high": br.get("mean_gap_high"),
                "cls": cls,
                "words": words,
                **diff,
            }
        )
    chart = None
    if rows:
        labels = [r["name"] for r in rows]
        chart = charts.bars(
            labels,
            {
                partner_id: (
                    [r.get("mean_gap") for r in rows],
                    [r.get("mean_gap_low") for r in rows],
                    [r.get("mean_gap_high") for r in rows],
                ),
                "brand's own channels": (
                    [r.get("brand_gap") for r in rows],
                    [r.get("brand_low") for r in rows],
                    [r.get("brand_high") for r in rows],
                ),
            },
            title=f"Mean gap at {partner_id}'s touch points vs the brand's own channels",
            x_title="mean gap (experience − expectation)",
            height=max(220, 60 * len(rows) + 100),
        )
    return {
        "partner": partner_id,
        "card": partner_card(store, scope, partner_id, win),
        "touchpoints": rows,
        "chart": chart,
        "tiles": metric_tiles(store, f, win),
        "n": ours.n,
        "confidence": ours.confidence,
    }


def _diff(a: dict[str, Any], b: dict[str, Any], confidence: float) -> dict[str, Any]:
    """Welch's test of partner vs brand mean gap at one touch point."""
    need = ("n", "mean_gap", "sd_gap")
    if any(a.get(k) is None or b.get(k) is None for k in need) or min(a["n"], b["n"]) < 2:
        return {
            "diff": None,
            "diff_low": None,
            "diff_high": None,
            "diff_p": None,
            "verdict": "not enough data",
        }
    t = welch_difference(
        a["mean_gap"],
        a["sd_gap"] ** 2,
        int(a["n"]),
        b["mean_gap"],
        b["sd_gap"] ** 2,
        int(b["n"]),
        confidence,
    )
    p, delta = float_or_none(t.p_value), float_or_none(t.delta)
    verdict = "no credible difference"
    if p is not None and delta is not None and p < 1 - confidence:
        verdict = "credibly better than the brand" if delta > 0 else "credibly worse than the brand"
    return {
        "diff": delta,
        "diff_low": float_or_none(t.low),
        "diff_high": float_or_none(t.high),
        "diff_p": p,
        "verdict": verdict,
    }
