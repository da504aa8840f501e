"""The closed loop: notifications through a durable outbox (signed webhooks, SMTP e-mail,
digests) and the one scheduler that runs the loop's jobs in the server process.

- :mod:`corridor.loop.outbox` — :func:`~corridor.loop.outbox.enqueue` (inside the caller's
  transaction), claiming, retries, the delivery log, redelivery;
- :mod:`corridor.loop.webhooks` — endpoints, Standard Webhooks signing, the private-target check;
- :mod:`corridor.loop.mail` — SMTP delivery, per-user preferences and digests;
- :mod:`corridor.loop.scheduler` — ``register(name, every_s, fn)`` and the :class:`Scheduler`.

Importing this package registers the built-in jobs: ``outbox.dispatch`` (every second, and at
once after each enqueue) and ``digests`` (hourly). A module of the loop with jobs of its own
registers them at import time and is imported here.
"""

from __future__ import annotations

from corridor.loop import mail, outbox, scheduler, webhooks
from corridor.loop.scheduler import JobContext, Scheduler

__all__ = ["JobContext", "Scheduler", "digests_job", "dispatch_job"]

#: the most outbox rows one claim of the dispatch job takes
MAX_CLAIM = 2000


def dispatch_job(ctx: JobContext) -> str | None:
    """Send every due webhook and e-mail notification."""
    s = ctx.settings
    with webhooks.WebhookSender(ctx.store, timeout_s=s.webhook_timeout_s) as hooks:
        report = outbox.dispatch(
            ctx.store,
            {outbox.WEBHOOK: hooks.deliver, outbox.EMAIL: mail.MailSender(s).deliver},
            batch_senders={outbox.WEBHOOK: hooks.deliver_batch},
            # enough rows per claim for a full batch per parallel sender
            batch=min(MAX_CLAIM, max(64, 16 * hooks.largest_batch())),
            owner=ctx.owner,
            max_attempts=s.outbox_max_attempts,
            base_s=s.outbox_retry_base_s,
            # a claim outlives the slowest attempt, so it is never sent twice at once
            lease_s=max(s.webhook_timeout_s, s.smtp_timeout_s) + 30.0,
            stop=ctx.stopping,
            # the scheduler runs this job in one process at a time: a claim another process
            # left is a dead run's, taken over at once (no wait for its lease to run out)
            exclusive=True,
        )
    return report.summary() if report.sent else None


def digests_job(ctx: JobContext) -> str:
    """Fold waiting digest lines into one mail per user whose digest period has passed."""
    return f"{mail.send_digests(ctx.store)} digest mails"


scheduler.register("outbox.dispatch", 1.0, dispatch_job, wake_on=outbox.on_enqueue)
scheduler.register("digests", 3600.0, digests_job)
