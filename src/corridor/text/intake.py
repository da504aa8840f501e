"""What happens to feedback text at ingest: redaction, originals, and the cheap analysis.

Called by :class:`corridor.ingest.pipeline.Ingestor` for every feedback batch, whatever door it
came through (HTTP or file import):

1. :func:`redact_batch` replaces the ``text`` column with its redacted form
   (:func:`corridor.text.redact.redact_many`) *before* anything is written, so no unredacted
   text reaches the ``feedback`` table; it also returns the originals of the texts redaction
   changed.
2. :func:`store_batch`, inside the batch's transaction: with ``keep_original_text`` on, the
   originals go to ``feedback_text_original`` (a table only administrators may read); with
   ``analyze`` on (the default), every text is scored by the default lexicon model and its row
   written to ``text_analysis``, assigned to the current themes when there are any. With it
   off the texts are *pending* and ``corridor text analyze`` processes them in batches.

Records already stored (a retried batch) keep their analysis (``ON CONFLICT DO NOTHING``).
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from corridor.store.base import Tx
from corridor.text import themes as _themes
from corridor.text.analyze import analyze_texts
from corridor.text.redact import redact_many

__all__ = ["redact_batch", "store_batch"]

_ORIGINALS = pa.schema(
    [("feedback_id", pa.string()), ("text", pa.string()), ("stored_at", pa.timestamp("us", "UTC"))]
)


def redact_batch(valid: pa.Table) -> tuple[pa.Table, pa.Table | None]:
    """``valid`` with its ``text`` column redacted, and ``(feedback_id, text)`` of the texts
    redaction changed (None when nothing changed or there is no text column)."""
    if "text" not in valid.schema.names or valid.num_rows == 0:
        return valid, None
    column = valid.column("text")
    if column.null_count == len(column):
        return valid, None
    original = column.to_pylist()
    redacted = redact_many(original)
    changed = [i for i, (a, b) in enumerate(zip(original, redacted, strict=True)) if a != b]
    if not changed:
        return valid, None
    idx = valid.schema.get_field_index("text")
    out = valid.set_column(idx, valid.schema.field(idx), pa.array(redacted, column.type))
    take = pa.array(changed, pa.int64())
    originals = pa.table(
        {
            "feedback_id": valid.column("feedback_id").take(take),
            "text": pa.array([original[i] for i in changed], pa.string()),
        }
    )
    return out, originals


def store_batch(
    tx: Tx,
    valid: pa.Table,
    originals: pa.Table | None,
    now: datetime,
    *,
    keep_original: bool,
    analyze: bool,
) -> int:
    """Write the originals (when kept) and the analysis of the batch's texts; returns how many
    texts were analysed."""
    if keep_original and originals is not None and originals.num_rows:
        rows = originals.append_column(
            "stored_at", pa.repeat(pa.scalar(now, pa.timestamp("us", "UTC")), originals.num_rows)
        ).cast(_ORIGINALS)
        tx.stage("_text_originals", rows)
        tx.insert(
            "feedback_text_original",
            "_text_originals",
            _ORIGINALS.names,
            key=["feedback_id"],
        )
    if not analyze or "text" not in valid.schema.names:
        return 0
    has_text = pc.invert(pc.is_null(valid.column("text")))
    if not pc.any(has_text).as_py():
        return 0
    rows = valid.filter(has_text).select(["feedback_id", "text"])
    ids = rows.column("feedback_id").to_pylist()
    texts = rows.column("text").to_pylist()
    assigner = _themes.current_assigner(tx)
    theme_ids = assigner.assign(texts) if assigner is not None else None
    table = analyze_texts(ids, texts, theme_ids=theme_ids, now=now)
    tx.stage("_text_analysis", table)
    tx.insert("text_analysis", "_text_analysis", table.schema.names, key=["feedback_id"])
    return table.num_rows
