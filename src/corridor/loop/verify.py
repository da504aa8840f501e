"""Verification: did the gap really close, seen from the customer's side?

When a case is resolved its verification is scheduled (:func:`corridor.loop.cases.verify_after`)
and the scheduled job ``cases.verify`` (:func:`verify_due`) decides it:

* **a case about one customer** (a record rule fired on their feedback): their next feedback at
  that touch point after the resolution. The rule that opened the case is run on it: it would
  not fire → *verified*; it would → *not verified*. No feedback yet → *too early to tell*
  (checked again at each run for :data:`CUSTOMER_WINDOW`, then left too early);
* **a case about a touch point** (an aggregate rule): the mean gap (experience − expectation)
  at the touch point (and the case's region, partner or segment) over :data:`~corridor.loop.
  cases.VERIFY_WEEKS` weeks after the resolution against as many weeks before it, with Welch's
  interval of the difference: its lower end above 0 → *verified*; otherwise, with at least
  :data:`MIN_N` rated records on each side, *not verified*; fewer → *too early to tell*.

A verified case is closed; a case not verified is reopened when its rule says so
(``reopen_unverified``). Each outcome is a line of the case's history and a
``case.verification`` notification.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from corridor.analytics.estimators import stats
from corridor.loop import casestore, record_rules
from corridor.loop.cases import VERIFY_WEEKS, transition
from corridor.loop.rules import read_rule
from corridor.store import Store
from corridor.store.base import Tx

#: how long a customer's next feedback is waited for
CUSTOMER_WINDOW = timedelta(days=90)
#: rated records needed on each side to call a touch point's fix not verified
MIN_N = 20
OUTCOMES = ("verified", "not_verified", "too_early")


def _customer(tx: Tx, case: dict[str, Any], now: datetime) -> tuple[str, dict[str, Any]]:
    sql = record_rules.FEEDBACK_SQL.format(src="feedback")
    # a partner's case is verified by feedback on that partner's work only: another partner's
    # record is neither evidence nor something the case's partner manager may be sent
    partner = " AND COALESCE(b.partner_id, i.partner_id) = ?" if case.get("partner_id") else ""
    rows = record_rules.read_rows(
        tx,
        "feedback",
        f"{sql} WHERE b.person_id = ? AND COALESCE(b.touchpoint, i.touchpoint) = ?{partner} "
        "AND b.occurred_at > ? ORDER BY b.occurred_at, b.feedback_id LIMIT 1",
        (
            case["person_id"],
            case["touchpoint"],
            *([case["partner_id"]] if partner else []),
            case["resolved_at"],
        ),
    )
    if not rows:
        waited = now - case["resolved_at"]
        return "too_early", {
            "method": "the customer's next feedback at the touch point",
            "waiting_since": case["resolved_at"],
            "gave_up": waited >= CUSTOMER_WINDOW,
        }
    row = rows[0]
    rule = read_rule(tx, case["rule_id"]) if case["rule_id"] else None
    if rule is not None and rule.kind in record_rules.WATCHES["feedback"]:
        fires = bool(record_rules.find_hits(tx, [rule], "feedback", [row], now=None))
        test = f"rule {rule.rule_id} ({rule.describe()}) on it"
    else:  # no record rule to ask: the customer's own gap decides
        e, x = row.get("experience"), row.get("expectation")
        fires = e is not None and x is not None and e < x
        test = "experience below expectation"
    detail = {
        "method": "the customer's next feedback at the touch point",
        "feedback_id": row["record_id"],
        "occurred_at": row["occurred_at"],
        "test": test,
        "record": {k: v for k, v in row.items() if v is not None},
    }
    return ("not_verified" if fires else "verified"), detail


_GAP = """SELECT count(*), sum(b.experience - b.expectation),
    sum((b.experience - b.expectation) * (b.experience - b.expectation))
