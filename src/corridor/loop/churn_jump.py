"""``churn_jump`` rules: a customer whose predicted churn risk jumped since the last scoring.

Unlike the other record rules, these do not run inside an ingest batch's transaction: a
customer's churn risk comes from the churn model, fitted on the whole store in the background
after ingests (:class:`~corridor.analytics.customers.models.FittedModels`). After each refit,
the app's listener scores every active customer with the fitted model and calls
:func:`evaluate`, which in **one transaction** reads the stored scores (``churn_scores``), fires
an alert for each customer whose risk rose by at least the rule's ``jump`` (absolute
probability) and is now at least ``min_risk`` — through :func:`corridor.loop.alerts.fire`, so
cases open or join and their notifications are written in that same transaction — and then
stores the new scores as the next baseline.

A person scored for the first time only gets a baseline: nothing fires. Scores are kept even
when no churn_jump rule is enabled (one bulk upsert), so a rule added later has a baseline to
compare with. A person missing from a scoring (churned, or no longer scored) keeps their last
score.

The alert's subject is the customer (``person=p-1042``); the scope is the customer's segment
and region; the case has no touch point, so it goes to the rule's team (``team``), else it is
unrouted (an admin or analyst assigns it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from corridor.loop import alerts
from corridor.loop.alerts import Hit
from corridor.loop.rules import Rule, active_rules
from corridor.store import Store

KIND = "churn_jump"
log = logging.getLogger("corridor.loop")
_TS = pa.timestamp("us", tz="UTC")
_STAGED = "_churn_scores"
_COLUMNS = ("person_id", "risk", "scored_at")


def _rules(rules: list[Rule]) -> list[Rule]:
    return [r for r in rules if r.kind == KIND]


def _in_scope(rule: Rule, segment: str | None, region: str | None) -> bool:
    where = {"segment": segment, "region": region}
    return all(where.get(key) in allowed for key, allowed in rule.scope.items())


def evaluate(
    store: Store,
    scores: Mapping[str, float],
    *,
    now: datetime | None = None,
    as_of: str | None = None,
) -> list[Hit]:
    """Fire the enabled churn_jump rules on ``scores`` (person id → predicted churn risk) against
    the stored scores, then store ``scores`` as the new baseline, in one transaction; returns
    the alerts raised. ``as_of``: the time the model was fitted as of, kept as evidence."""
    now = now or datetime.now(UTC)
    clean = {
        str(pid): float(risk)
        for pid, risk in scores.items()
        if risk is not None and not math.isnan(float(risk))
    }
    if not clean:
        return []
    staged = pa.table(
        {
            "person_id": pa.array(list(clean), pa.string()),
            "risk": pa.array(list(clean.values()), pa.float64()),
            "scored_at": pa.array([now] * len(clean), _TS),
        }
    )
    fired: list[Hit] = []
    with store.transaction() as tx:
        tx.stage(_STAGED, staged)
        rules = _rules(active_rules(tx, "record"))
        if rules:
            # only the rows some rule could fire on leave the engine
            jump = min(float(r.get("jump")) for r in rules)
            floor = min(float(r.get("min_risk")) for r in rules)
            rows = tx.fetchall(
                "SELECT n.person_id, n.risk, s.risk, s.scored_at, p.segment, p.region "
                f"FROM {_STAGED} n JOIN churn_scores s ON s.person_id = n.person_id "
                "LEFT JOIN people p ON p.person_id = n.person_id "
                "WHERE s.risk IS NOT NULL AND n.risk - s.risk >= ? AND n.risk >= ? "
                "ORDER BY n.person_id",
                (jump - 1e-12, floor),
            )
            hits = [
                _hit(rule, row, now, as_of)
                for row in rows
                for rule in rules
                if _fires(rule, float(row[1]), float(row[2])) and _in_scope(rule, row[4], row[5])
            ]
            if hits:
                fired = alerts.fire(tx, hits, now)
        tx.insert("churn_scores", _STAGED, _COLUMNS, key=["person_id"], update=_COLUMNS[1:])
    return fired


def _fires(rule: Rule, risk: float, previous: float) -> bool:
    jump = float(rule.get("jump"))
    return risk - previous >= jump - 1e-12 and risk >= float(rule.get("min_risk"))


def _hit(rule: Rule, row: tuple[Any, ...], now: datetime, as_of: str | None) -> Hit:
    person_id, risk, previous, previous_at, segment, region = row
    risk, previous = float(risk), float(previous)
    return Hit(
        rule=rule,
        subject=f"person={person_id}",
        occurred_at=now,
        summary=(
            f"Churn risk of customer {person_id} up from {previous:.0%} to {risk:.0%} "
            f"(+{(risk - previous) * 100:.0f} points)"
        ),
        record_kind=None,
        record_id=None,
        person_id=str(person_id),
        region=region,
        segment=segment,
        evidence={
            "risk": risk,
            "previous_risk": previous,
            "jump": risk - previous,
            "previous_scored_at": previous_at,
            "as_of": as_of,
        },
    )


def listener(store: Store) -> Callable[[tuple[Any, ...], Any], None]:
    """A listener of the churn model's fits
    (``models.on_fitted(CHURN_RISK, listener(store))``, as ``create_app`` does): scores every
    active customer with the fitted model and evaluates the churn_jump rules on the scores."""

    def on_fitted(key: tuple[Any, ...], fitted: Any) -> None:
        from corridor.analytics.customers.churn_risk import fitted_scores

        found = fitted_scores(key, fitted)
        if found is None:  # another horizon, or no model the store can support yet
            return
        risks, as_of = found
        fired = evaluate(store, risks, as_of=as_of)
        if fired:
            log.info("churn_jump rules: %d alerts on %d customers scored", len(fired), len(risks))

    return on_fitted


def scores(store: Store) -> dict[str, float]:
    """The stored scores (person id → risk at the latest scoring)."""
    with store.transaction() as tx:
        rows = tx.fetchall("SELECT person_id, risk FROM churn_scores")
    return {str(p): float(r) for p, r in rows if r is not None}


__all__ = ["KIND", "evaluate", "listener", "scores"]
