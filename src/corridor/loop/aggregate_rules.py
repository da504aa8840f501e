"""Aggregate rules, evaluated on a schedule over the registered analyses.

* ``threshold``: a column of any analysis with periods (``gaps.mean_gap``, ``nps.nps``,
  ``csat.csat_top2_share``, ``ces.ces_easy_share``...) under ``below`` (or over ``above``) in a
  complete period, for a group with at least ``min_n`` records;
* ``change``: the analysis' own test of the change against the previous period
  (``p_value_<column>`` below ``alpha``, ``delta_<column>`` in ``direction``), with at least
  ``min_n`` records;
* ``drift``: a change point in mean expectation (the ``drift`` analysis; adjusted p below
  ``alpha``) not alerted before;
* ``ripple``: an operational event with a significant harmful effect on the gap (the ``ripple``
  analysis; q below ``alpha``) not alerted before. Its case goes to the event's department, with
  the event proposed as the root cause;
* ``forecast``: a group's ``measure`` (the ``forecast`` analysis, from the periods complete
  before the run) forecast to cross ``below`` or ``above``, or to reach ``ratio`` times its last
  observed period, within ``horizon`` periods, read on the point forecast or on the whole 80 %
  band (``bound``; :func:`corridor.analytics.anticipation.warnings.crossing`). The evidence is
  the forecast with its intervals, model, backtest and n. A dry run replays the rule at each
  period start of its window (the last :data:`REPLAY_DEFAULT` periods without ``since``), as if
  it had run then on the data stored before it.

Only complete periods count: a scheduled run at time *t* reads the ``lookback`` periods before
the one *t* falls in (and the one before those, for the change). The subject of an alert is
the group (``touchpoint=checkout|region=north``; the event for a ripple), so the rule's cooldown
keeps one group from being alerted period after period. Drifts and ripples older than the rule
(minus :data:`HISTORY`) are history: a live run does not alert them; a dry run (:func:`dry_run`)
shows everything the rule would have fired on past data.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from corridor.analytics.anticipation import warnings
from corridor.analytics.core import registry
from corridor.analytics.core.numbers import float_or_none
from corridor.loop import alerts
from corridor.loop.alerts import Hit
from corridor.loop.rules import Rule, active_rules
from corridor.store import Store

log = logging.getLogger("corridor.loop")

#: how far before a drift or ripple rule's creation its findings still count as new
HISTORY: dict[str, timedelta] = {"drift": timedelta(days=92), "ripple": timedelta(days=183)}
#: a forecast rule's dry run without ``since`` replays this many period starts; at most
#: :data:`REPLAY_MAX` (the latest) with one
REPLAY_DEFAULT, REPLAY_MAX = 12, 60
#: backtest origins of the forecast a forecast rule reads (its evidence reports the backtest)
FORECAST_ORIGINS = 6
#: the scope keys as analysis filters
_FILTER = {
    "touchpoint": "touchpoint",
    "department": "department",
    "partner": "partner",
    "segment": "segment",
    "region": "region",
}


def period_start(t: datetime, period: str) -> datetime:
    """The start (UTC) of the calendar period ``t`` falls in (weeks start on Monday)."""
    t = t.astimezone(UTC)
    day = datetime(t.year, t.month, t.day, tzinfo=UTC)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return day.replace(month=3 * ((t.month - 1) // 3) + 1, day=1)
    raise ValueError(f"unknown period {period!r}")


def step_back(t: datetime, period: str, n: int) -> datetime:
    if period in ("day", "week"):
        return t - timedelta(days=n * (1 if period == "day" else 7))
    months = n * (1 if period == "month" else 3)
    y, m = divmod(t.month - 1 - months, 12)
    return t.replace(year=t.year + y, month=m + 1)


def _ts(value: Any) -> datetime | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        return None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _num(value: Any) -> float | None:
    """A result cell as a float, infinities kept (a threshold compares with them)."""
    return float_or_none(value, infinite=True)


def _clean(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, float) and math.isnan(v):
            continue
        if v is None or (not isinstance(v, str | list | dict) and pd.isna(v)):
            continue
        out[str(k)] = v.isoformat() if isinstance(v, datetime | pd.Timestamp) else v
    return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]


def _subject(by: Sequence[str], row: Mapping[str, Any]) -> str:
    return "|".join(f"{b}={row.get(b)}" for b in by) or "all"


def _n_column(frame: pd.DataFrame, column: str) -> str | None:
    for name in (f"{column}_n", f"{column.split('_')[0]}_n", "n"):
        if name in frame.columns:
            return name
    return None


class _Departments:
    """Touch point → department, read once per evaluation."""

    def __init__(self, store: Store) -> None:
        self.of = {k: d for k, d in store.query("SELECT key, department FROM touchpoints")}


def _grouped_hits(
    store: Store, rule: Rule, since: datetime | None, until: datetime, first: datetime | None
) -> list[Hit]:
    """Threshold and change rules: one hit per group and complete period that matches."""
    analysis = registry.get(str(rule.get("analysis")))
    column, period = str(rule.get("column")), str(rule.get("period"))
    by = list(rule.get("by") or [])
    filters = {_FILTER[k]: list(v) for k, v in rule.scope.items() if _FILTER[k] in analysis.filters}
    kwargs: dict[str, Any] = dict(rule.get("params") or {})
    if analysis.by is not None:
        kwargs["by"] = by
    result = analysis(
        store, period=period, since=since, until=until, filters=filters or None, **kwargs
    )
    frame = result.frame
    if frame.empty or column not in frame.columns:
        return []
    n_col = _n_column(frame, column)
    min_n = float(rule.get("min_n"))
    depts = _Departments(store)
    hits = []
    for row in _records(frame):
        at = _ts(row.get("period"))
        if at is None or (first is not None and at < first) or at >= until:
            continue
        if not all(row.get(_FILTER[k]) in v for k, v in rule.scope.items() if _FILTER[k] in row):
            continue
        n = _num(row.get(n_col)) if n_col else None
        value = _num(row.get(column))
        if value is None or (n is not None and n < min_n):
            continue
        where = ", ".join(f"{b}={row.get(b)}" for b in by) or "overall"
        label = row.get("period_label") or at.date().isoformat()
        if rule.kind == "threshold":
            below, above = rule.definition.get("below"), rule.definition.get("above")
            fires = value < float(below) if below is not None else value > float(above or 0)
            bound = f"below {below:g}" if below is not None else f"above {above:g}"
            summary = f"{analysis.name}.{column} {value:.3g} {bound} for {where} in {label}"
        else:
            p = _num(row.get(f"p_value_{column}"))
            delta = _num(row.get(f"delta_{column}"))
            prev_n = _num(row.get("prev_n"))
            direction = rule.get("direction")
            fires = (
                p is not None and delta is not None and p < float(rule.get("alpha"))
                and (direction == "any" or (delta < 0) == (direction == "down"))
                and (prev_n is None or prev_n >= min_n)
            )  # fmt: skip
            summary = (
                f"{analysis.name}.{column} changed by {delta if delta is not None else 0:+.3g} "
                f"to {value:.3g} for {where} in {label} (p = {p if p is not None else 1:.2g})"
            )
        if not fires:
            continue
        tp = row.get("touchpoint")
        hits.append(Hit(
            rule=rule, subject=_subject(by, row), occurred_at=at, summary=summary,
            touchpoint=tp, department=row.get("department") or depts.of.get(tp),
            partner_id=row.get("partner"), region=row.get("region"), segment=row.get("segment"),
            evidence={"analysis": analysis.name, "column": column, "period": period,
                      "row": _clean(row), "query": {"by": by, "filters": filters}},
        ))  # fmt: skip
    return hits


def _drift_hits(store: Store, rule: Rule, until: datetime, first: datetime | None) -> list[Hit]:
    analysis = registry.get("drift")
    by = list(rule.get("by") or ["touchpoint"])
    filters = {_FILTER[k]: list(v) for k, v in rule.scope.items()}
    frame = analysis(
        store, by=by, period=rule.get("period"), until=until, filters=filters or None
    ).frame
    depts = _Departments(store)
    hits = []
    for row in _records(frame):
        at, p, size = _ts(row.get("date")), _num(row.get("p_value_adjusted")), _num(row.get("size"))
        if at is None or p is None or size is None or p >= float(rule.get("alpha")):
            continue
        if first is not None and at < first:
            continue
        direction = rule.get("direction")
        if direction != "any" and (size < 0) != (direction == "down"):
            continue
        where = ", ".join(f"{b}={row.get(b)}" for b in by)
        tp = row.get("touchpoint")
        hits.append(Hit(
            rule=rule, subject=_subject(by, row), occurred_at=at,
            summary=f"Expectation drift of {size:+.2f} for {where} from {at.date()} "
                    f"(adjusted p = {p:.2g})",
            touchpoint=tp, department=row.get("department") or depts.of.get(tp),
            partner_id=row.get("partner"), region=row.get("region"), segment=row.get("segment"),
            evidence={"analysis": "drift", "row": _clean(row)},
        ))  # fmt: skip
    return hits


def _ripple_hits(store: Store, rule: Rule, until: datetime, first: datetime | None) -> list[Hit]:
    analysis = registry.get("ripple")
    kwargs: dict[str, Any] = {"alpha": float(rule.get("alpha")), "churn": False}
    if rule.scope.get("department"):
        kwargs["department"] = list(rule.scope["department"])
    frame = analysis(store, since=first, until=until, **kwargs).frame
    hits = []
    wanted_tps = set(rule.scope.get("touchpoint") or ())
    for row in _records(frame):
        q, effect = _num(row.get("q_value_gap")), _num(row.get("effect_gap"))
        at = _ts(row.get("started_at"))
        if q is None or effect is None or at is None or q >= float(rule.get("alpha")):
            continue
        direction = rule.get("direction")
        if direction != "any" and (effect < 0) != (direction == "down"):
            continue
        tps = [t for t in str(row.get("touchpoints") or "").split(";") if t]
        if wanted_tps and not wanted_tps & set(tps):
            continue
        region = row.get("region") if isinstance(row.get("region"), str) else None
        where = ", ".join(tps) + (f" in region {region}" if region else "")
        hits.append(Hit(
            rule=rule, subject=f"event={row['event_id']}", occurred_at=at,
            summary=f"Ripple of {row['event_id']} ({row.get('kind')}, {row.get('department')}): "
                    f"gap {effect:+.2f} at {where} (q = {q:.2g})",
            touchpoint=tps[0] if len(tps) == 1 else None, department=row.get("department"),
            region=region, event_id=str(row["event_id"]),
            evidence={"analysis": "ripple", "touchpoints": tps, "row": _clean(row)},
        ))  # fmt: skip
    return hits


def _forecast_hits(store: Store, rule: Rule, origin: datetime) -> list[Hit]:
    """A forecast rule as if run at ``origin`` (a period start): each group's forecast from the
    periods complete before it, and the groups whose forecast crosses the rule's line."""
    period, measure = str(rule.get("period")), str(rule.get("measure"))
    horizon, bound = int(rule.get("horizon")), str(rule.get("bound"))
    by = list(rule.get("by") or [])
    line = {k: float(rule.definition[k]) for k in ("below", "above", "ratio")
            if rule.definition.get(k) is not None}  # fmt: skip
    filters = {_FILTER[k]: list(v) for k, v in rule.scope.items()}
    result = registry.get("forecast")(
        store, by=by, period=period, until=origin, filters=filters or None, measure=measure,
        horizon=horizon, origins=FORECAST_ORIGINS,
    )  # fmt: skip
    frame = result.frame
    # a store whose data stopped before the last period has no forecast of the coming ones
    if frame.empty or _ts(frame["period"].min()) != origin:
        return []
    depts = _Departments(store)
    word = warnings.LABELS[measure]
    hits = []
    for keys, rows in warnings.groups(frame, by):
        first = rows.iloc[0]
        n, periods = _num(first["n"]) or 0, _num(first["n_periods"]) or 0
        if n < float(rule.get("min_n")) or periods < int(rule.get("min_periods")):
            continue
        hit = warnings.crossing(rows, horizon=horizon, bound=bound, **line)
        if hit is None:
            continue
        where = ", ".join(f"{b}={keys.get(b)}" for b in by) or "overall"
        what = (f"reach {line['ratio']:g}× its last {period} ({hit['target']:.4g})"
                if "ratio" in line else
                f"fall below {line['below']:g}" if "below" in line else
                f"rise above {line['above']:g}")  # fmt: skip
        summary = (
            f"{word} at {where} forecast to {what} by {hit['period_label']}: "
            f"{hit['forecast']:.3g} [80 %: {hit['low_80']:.3g}, {hit['high_80']:.3g}] from "
            f"{first['last_value']:.3g} in {first['last_period']} ({first['model']}, n = {n:,.0f})"
        )
        tp = keys.get("touchpoint")
        hits.append(Hit(
            rule=rule, subject=_subject(by, keys), occurred_at=origin, summary=summary,
            touchpoint=tp, department=keys.get("department") or depts.of.get(tp),
            partner_id=keys.get("partner"), region=keys.get("region"),
            segment=keys.get("segment"),
            evidence={
                "analysis": "forecast", "measure": measure, "period": period,
                "horizon": horizon, "bound": bound, "group": keys,
                "line": {**line, "target": hit["target"], "direction": hit["direction"]},
                "crossing": {"step": int(hit["step"]), "period_label": hit["period_label"],
                             "value": hit["read"], "forecast": hit["forecast"]},
                **warnings.evidence(rows, horizon=horizon),
                "query": {"by": by, "filters": filters},
            },
        ))  # fmt: skip
    return hits