FROM feedback b
LEFT JOIN interactions i ON i.interaction_id = b.interaction_id
LEFT JOIN people p ON p.person_id = b.person_id
WHERE b.experience IS NOT NULL AND b.expectation IS NOT NULL
    AND COALESCE(b.touchpoint, i.touchpoint) = ? AND b.occurred_at >= ? AND b.occurred_at < ?"""


def _touchpoint(tx: Tx, case: dict[str, Any], now: datetime) -> tuple[str, dict[str, Any]]:
    resolved = case["resolved_at"]
    window = timedelta(weeks=VERIFY_WEEKS)
    extra, params = "", []
    for column, expr in (("region", "p.region"), ("segment", "p.segment"),
                         ("partner_id", "COALESCE(b.partner_id, i.partner_id)")):  # fmt: skip
        if case.get(column):
            extra += f" AND {expr} = ?"
            params.append(case[column])
    sides = []
    for lo, hi in ((resolved - window, resolved), (resolved, resolved + window)):
        n, s, ss = tx.fetchall(_GAP + extra, (case["touchpoint"], lo, hi, *params))[0]
        sides.append((int(n or 0), float(s or 0.0), float(ss or 0.0)))
    (n0, s0, ss0), (n1, s1, ss1) = sides
    before, after = stats.moments(n0, s0, ss0), stats.moments(n1, s1, ss1)
    diff = stats.welch_difference(after.mean, after.var, n1, before.mean, before.var, n0)

    def num(v: Any) -> float | None:
        f = float(v)
        return None if np.isnan(f) else round(f, 4)

    detail = {
        "method": f"mean gap {VERIFY_WEEKS} weeks after the resolution minus {VERIFY_WEEKS} "
        "weeks before, Welch 95% interval",
        "touchpoint": case["touchpoint"],
        "n_before": n0, "n_after": n1,
        "mean_gap_before": num(before.mean), "mean_gap_after": num(after.mean),
        "change": num(diff.delta), "change_low": num(diff.low), "change_high": num(diff.high),
        "p_value": num(diff.p_value),
    }  # fmt: skip
    low = detail["change_low"]
    if low is not None and low > 0:
        return "verified", detail
    if n0 >= MIN_N and n1 >= MIN_N:
        return "not_verified", detail
    return "too_early", detail


def check(tx: Tx, case: dict[str, Any], now: datetime) -> tuple[str, dict[str, Any]]:
    """The verification of one resolved case now: an outcome of :data:`OUTCOMES` and what it
    rests on."""
    if case.get("person_id") and case.get("touchpoint"):
        return _customer(tx, case, now)
    if case.get("touchpoint"):
        return _touchpoint(tx, case, now)
    return "too_early", {"method": "none: the case names no touch point", "gave_up": True}


def verify_due(store: Store, now: datetime | None = None) -> int:
    """The scheduled job ``cases.verify``: decide every resolved case whose verification is due;
    returns how many were decided (verified or not)."""
    now = now or datetime.now(UTC)
    decided = 0
    with store.transaction() as tx:
        due = casestore.select_cases(
            tx,
            "state = 'resolved' AND verification IN ('pending', 'too_early') "
            "AND verify_after IS NOT NULL AND verify_after <= ?",
            [now],
            "ORDER BY verify_after, case_id",
        )
        for case in due:
            outcome, detail = check(tx, case, now)
            fields: dict[str, Any] = {"verification": outcome, "verification_detail": detail}
            if outcome == "too_early":
                # look again at the next run, unless there is nothing left to wait for
                fields["verify_after"] = None if detail.get("gave_up") else now
            else:
                fields["verified_at"] = now
                decided += 1
            if outcome == case["verification"] and outcome == "too_early":
                casestore.write_fields(tx, case["case_id"], fields, now)
                continue
            casestore.write_fields(tx, case["case_id"], fields, now)
            after = {**case, **fields, "updated_at": now}
            event = casestore.record(tx, case["case_id"], "verification", "verification",
                                     at=now, field="verification", old=case["verification"],
                                     new=outcome, note=detail.get("method"))  # fmt: skip
            casestore.notify(tx, "case.verification", after, event, actor="verification", at=now,
                             change={"outcome": outcome, "detail": detail})  # fmt: skip
            if outcome == "verified":
                transition(tx, after, "closed", actor="verification", human=False, now=now,
                           note="verified from the customer's side")  # fmt: skip
            elif outcome == "not_verified":
                rule = read_rule(tx, case["rule_id"]) if case["rule_id"] else None
                if rule is not None and rule.reopen_unverified:
                    transition(tx, after, "open", actor="verification", human=False, now=now,
                               note="not verified: reopened as the rule says",
                               extra={"verification": outcome})  # fmt: skip
    return decided


__all__ = ["CUSTOMER_WINDOW", "MIN_N", "OUTCOMES", "check", "verify_due"]
