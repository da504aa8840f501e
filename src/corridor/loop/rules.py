"""Alert rules: what each kind watches, how a rule is declared, checked and stored.

Two families (see ``docs/closed-loop.md``):

* **record rules**, evaluated on every committed batch of feedback or interactions
  (:mod:`corridor.loop.record_rules`): ``detractor`` (NPS ≤ ``max_nps``, 6 by default),
  ``score_below`` (a feedback field — expectation, experience, gap, nps, csat, ces, emotion —
  under ``below``), ``broken_promise`` (a promise of the corridor map not kept by an interaction
  or a feedback record), ``text`` (a feedback text of one of ``intents`` or ``themes``), and
  ``churn_jump`` (a customer's predicted churn risk up by ``jump`` since the last scoring and
  now at least ``min_risk``: evaluated after each refit of the churn model, by
  :mod:`corridor.loop.churn_jump`, not inside the ingest transaction);
* **aggregate rules**, evaluated on a schedule over any registered analysis
  (:mod:`corridor.loop.aggregate_rules`): ``threshold`` (a column of an analysis under
  ``below`` or over ``above`` in a complete period), ``change`` (a significant change against
  the previous period by the analysis' own p-value, with at least ``min_n`` records),
  ``drift`` (a new expectation drift), ``ripple`` (a new harmful ripple effect of an
  operational event) and ``forecast`` (a group's forecast crossing a line within ``horizon``
  periods: :mod:`corridor.analytics.anticipation.warnings`).

Every rule has a **scope** (touch point, department, partner, segment, region: lists of values
it is limited to), a **cooldown** (the same subject — a customer at a touch point, a group of
an analysis, an event — is not alerted twice for the rule within it), a priority, an optional
named team that owns its cases (else the touch point's department, or the partner for
partner-delivered interactions), an SLA policy, and whether an unverified fix reopens its case.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from corridor.errors import CorridorError
from corridor.loop.rule_params import (
    NUMBERS,
    PER,
    SCORE_FIELDS,
    Bounds,
    check_name,
    check_value,
    shown,
)
from corridor.loop.sla import DEFAULT_POLICY_NAME, PRIORITIES
from corridor.store import Store
from corridor.store.base import Tx


class RuleError(CorridorError, ValueError):
    """A rule that cannot be stored or found as asked."""

    status_code = 422


class RuleNotFoundError(RuleError):
    status_code = 404


RECORD_KINDS: tuple[str, ...] = ("detractor", "score_below", "broken_promise", "text",
                                 "churn_jump")  # fmt: skip
AGGREGATE_KINDS: tuple[str, ...] = ("threshold", "change", "drift", "ripple", "forecast")
KINDS: tuple[str, ...] = (*RECORD_KINDS, *AGGREGATE_KINDS)
SCOPE_KEYS: tuple[str, ...] = ("touchpoint", "department", "partner", "segment", "region")
#: the scope keys of a rule about a person rather than a record (churn_jump)
PERSON_SCOPE_KEYS: tuple[str, ...] = ("segment", "region")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DEFAULT_COOLDOWN_S = 7 * 86400
#: a kind's own default cooldown: a drift's estimated date may move by a period between runs
KIND_COOLDOWN_S: dict[str, int] = {"drift": 90 * 86400}
#: records older than this when they arrive are history: record rules do not fire on them
DEFAULT_MAX_AGE_S = 7 * 86400

#: the definition keys each kind takes, with their defaults (None: required or optional)
DEFINITION_KEYS: dict[str, dict[str, Any]] = {
    "detractor": {"max_nps": 6, "per": "customer", "max_age": DEFAULT_MAX_AGE_S},
    "score_below": {"field": None, "below": None, "per": "customer",
                    "max_age": DEFAULT_MAX_AGE_S},
    "broken_promise": {"promises": None, "per": "customer", "max_age": DEFAULT_MAX_AGE_S},
    "text": {"intents": None, "themes": None, "per": "customer", "max_age": DEFAULT_MAX_AGE_S},
    "churn_jump": {"jump": 0.15, "min_risk": 0.4, "per": "customer"},
    "threshold": {"analysis": None, "column": None, "below": None, "above": None,
                  "by": ["touchpoint"], "period": "week", "min_n": 30, "lookback": 1,
                  "params": None},
    "change": {"analysis": None, "column": None, "direction": "down", "alpha": 0.05,
               "min_n": 30, "by": ["touchpoint"], "period": "week", "lookback": 1,
               "params": None},
    "drift": {"alpha": 0.01, "by": ["touchpoint"], "period": "month", "direction": "any"},
    "ripple": {"alpha": 0.05, "direction": "down"},
    "forecast": {"measure": "gap", "below": None, "above": None, "ratio": None, "horizon": 2,
                 "bound": "point", "by": ["touchpoint"], "period": "month", "min_n": 30,
                 "min_periods": 6},
}  # fmt: skip


#: the longest cooldown or age a rule takes: ten years (a longer one would reach past the dates
#: the store can hold when the rule subtracts it, and stop every rule from firing)
MAX_DURATION_S = 3650 * 86400


def parse_duration(value: str | float | int) -> int:
    """Seconds from ``90``, ``30m``, ``12h``, ``7d`` or ``2w``, at most :data:`MAX_DURATION_S`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise RuleError(f"duration {value!r}: write a number with s, m, h, d or w, e.g. 7d")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 0:
        raise RuleError(f"duration {value!r} is negative")
    if not seconds <= MAX_DURATION_S:  # (NaN too)
        raise RuleError(f"duration {value!r} is longer than ten years: give at most 3650d")
    return int(seconds)


