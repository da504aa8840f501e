"""The responses' scheduled job, registered with the one scheduler at import:
``surveys.responses`` (every 10 minutes): finish the answers a crash left acknowledged but not
stored (:func:`corridor.surveys.responses.recover`), and send the responses left unfinished of
surveys that allow it (``partial_after_days``; :func:`corridor.surveys.responses.send_abandoned`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from corridor.ingest.pipeline import Ingestor
from corridor.loop import scheduler
from corridor.loop.scheduler import JobContext
from corridor.surveys import responses

EVERY_S = 600.0


def _work(ctx: JobContext) -> bool:
    """Whether there is anything to do (an Ingestor is made only then)."""
    cutoff = datetime.now(UTC) - timedelta(days=1)
    return bool(
        ctx.store.query(
            "SELECT 1 FROM survey_responses WHERE state = ? OR (state = ? AND started_at IS "
            "NOT NULL AND saved_at <= ?) LIMIT 1",
            (responses.SUBMITTING, responses.OPEN, cutoff),
        )
    )


def responses_job(ctx: JobContext) -> str | None:
    if not _work(ctx):
        return None
    settings = ctx.settings
    ingestor = Ingestor(
        ctx.store,
        keep_original_text=settings.keep_original_text,
        analyze_text=settings.text_analysis != "off",
    )
    try:
        recovered = responses.recover(ctx.store, ingestor)
        partial = responses.send_abandoned(ctx.store, ingestor)
    finally:
        ingestor.close()
    if not (recovered or partial):
        return None
    return f"{recovered} response(s) finished after a crash, {partial} unfinished one(s) sent"


scheduler.register("surveys.responses", EVERY_S, responses_job)

__all__ = ["EVERY_S", "responses_job"]
