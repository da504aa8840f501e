"""Roles, the signed-in principal, and the data scope every page and API route enforces alike.

=============== ==================================================================== ==========
role            sees                                                                 may write
=============== ==================================================================== ==========
admin           everything; manages users and keys                                   yes
analyst         everything                                                           yes
department_head the touch points, operational events and feedback of one department  no
partner_manager the interactions and feedback of one partner (plus the brand's own   no
                channels as an aggregate baseline)
agent           customer timelines (the people they serve); no analytics             no
=============== ==================================================================== ==========

A :class:`Scope` is built once per request from the principal and the corridor map. Analyses
take their filters through :meth:`Scope.restrict`, which forces the department or partner of a
scoped user and refuses (403) a request that names anything outside it, so a URL edited by hand
never widens what a user sees.

**Customers.** Admins, analysts and agents (who serve customers) see any customer whole:
identities, merges, attributes, every record, churn risk with its reasons. A department head or
partner manager sees only a customer with at least one interaction or feedback record in their
scope (anyone else is "not found", exactly as an unknown id, so a guessed id reveals nothing),
and of that customer: the records in scope and counts of those only; identities masked
(``j•••@example.com``, ``•••• 0958``; CRM and device ids hidden); no free-form attributes; the
churn risk and lifetime value as numbers with their intervals but not the reasons, which count
records outside the scope (:meth:`Scope.sees_every_customer`, :meth:`Scope.sees_record`,
:meth:`Scope.shown_identity`, :meth:`Scope.shown_outlook`).

**Cases** (the closed loop, :mod:`corridor.loop`): a department head sees and works the cases of
their department's touch points, a partner manager those of their partner, an agent sees the open
cases of a customer (read only), admins and analysts every case; a case outside the scope is "not
found", exactly as an unknown id (:meth:`Scope.sees_case`, :meth:`Scope.may_work_case`,
:meth:`Scope.case_filter`).

**Operations.** A department's operational events and their ripple effects are seen by those
who see the department's operations: admins, analysts and that department's head; never by a
partner manager (:meth:`Scope.sees_operations`). Totals in a reply (``n``) count only the rows
the user is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from corridor.domain.corridor_map import CorridorMap
from corridor.errors import PermissionDeniedError


class Role(StrEnum):
    ADMIN = "admin"
    ANALYST = "analyst"
    DEPARTMENT_HEAD = "department_head"
    PARTNER_MANAGER = "partner_manager"
    AGENT = "agent"


ROLES: tuple[str, ...] = tuple(r.value for r in Role)

ROLE_HELP = {
    Role.ADMIN: "everything, plus users and API keys",
    Role.ANALYST: "all data and analyses; may send data",
    Role.DEPARTMENT_HEAD: "one department's touch points, events and feedback (--department)",
    Role.PARTNER_MANAGER: "one partner's interactions and feedback (--partner)",
    Role.AGENT: "customer timelines only",
}


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user, signed in with a password (web) or an API key."""

    username: str
    role: Role
    department: str | None = None
    partner: str | None = None

    @property
    def label(self) -> str:
        what = self.department or self.partner
        return f"{self.role.value.replace('_', ' ')}" + (f" · {what}" if what else "")


#: the states of a case still being worked (an agent sees these on a customer's timeline)
OPEN_CASE_STATES: tuple[str, ...] = ("new", "open", "pending")

#: the principal of a server run with ``auth = "off"`` (single-user, local): it sees everything
LOCAL_ADMIN = Principal("local", Role.ADMIN)

Filters = Mapping[str, Sequence[str | None]]