@dataclass(frozen=True)
class Rule:
    rule_id: str
    kind: str
    definition: Mapping[str, Any] = field(default_factory=dict)
    scope: Mapping[str, Sequence[str]] = field(default_factory=dict)
    name: str = ""
    #: None: the kind's default (:data:`DEFAULT_COOLDOWN_S`, :data:`KIND_COOLDOWN_S`)
    cooldown_s: int | None = None
    priority: str = "normal"
    team: str | None = None
    sla_policy: str | None = None
    reopen_unverified: bool = False
    enabled: bool = True
    created_at: datetime | None = None
    created_by: str | None = None
    disabled_at: datetime | None = None
    evaluated_at: datetime | None = None

    @property
    def cooldown(self) -> timedelta:
        """The cooldown (the kind's default when none was given)."""
        seconds = self.cooldown_s
        if seconds is None:
            seconds = KIND_COOLDOWN_S.get(self.kind, DEFAULT_COOLDOWN_S)
        return timedelta(seconds=seconds)

    @property
    def family(self) -> str:
        return "record" if self.kind in RECORD_KINDS else "aggregate"

    def get(self, key: str) -> Any:
        """A definition value, or the kind's default."""
        value = self.definition.get(key)
        return DEFINITION_KEYS[self.kind].get(key) if value is None else value

    def describe(self) -> str:
        """The rule in words."""
        d = self.get
        text = {
            "detractor": lambda: f"a detractor (NPS ≤ {d('max_nps')})",
            "score_below": lambda: f"{d('field')} below {d('below')}",
            "broken_promise": lambda: (
                "a broken promise" + (f" ({', '.join(d('promises'))})" if d("promises") else "")
            ),
            "text": lambda: (
                "a feedback text with "
                + " or ".join(
                    f"{what} {', '.join(d(key))}"
                    for what, key in (("intent", "intents"), ("theme", "themes"))
                    if d(key)
                )
            ),
            "churn_jump": lambda: (
                f"a churn-risk jump of at least {float(d('jump')):g} to at least "
                f"{float(d('min_risk')):g}"
            ),
            "threshold": lambda: (
                f"{d('analysis')}.{d('column')} "
                + (f"below {d('below')}" if d("below") is not None else f"above {d('above')}")
                + f" in a {d('period')}"
            ),
            "change": lambda: (
                f"a significant {'' if d('direction') == 'any' else d('direction')}"
                f" change of {d('analysis')}.{d('column')} against the previous {d('period')} "
                f"(p < {d('alpha')}, n ≥ {d('min_n')})"
            ),
            "drift": lambda: f"a new expectation drift (adjusted p < {d('alpha')})",
            "ripple": lambda: (
                f"a new harmful ripple effect of an operational event (q < {d('alpha')})"
            ),
            "forecast": lambda: _forecast_words(d),
        }[self.kind]()
        where = "; ".join(f"{k} {', '.join(v)}" for k, v in self.scope.items() if v)
        return text.replace("  ", " ") + (f" [{where}]" if where else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "name": self.name,
            "family": self.family,
            "kind": self.kind,
            "definition": dict(self.definition),
            "scope": {k: list(v) for k, v in self.scope.items()},
            "cooldown_s": self.cooldown_s,
            "priority": self.priority,
            "team": self.team,
            "sla_policy": self.sla_policy,
            "reopen_unverified": self.reopen_unverified,
            "enabled": self.enabled,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "disabled_at": self.disabled_at,
            "evaluated_at": self.evaluated_at,
            "description": self.describe(),
        }