def _forecast_origins(now: datetime, since: datetime | None, period: str, live: bool) -> list:
    """The period starts a forecast rule runs at: the current one live; in a dry run every one
    from ``since`` (else the last :data:`REPLAY_DEFAULT`) to the current one, at most
    :data:`REPLAY_MAX` (the latest)."""
    last = period_start(now, period)
    if live:
        return [last]
    first = period_start(since, period) if since is not None else None
    if first is None or first < step_back(last, period, REPLAY_MAX - 1):
        first = step_back(last, period, (REPLAY_DEFAULT if since is None else REPLAY_MAX) - 1)
    out = [first]
    while out[-1] < last:
        out.append(step_back(out[-1], period, -1))
    return out


def find_hits(
    store: Store, rule: Rule, *, now: datetime, since: datetime | None = None, live: bool = True
) -> list[Hit]:
    """What ``rule`` finds in the periods complete at ``now`` (live: the ``lookback`` latest;
    else every period from ``since``)."""
    first: datetime | None
    if rule.kind == "forecast":
        period = str(rule.get("period"))
        return [
            hit
            for origin in _forecast_origins(now, since, period, live)
            for hit in _forecast_hits(store, rule, origin)
        ]
    if rule.kind in ("threshold", "change"):
        period = str(rule.get("period"))
        until = period_start(now, period)
        if live:
            first = step_back(until, period, int(rule.get("lookback")))
            since = step_back(first, period, 1)  # the period before: the change's baseline
        elif since is not None:
            first = period_start(since, period)
            since = step_back(first, period, 1)
        else:
            first = None
        return _grouped_hits(store, rule, since, until, first)
    first = since
    if live:
        created = rule.created_at or now
        first = created - HISTORY[rule.kind]
    if rule.kind == "drift":
        return _drift_hits(store, rule, now, first)
    return _ripple_hits(store, rule, now, first)


