"""What the rules page shows: every alert rule with its recent activity, the form that adds
one, and a rule's dry run (what it would have fired on past data).

Every role but agent reads the rules and runs dry runs (the alerts of their scope only, as
``GET /api/v1/rules/{id}/test``); admins and analysts add and disable them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from corridor.auth.scope import Scope
from corridor.loop import activity, rules, sla
from corridor.loop.dryrun import dry_run
from corridor.loop.rules import Rule, RuleError
from corridor.store import Store

#: the window of the "alerts lately" column
RECENT_DAYS = 30
#: the alerts a dry run lists on the page (the count covers them all)
TEST_ROWS = 200
#: a dry run's default window: this many days back from today
TEST_DAYS = 90
KIND_HELP: dict[str, str] = {
    "detractor": "a customer's NPS at or below max_nps (6)",
    "score_below": "a feedback field (gap, nps, csat, ces, …) below a threshold",
    "broken_promise": "a promise of the corridor map not kept",
    "text": "a feedback text with an intent (complaint) or a theme",
    "churn_jump": "a customer's churn risk up by jump since the last scoring, now ≥ min_risk",
    "threshold": "an analysis' column below or above a value in a period",
    "change": "a significant change of an analysis' column against the previous period",
    "drift": "a new expectation drift",
    "ripple": "a new harmful ripple effect of an operational event",
    "forecast": "a forecast crossing a line (below, above, or ratio × the last period) within "
    "horizon periods",
}
DEFINITION_EXAMPLES: dict[str, str] = {
    "detractor": '{"max_nps": 6}',
    "score_below": '{"field": "gap", "below": -3}',
    "broken_promise": "{}",
    "text": '{"intents": ["complaint"]}',
    "churn_jump": '{"jump": 0.15, "min_risk": 0.4}',
    "threshold": '{"analysis": "nps", "column": "nps", "below": 0, "period": "month"}',
    "change": '{"analysis": "gaps", "column": "mean_gap", "alpha": 0.01, "period": "month"}',
    "drift": "{}",
    "ripple": "{}",
    "forecast": '{"measure": "gap", "below": -1, "horizon": 2, "period": "month"}',
}


def _cooldown(seconds: int | None) -> str:
    if not seconds:
        return "none"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def rules_page(store: Store, scope: Scope, now: datetime | None = None) -> dict[str, Any]:
    """Every rule, enabled first, with when it last fired and its alerts in the last
    :data:`RECENT_DAYS` days (both within the user's scope)."""
    now = now or datetime.now(UTC)
    fired = activity.rule_activity(store, scope, now - timedelta(days=RECENT_DAYS))
    listed = sorted(rules.list_rules(store), key=lambda r: (not r.enabled, r.rule_id))
    rows = []
    for r in listed:
        seen = fired.get(r.rule_id, {})
        rows.append(
            {
                **r.as_dict(),
                "condition": replace(r, scope={}).describe(),
                "scope_text": "; ".join(f"{k} {', '.join(v)}" for k, v in r.scope.items() if v)
                or "everywhere",
                "cooldown_text": _cooldown(r.cooldown_s),
                "last_fired": seen.get("last_fired"),
                "recent": seen.get("recent", 0),
            }
        )
    return {
        "rules": rows,
        "recent_days": RECENT_DAYS,
        "kinds": rules.KINDS,
        "record_kinds": rules.RECORD_KINDS,
        "kind_help": KIND_HELP,
        "examples": DEFINITION_EXAMPLES,
        "priorities": sla.PRIORITIES,
        "policies": [p.name for p in sla.list_policies(store)],
        "scope_keys": rules.SCOPE_KEYS,
        "may_write": scope.may_write,
        "scoped": not scope.sees_all,
    }


def rule_from_form(form: Mapping[str, str]) -> Rule:
    """A rule from the page's form (checked when it is added); :class:`RuleError` says what is
    wrong with it."""
    text = (form.get("definition") or "").strip() or "{}"
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as e:
        raise RuleError(
            f"the definition is not JSON ({e.msg} at character {e.pos + 1}); write it like "
            f"{DEFINITION_EXAMPLES.get(form.get('kind') or '', '{}')}"
        ) from None
    if not isinstance(definition, dict):
        raise RuleError('the definition is a JSON object, e.g. {"max_nps": 6}')
    scope = {
        key: [v.strip() for v in (form.get(f"scope_{key}") or "").split(",") if v.strip()]
        for key in rules.SCOPE_KEYS
    }
    cooldown = (form.get("cooldown") or "").strip()
    return Rule(
        rule_id=(form.get("rule_id") or "").strip(),
        kind=(form.get("kind") or "").strip(),
        definition=definition,
        scope={k: v for k, v in scope.items() if v},
        name=(form.get("name") or "").strip(),
        cooldown_s=rules.parse_duration(cooldown) if cooldown else None,
        priority=(form.get("priority") or "normal").strip(),
        team=(form.get("team") or "").strip() or None,
        sla_policy=(form.get("sla_policy") or "").strip() or None,
        reopen_unverified=form.get("reopen_unverified") == "yes",
    )


def test_page(
    store: Store, scope: Scope, rule_id: str, since: str | None, until: str | None
) -> dict[str, Any]:
    """A rule's dry run from ``since`` to before ``until`` (by default the last
    :data:`TEST_DAYS` days): the alerts it would have fired that the user sees."""
    rule = rules.get_rule(store, rule_id)
    since = since or (datetime.now(UTC) - timedelta(days=TEST_DAYS)).date().isoformat()
    hits, lo, hi = dry_run(store, scope, rule, since, until or None)
    return {
        "rule": rule.as_dict(),
        "since": lo,
        "until": hi,
        "since_value": since,
        "until_value": until or "",
        "n": len(hits),
        "alerts": [h.as_dict() for h in hits[:TEST_ROWS]],
        "truncated": len(hits) > TEST_ROWS,
        "rows": TEST_ROWS,
        "scoped": not scope.sees_all,
    }


__all__ = ["RECENT_DAYS", "rule_from_form", "rules_page", "test_page"]