def check(rule: Rule) -> Rule:
    """``rule`` with its definition and scope checked (and normalised); :class:`RuleError` says
    what is wrong."""
    if not _ID.match(rule.rule_id):
        raise RuleError(
            f"rule id {rule.rule_id!r}: 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    if rule.kind not in KINDS:
        raise RuleError(f"unknown rule kind {rule.kind!r}; allowed: {', '.join(KINDS)}")
    if rule.priority not in PRIORITIES:
        raise RuleError(f"unknown priority {rule.priority!r}; allowed: {', '.join(PRIORITIES)}")
    cooldown = rule.cooldown_s
    if cooldown is None:
        cooldown = KIND_COOLDOWN_S.get(rule.kind, DEFAULT_COOLDOWN_S)
    if cooldown < 0:
        raise RuleError("the cooldown cannot be negative")
    if not cooldown <= MAX_DURATION_S:
        raise RuleError("the cooldown is longer than ten years: give at most 3650d")
    allowed = DEFINITION_KEYS[rule.kind]
    unknown = sorted(set(rule.definition) - set(allowed))
    if unknown:
        raise RuleError(
            f"a {rule.kind} rule takes no {', '.join(unknown)}; it takes "
            f"{', '.join(allowed) or 'nothing'}"
        )
    scope: dict[str, list[str]] = {}
    for key, values in rule.scope.items():
        if key not in SCOPE_KEYS:
            raise RuleError(f"unknown scope {key!r}; allowed: {', '.join(SCOPE_KEYS)}")
        items = [values] if isinstance(values, str) else list(values or ())
        if items:
            scope[key] = [_name(f"scope {key}", str(v)) for v in items]
    for label, value in (("name", rule.name), ("team", rule.team), ("sla_policy", rule.sla_policy)):
        if value:  # (as the API's body takes them)
            _name(label, value)
    definition = {k: v for k, v in rule.definition.items() if v is not None}
    _check_definition(rule.kind, definition)
    if rule.kind == "ripple" and set(scope) - {"department", "touchpoint"}:
        raise RuleError("a ripple rule can be scoped by department and touchpoint only")
    if rule.kind == "churn_jump" and set(scope) - set(PERSON_SCOPE_KEYS):
        raise RuleError(
            "a churn_jump rule is about a customer, not a record: it can be scoped by segment "
            f"and region only, not by {', '.join(sorted(set(scope) - set(PERSON_SCOPE_KEYS)))}"
        )
    return replace(
        rule, definition=definition, scope=scope, name=rule.name or "", cooldown_s=int(cooldown)
    )


def _name(label: str, value: Any) -> str:
    try:
        return check_name(label, value)
    except ValueError as e:
        raise RuleError(str(e)) from None


def _check_definition(kind: str, d: dict[str, Any]) -> None:
    def number(key: str, bounds: Bounds) -> None:
        if key not in d:
            return
        v = d[key]
        if isinstance(v, bool):
            raise RuleError(f"{key} must be a number, got {v!r}")
        if not isinstance(v, int | float):
            try:
                v = d[key] = float(v)
            except (TypeError, ValueError, OverflowError):
                raise RuleError(f"{key} must be a number, got {shown(d[key])}") from None
        if isinstance(v, float) and not math.isfinite(v):  # (an int is; a huge one too)
            raise RuleError(f"{key} must be a finite number, got {v}")
        if not bounds.admits(v):
            raise RuleError(f"{key} must {bounds.words()}, got {shown(v)}")

    def names(key: str) -> None:
        if key in d and isinstance(d[key], str):
            d[key] = [d[key]]  # one name for a list of one

    if "per" in d and d["per"] not in PER:
        raise RuleError(f"per must be one of {', '.join(PER)}, got {d['per']!r}")
    if "max_age" in d:
        d["max_age"] = parse_duration(d["max_age"])
    for key, bounds in NUMBERS.items():
        number(key, bounds)
    if kind == "churn_jump" and d.get("per", "customer") != "customer":
        raise RuleError("a churn_jump rule alerts per customer only (per: customer)")
    for key in ("promises", "intents", "themes", "by"):
        names(key)
    for key, value in list(d.items()):  # as the API's body declares each (rule_params)
        if key != "max_age":  # (read above: a duration, kept in seconds)
            try:
                d[key] = check_value(key, value)
            except ValueError as e:
                raise RuleError(str(e)) from None
    if "by" in d:
        from corridor.analytics.core.dimensions import DIMENSIONS

        twice = sorted({b for b in d["by"] if d["by"].count(b) > 1})
        if twice:
            raise RuleError(f"by names {', '.join(twice)} twice")
        if kind not in ("threshold", "change", "forecast"):  # (those ask their analysis)
            bad = [b for b in d["by"] if b not in DIMENSIONS]
            if bad:
                raise RuleError(
                    f"cannot group by {', '.join(bad)}; allowed: {', '.join(DIMENSIONS)}"
                )
    if "direction" in d and d["direction"] not in ("down", "up", "any"):
        raise RuleError(f"direction must be down, up or any, got {d['direction']!r}")
    if kind == "score_below":
        if d.get("field") not in SCORE_FIELDS:
            raise RuleError(f"a score_below rule needs field, one of {', '.join(SCORE_FIELDS)}")
        if "below" not in d:
            raise RuleError("a score_below rule needs below (the threshold)")
    if kind == "text":
        from corridor.text.affect import INTENTS

        if not d.get("intents") and not d.get("themes"):
            raise RuleError("a text rule needs intents (e.g. complaint) or themes")
        bad = [i for i in d.get("intents", ()) if i not in INTENTS]
        if bad:
            raise RuleError(f"unknown intent(s) {', '.join(bad)}; allowed: {', '.join(INTENTS)}")
    if kind in ("threshold", "change"):
        _check_analysis(kind, d)
    if kind == "forecast":
        _check_forecast(d)


def _forecast_words(d: Any) -> str:
    from corridor.analytics.anticipation.warnings import describe

    return describe(d)


def _check_forecast(d: dict[str, Any]) -> None:
    from corridor.analytics.anticipation.warnings import check_definition

    try:
        check_definition(d)
    except CorridorError as e:
        raise RuleError(str(e)) from None


def _check_analysis(kind: str, d: dict[str, Any]) -> None:
    from corridor.analytics.core import registry
    from corridor.analytics.core.dimensions import PERIODS

    if not d.get("analysis") or not d.get("column"):
        raise RuleError(f"a {kind} rule needs analysis and column (e.g. gaps and mean_gap)")
    try:
        analysis = registry.get(str(d["analysis"]))
    except CorridorError as e:
        raise RuleError(str(e)) from None
    if analysis.person:
        raise RuleError(f"{analysis.name} answers about one person; pick a grouped analysis")
    cols = {c.name for c in analysis.columns}
    if d["column"] not in cols:
        raise RuleError(
            f"{analysis.name} has no column {d['column']!r}; its columns: {', '.join(sorted(cols))}"
        )
    if kind == "threshold" and ("below" in d) == ("above" in d):
        raise RuleError("a threshold rule needs exactly one of below and above")
    if kind == "change" and f"p_value_{d['column']}" not in cols:
        raise RuleError(
            f"{analysis.name} reports no p-value for {d['column']} (no p_value_{d['column']} "
            "column): a change rule needs one"
        )
    if analysis.period is None:
        raise RuleError(f"{analysis.name} has no periods; threshold and change rules need them")
    if d.get("period", "week") not in PERIODS:
        raise RuleError(f"period must be one of {', '.join(PERIODS)}")
    if analysis.by is not None and analysis.by.choices:
        bad = [b for b in d.get("by", ()) if b not in analysis.by.choices]
        if bad:
            raise RuleError(f"{analysis.name} cannot group by {', '.join(bad)}")
    params = d.get("params") or {}
    if not isinstance(params, Mapping):
        raise RuleError("params must map parameter names to values")
    reserved = {"by", "period", "since", "until", "filters"} & set(params)
    if reserved:
        raise RuleError(f"params cannot set {', '.join(sorted(reserved))}; use the rule's own")
    try:
        analysis.bind({**params})
    except CorridorError as e:
        raise RuleError(f"params: {e}") from None


# -- storage ---------------------------------------------------------------------------------
_COLUMNS = (
    "rule_id", "name", "family", "kind", "definition", "scope", "cooldown_s", "priority",
    "team", "sla_policy", "reopen_unverified", "enabled", "created_at", "created_by",
    "disabled_at", "evaluated_at",
)  # fmt: skip


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else (value or {})


def _rule(row: Sequence[Any]) -> Rule:
    r = dict(zip(_COLUMNS, row, strict=True))
    return Rule(
        rule_id=r["rule_id"],
        kind=r["kind"],
        definition=_json(r["definition"]),
        scope=_json(r["scope"]),
        name=r["name"],
        cooldown_s=int(r["cooldown_s"]),
        priority=r["priority"],
        team=r["team"],
        sla_policy=r["sla_policy"],
        reopen_unverified=bool(r["reopen_unverified"]),
        enabled=bool(r["enabled"]),
        created_at=r["created_at"],
        created_by=r["created_by"],
        disabled_at=r["disabled_at"],
        evaluated_at=r["evaluated_at"],
    )


#: the columns of ``alert_rules`` a :class:`Rule` is made of
RULE_COLUMNS = _COLUMNS


def active_rules(tx: Tx, family: str) -> list[Rule]:
    """The enabled rules of one family, in id order."""
    rows = tx.fetchall(
        f"SELECT {', '.join(_COLUMNS)} FROM alert_rules WHERE enabled AND family = ? "
        "ORDER BY rule_id",
        (family,),
    )
    return [_rule(r) for r in rows]


def read_rule(tx: Tx, rule_id: str) -> Rule | None:
    rows = tx.fetchall(
        f"SELECT {', '.join(_COLUMNS)} FROM alert_rules WHERE rule_id = ?", (rule_id,)
    )
    return _rule(rows[0]) if rows else None


def get_rule(store: Store, rule_id: str) -> Rule:
    with store.transaction() as tx:
        rule = read_rule(tx, rule_id)
    if rule is None:
        raise RuleNotFoundError(f"no rule {rule_id!r}; `corridor rules list` shows them")
    return rule


def list_rules(store: Store, *, include_disabled: bool = True) -> list[Rule]:
    where = "" if include_disabled else "WHERE enabled"
    with store.transaction() as tx:
        rows = tx.fetchall(
            f"SELECT {', '.join(_COLUMNS)} FROM alert_rules {where} ORDER BY rule_id"
        )
    return [_rule(r) for r in rows]


def _check_against_map(store: Store, rule: Rule) -> None:
    """A scope naming a department or touch point the corridor map does not have (once one is
    loaded), touch points none of which belongs to the scope's departments, or promises the map
    does not have are refused: the rule could never fire, and nothing would say why."""
    from corridor.store.maps import load_map

    promises = list(rule.definition.get("promises") or ())
    if not (rule.scope.get("department") or rule.scope.get("touchpoint") or promises):
        return
    cmap = load_map(store)
    if cmap is None:
        return
    problems = [
        *(cmap.unknown("department", v) for v in rule.scope.get("department", ())),
        *(cmap.unknown("touchpoint", v) for v in rule.scope.get("touchpoint", ())),
    ]
    for problem in problems:
        if problem:
            raise RuleError(f"scope: {problem}")
    departments = set(rule.scope.get("department", ()))
    touchpoints = rule.scope.get("touchpoint", ())
    if departments and touchpoints:
        owners = {t: cmap.touchpoint(t).department for t in touchpoints}
        if not departments & set(owners.values()):
            raise RuleError(
                f"scope: no touch point of {', '.join(touchpoints)} belongs to "
                f"{', '.join(sorted(departments))} (they belong to "
                f"{', '.join(sorted(set(owners.values())))}): the rule could never fire"
            )
    known = sorted(p.key for tp in cmap.touchpoints for p in tp.promises)
    bad = [p for p in promises if p not in known]
    if bad:
        raise RuleError(
            f"no promise {', '.join(map(repr, bad))} in the corridor map; known: "
            f"{', '.join(known) or 'none'}"
        )


def add_rule(store: Store, rule: Rule, *, actor: str) -> Rule:
    """Check and store a new rule (its id must be new)."""
    rule = check(rule)
    _check_against_map(store, rule)
    now = datetime.now(UTC)
    rule = replace(rule, created_at=now, created_by=actor, enabled=True)
    with store.transaction() as tx:
        if rule.sla_policy:
            from corridor.loop.sla import get_policy

            get_policy(tx, rule.sla_policy)  # refuses an unknown policy
        if read_rule(tx, rule.rule_id) is not None:
            raise RuleError(
                f"a rule {rule.rule_id!r} exists already; disable it and add one with a new id"
            )
        tx.execute(
            f"INSERT INTO alert_rules ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_COLUMNS))})",
            (
                rule.rule_id, rule.name or rule.describe(), rule.family, rule.kind,
                json.dumps(dict(rule.definition)), json.dumps(dict(rule.scope)), rule.cooldown_s,
                rule.priority, rule.team, rule.sla_policy or DEFAULT_POLICY_NAME,
                rule.reopen_unverified, True, now, actor, None, None,
            ),
        )  # fmt: skip
        stored = read_rule(tx, rule.rule_id)
    assert stored is not None
    return stored


def disable_rule(store: Store, rule_id: str, *, actor: str) -> Rule:
    """Stop a rule from firing; its alerts and cases stay."""
    with store.transaction() as tx:
        rule = read_rule(tx, rule_id)
        if rule is None:
            raise RuleNotFoundError(f"no rule {rule_id!r}; `corridor rules list` shows them")
        if rule.enabled:
            tx.execute(
                "UPDATE alert_rules SET enabled = FALSE, disabled_at = ?, disabled_by = ? "
                "WHERE rule_id = ?",
                (datetime.now(UTC), actor, rule_id),
            )
        stored = read_rule(tx, rule_id)
    assert stored is not None
    return stored


__all__ = [
    "AGGREGATE_KINDS",
    "KINDS",
    "PERSON_SCOPE_KEYS",
    "RECORD_KINDS",
    "RULE_COLUMNS",
    "SCOPE_KEYS",
    "Rule",
    "RuleError",
    "RuleNotFoundError",
    "active_rules",
    "add_rule",
    "check",
    "disable_rule",
    "get_rule",
    "list_rules",
    "parse_duration",
    "read_rule",
]
