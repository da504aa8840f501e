"""The surveys' scheduled job, registered with the one scheduler at import:
``surveys.invitations`` (every minute): new invitations from the triggers, the contact rules,
the mails, the reminders (:func:`corridor.surveys.invitations.run`)."""

from __future__ import annotations

from corridor.loop import scheduler
from corridor.loop.scheduler import JobContext
from corridor.surveys import invitations

EVERY_S = 60.0


def base_url(ctx: JobContext) -> str:
    """Where customers reach the survey pages: ``public_url``, else this server's address."""
    s = ctx.settings
    return s.public_url or f"http://{s.host}:{s.port}"


def invitations_job(ctx: JobContext) -> str | None:
    report = invitations.run(ctx.store, base_url(ctx))
    if not (report.sent or report.held or report.failed or report.reminded or report.answered):
        return None
    return report.summary()


scheduler.register("surveys.invitations", EVERY_S, invitations_job)

__all__ = ["EVERY_S", "base_url", "invitations_job"]