def dry_run(
    store: Store, rule: Rule, *, since: datetime | None = None, until: datetime | None = None
) -> list[Hit]:
    """What ``rule`` would have fired on the stored data (periods complete before ``until``,
    from ``since``), de-duplicated by its cooldown; nothing is written."""
    now = until or datetime.now(UTC)
    return alerts.dedup(find_hits(store, rule, now=now, since=since, live=False))


def evaluate(store: Store, now: datetime | None = None) -> int:
    """The scheduled job ``rules.evaluate``: run every enabled aggregate rule and raise its
    alerts; returns how many were raised. A rule that fails is logged and skipped."""
    now = now or datetime.now(UTC)
    with store.transaction() as tx:
        rules = active_rules(tx, "aggregate")
    raised = 0
    for rule in rules:
        try:
            with store.reading():
                hits = find_hits(store, rule, now=now)
        except Exception:
            log.exception(
                "aggregate rule %s failed; it is tried again at the next run", rule.rule_id
            )
            continue
        with store.transaction() as tx:
            if hits:
                raised += len(alerts.fire(tx, hits, now))
            tx.execute(
                "UPDATE alert_rules SET evaluated_at = ? WHERE rule_id = ?", (now, rule.rule_id)
            )
    return raised


__all__ = [
    "FORECAST_ORIGINS",
    "HISTORY",
    "REPLAY_DEFAULT",
    "REPLAY_MAX",
    "dry_run",
    "evaluate",
    "find_hits",
    "period_start",
    "step_back",
]
