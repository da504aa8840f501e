"""Retention: personal data kept no longer than the privacy settings say, applied by the
scheduler's ``privacy.retention`` job (daily) or ``corridor people retention``.

Per record kind (:mod:`corridor.privacy.settings`, 0 days turns one off):

- ``retention.feedback_text_days``: feedback free text older than this (by ``occurred_at``) is
  removed; the scores, the text's analysis (sentiment, theme) and the record stay;
- ``retention.original_text_days``: kept original texts stored longer ago than this are removed;
- ``retention.prospect_days``: a prospect (a person group whose canonical person is of kind
  ``prospect``) first seen, and with no interaction or feedback, within this many days is
  erased whole (:func:`corridor.privacy.requests.request`, identities to the ledger);
- ``retention.notification_days`` (90 by default): notifications (the outbox's rows: a webhook,
  a mail, a digest line) finished longer ago than this (sent, failed, cancelled or put in a
  digest; created, delivered, last tried and last due before the cutoff) are removed with their
  delivery log; one still to send, or whose survey invitation still waits for its reminder (the
  reminder reads the invitation's mail), stays.

Each run writes one audit line ``retention.run`` with what it removed (counts only).

The same module registers ``privacy.resume`` (every 5 minutes): an erasure or anonymisation
running for more than 10 minutes was left by a crash, and is carried on
(:func:`corridor.privacy.requests.resume`; each step is idempotent).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from corridor.loop import scheduler
from corridor.privacy import audit, mails, requests, settings, subject
from corridor.store.base import Store

#: prospects erased per run at most (the next run takes the rest)
MAX_PROSPECTS = 500
JOB = "privacy.retention"


def apply(
    store: Store, *, now: datetime | None = None, actor: audit.Actor = audit.SYSTEM
) -> dict[str, Any]:
    """Apply every retention setting once; returns what was removed."""
    now = now or datetime.now(UTC)
    conf = settings.read_settings(store)
    days = {k: int(conf[k]) for k in settings.RETENTION}
    done: dict[str, Any] = {"settings": days}
    text_days = days["retention.feedback_text_days"]
    orig_days = days["retention.original_text_days"]
    with store.transaction() as tx:
        if text_days:
            cutoff = now - timedelta(days=text_days)
            done["feedback_texts"] = max(
                tx.execute(
                    "UPDATE feedback SET text = NULL WHERE text IS NOT NULL AND occurred_at < ?",
                    (cutoff,),
                ),
                0,
            )
            withdrawn = mails.withdraw_reports_before(tx, cutoff)
            if withdrawn:  # (they quoted texts just removed: made again without them)
                done["report_mails_withdrawn"] = withdrawn
        if orig_days:
            done["original_texts"] = max(
                tx.execute(
                    "DELETE FROM feedback_text_original WHERE stored_at < ?",
                    (now - timedelta(days=orig_days),),
                ),
                0,
            )
    note_days = days["retention.notification_days"]
    if note_days:
        done["notifications"] = _old_notifications(store, now - timedelta(days=note_days))
    prospect_days = days["retention.prospect_days"]
    if prospect_days:
        cutoff = now - timedelta(days=prospect_days)
        stale = store.query(
            "SELECT p.person_id FROM people p WHERE p.person_id = p.canonical_id "
            "AND p.kind = 'prospect' AND p.first_seen_at < ? AND NOT EXISTS ("
            "SELECT 1 FROM people m JOIN interactions i ON i.person_id = m.person_id "
            "WHERE m.canonical_id = p.person_id AND i.occurred_at >= ?) AND NOT EXISTS ("
            "SELECT 1 FROM people m JOIN feedback f ON f.person_id = m.person_id "
            "WHERE m.canonical_id = p.person_id AND f.occurred_at >= ?) "
            "ORDER BY p.person_id LIMIT ?",
            (cutoff, cutoff, cutoff, MAX_PROSPECTS),
        )
        for (pid,) in stale:
            requests.request(store, str(pid), "erase", actor=actor)
        done["prospects_erased"] = len(stale)
    audit.log(store, actor, "retention.run", detail=done)
    return done


#: the outbox's finished states (see corridor.loop.outbox_rows)
_FINISHED = ("delivered", "failed", "cancelled", "digested")


#: notifications removed per transaction (a first run on a large outbox holds the store's
#: writer for a moment at a time, not for the whole removal)
CHUNK = 20_000


def _old_notifications(store: Store, cutoff: datetime) -> int:
    """Remove the notifications finished before ``cutoff`` and their delivery log, at most
    :data:`CHUNK` a transaction; how many."""
    with store.transaction() as tx:
        tables = subject.existing_tables(tx)
    if "outbox" not in tables:
        return 0
    marks = ", ".join("?" for _ in _FINISHED)
    # finished before the cutoff: made, delivered, last tried (or due: a redelivery sets it,
    # so does a cancellation) all before it
    old = (
        f"state IN ({marks}) AND created_at < ? AND (delivered_at IS NULL OR delivered_at < ?)"
        " AND next_attempt_at < ? AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE "
        "d.outbox_id = outbox.id AND d.attempted_at >= ?)"
    )
    params: list[Any] = [*_FINISHED, cutoff, cutoff, cutoff, cutoff]
    if "survey_invitations" in tables:  # a reminder to come reads the invitation's mail
        old += (
            " AND NOT EXISTS (SELECT 1 FROM survey_invitations i WHERE "
            "i.invitation_id || '-invitation' = outbox.idempotency_key AND "
            "i.remind_at IS NOT NULL AND i.reminded_at IS NULL)"
        )
    found = store.query(f"SELECT id FROM outbox WHERE {old} ORDER BY id", params)  # one pass
    ids = [int(r[0]) for r in found]
    removed = 0
    for start in range(0, len(ids), CHUNK):
        with store.transaction() as tx:
            keys = tx.stage_keys("_old_outbox", ids[start : start + CHUNK])
            # still old (a redelivery since the pass makes a row due again): asked again of
            # these rows only, by their ids
            still = f"SELECT id FROM outbox WHERE id IN ({keys}) AND {old}"
            tx.execute(f"DELETE FROM deliveries WHERE outbox_id IN ({still})", params)
            removed += max(tx.execute(f"DELETE FROM outbox WHERE id IN ({still})", params), 0)
    return removed


def _job(ctx: scheduler.JobContext) -> str:
    done = apply(ctx.store)
    parts = [f"{k.replace('_', ' ')} {v}" for k, v in done.items() if k != "settings"]
    return "; ".join(parts) or "no retention set"


scheduler.register(JOB, 86400, _job)

#: the job carrying on requests a crash left part-way
RESUME_JOB = "privacy.resume"
#: a request running longer than this is taken to have been left by a crash
STALE = timedelta(minutes=10)


def _resume_job(ctx: scheduler.JobContext) -> str:
    done = requests.resume(ctx.store, actor=audit.SYSTEM, older_than=STALE)
    return f"{len(done)} request(s) carried on" if done else "none left running"


scheduler.register(RESUME_JOB, 300, _resume_job)
