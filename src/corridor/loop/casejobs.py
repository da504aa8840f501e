"""The scheduled jobs of rules and cases, registered with the one scheduler at import:

- ``rules.evaluate`` (every 15 minutes): the aggregate rules
  (:func:`corridor.loop.aggregate_rules.evaluate`);
- ``sla.escalate`` (every minute): breaches of the SLA clocks (:func:`corridor.loop.sla.escalate`);
- ``cases.verify`` (hourly): verification of resolved cases
  (:func:`corridor.loop.verify.verify_due`).

Record rules need no job: they run in each ingest batch's transaction.
"""

from __future__ import annotations

from corridor.loop import aggregate_rules, scheduler, sla, verify
from corridor.loop.scheduler import JobContext

EVALUATE_EVERY_S = 15 * 60.0
ESCALATE_EVERY_S = 60.0
VERIFY_EVERY_S = 3600.0


def evaluate_job(ctx: JobContext) -> str:
    return f"{aggregate_rules.evaluate(ctx.store)} alerts raised"


def escalate_job(ctx: JobContext) -> str:
    return f"{sla.escalate(ctx.store)} breaches escalated"


def verify_job(ctx: JobContext) -> str:
    return f"{verify.verify_due(ctx.store)} cases verified or not"


scheduler.register("rules.evaluate", EVALUATE_EVERY_S, evaluate_job)
scheduler.register("sla.escalate", ESCALATE_EVERY_S, escalate_job)
scheduler.register("cases.verify", VERIFY_EVERY_S, verify_job)

__all__ = ["escalate_job", "evaluate_job", "verify_job"]