@dataclass(frozen=True)
class Scope:
    """What one principal may see. ``None`` in a field means "no restriction"."""

    principal: Principal
    departments: frozenset[str] | None
    partners: frozenset[str] | None
    touchpoints: frozenset[str] | None

    @classmethod
    def of(cls, principal: Principal, corridor_map: CorridorMap | None) -> Scope:
        role = principal.role
        if role is Role.DEPARTMENT_HEAD:
            dept = principal.department or ""
            tps = frozenset(
                t.key
                for t in (corridor_map.touchpoints if corridor_map else ())
                if t.department == dept
            )
            return cls(principal, frozenset({dept}), None, tps)
        if role is Role.PARTNER_MANAGER:
            return cls(principal, None, frozenset({principal.partner or ""}), None)
        return cls(principal, None, None, None)

    @property
    def role(self) -> Role:
        return self.principal.role

    @property
    def sees_all(self) -> bool:
        return self.role in (Role.ADMIN, Role.ANALYST)

    @property
    def may_analyse(self) -> bool:
        return self.role is not Role.AGENT

    @property
    def may_write(self) -> bool:
        return self.role in (Role.ADMIN, Role.ANALYST)

    def sees_department(self, department: str | None) -> bool:
        return self.departments is None or department in self.departments

    def sees_partner(self, partner: str | None) -> bool:
        return self.partners is None or partner in self.partners

    def sees_touchpoint(self, touchpoint: str | None) -> bool:
        return self.touchpoints is None or touchpoint in self.touchpoints

    @property
    def sees_every_customer(self) -> bool:
        """Any customer, whole (admin, analyst, agent); else only customers with a record in
        scope, masked (see the module notes)."""
        return self.departments is None and self.partners is None

    def sees_record(self, department: str | None, partner: str | None) -> bool:
        """An interaction or feedback record at a touch point of ``department``, through
        ``partner`` (``None``: the brand's own channels)."""
        if self.departments is not None and not self.sees_department(department):
            return False
        return self.partners is None or self.sees_partner(partner)

    def sees_operations(self, department: str | None) -> bool:
        """A department's operational events and their ripple effects."""
        return self.partners is None and self.sees_department(department)

    # -- cases (corridor.loop) -----------------------------------------------------------------
    def sees_case(
        self,
        department: str | None,
        partner: str | None,
        *,
        person_id: str | None = None,
        state: str | None = None,
    ) -> bool:
        """A case of the closed loop, owned by ``department`` and/or ``partner``: admins and
        analysts see every case; a department head those of their department's touch points; a
        partner manager those of their partner (as with records, :meth:`sees_record`); an agent
        the open cases about a customer (on the customer's timeline)."""
        if self.role is Role.AGENT:
            return person_id is not None and state in OPEN_CASE_STATES
        if department is None and partner is None and not self.sees_all:
            return False
        return self.sees_record(department, partner)

    def may_work_case(self, department: str | None, partner: str | None) -> bool:
        """Whether the user may change a case they see (assign, note, change state): every role
        but agent, within what they see."""
        return self.role is not Role.AGENT and self.sees_case(department, partner)

    def case_filter(self) -> tuple[str, list[str]]:
        """The SQL condition over the columns of ``cases`` (``department``, ``partner_id``,
        ``person_id``, ``state``) keeping the cases this user sees, and its parameters: the
        same rule as :meth:`sees_case`, for lists and counts."""
        if self.role is Role.AGENT:
            marks = ", ".join("?" * len(OPEN_CASE_STATES))
            return f"(person_id IS NOT NULL AND state IN ({marks}))", list(OPEN_CASE_STATES)
        parts: list[str] = []
        params: list[str] = []
        if self.departments is not None:
            parts.append(f"department IN ({', '.join('?' * len(self.departments))})")
            params.extend(sorted(self.departments))
        if self.partners is not None:
            parts.append(f"partner_id IN ({', '.join('?' * len(self.partners))})")
            params.extend(sorted(self.partners))
        return ("(" + " AND ".join(parts) + ")" if parts else "TRUE"), params

    def shown_identity(self, id_type: str, value: str) -> str:
        """An identity value as this scope may see it."""
        if self.sees_every_customer:
            return value
        if id_type == "email" and "@" in value:
            local, _, domain = value.partition("@")
            return f"{local[:1]}•••@{domain}"
        if id_type == "phone":
            digits = [c for c in value if c.isdigit()]
            return "•••• " + "".join(digits[-4:]) if len(digits) > 4 else "••••"
        return "(hidden)"

    @property
    def reasons_withheld(self) -> str | None:
        """Why a model's reasons about customers are not shown to this scope (``None``: they
        are shown)."""
        if self.sees_every_customer:
            return None
        return (
            "the reasons draw on the customer's records across the company; a "
            f"{self.role.value.replace('_', ' ')} sees the score and its interval only"
        )

    def shown_outlook(self, outlook: dict[str, Any]) -> dict[str, Any]:
        """A model's answer about one customer (churn risk, lifetime value) as this scope may
        see it: the reasons go where they count records outside the scope."""
        why = self.reasons_withheld
        if why is None:
            return outlook
        out = {k: v for k, v in outlook.items() if k not in ("reasons", "summary")}
        if "reasons" in outlook:
            out["reasons_withheld"] = why
        return out

    def require_analyst_views(self) -> None:
        if not self.may_analyse:
            raise PermissionDeniedError(
                f"{self.principal.username} is an agent: agents see customer timelines only; "
                "ask an admin for an analyst, department or partner role to see analyses"
            )

    def require_write(self, what: str = "send or change data") -> None:
        if not self.may_write:
            raise PermissionDeniedError(
                f"{self.principal.username} ({self.principal.label}) may not {what}; "
                "an admin or analyst may"
            )

    def require_admin(self, what: str) -> None:
        if self.role is not Role.ADMIN:
            raise PermissionDeniedError(f"only an admin may {what}")

    def restrict(self, filters: Filters | None) -> dict[str, list[str | None]] | None:
        """``filters`` narrowed to this scope: a department head's department and a partner
        manager's partner are forced; naming another one is refused with a 403."""
        self.require_analyst_views()
        out: dict[str, list[str | None]] = {k: list(v) for k, v in (filters or {}).items()}
        if self.departments is not None:
            self._check("department", out.get("department"), self.departments)
            self._check("touchpoint", out.get("touchpoint"), self.touchpoints or frozenset())
            out["department"] = [*sorted(self.departments)]
        if self.partners is not None:
            self._check("partner", out.get("partner"), self.partners)
            out["partner"] = [*sorted(self.partners)]
        return out or None

    def _check(
        self, dimension: str, asked: Iterable[str | None] | None, allowed: frozenset[str]
    ) -> None:
        outside = [v for v in asked or () if v not in allowed]
        if outside:
            raise PermissionDeniedError(
                f"{self.principal.username} ({self.principal.label}) may not see {dimension} "
                f"{', '.join(repr(v) for v in outside)}; allowed: "
                f"{', '.join(sorted(allowed)) or 'none'}"
            )
