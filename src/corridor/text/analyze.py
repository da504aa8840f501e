"""Analyse feedback texts: sentiment, intent and emotion facets, as rows for ``text_analysis``.

:func:`analyze_texts` is pure (texts in, an Arrow table out). The sentiment comes from the
default lexicon model (:mod:`corridor.text.sentiment`) or, with ``model="minilm"`` and the
``text`` extra installed, from sentence embeddings and a trained head
(:mod:`corridor.text.embed`); intent and emotions always come from the rules of
:mod:`corridor.text.affect`, which read the lexicon polarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from corridor.text import affect as _affect
from corridor.text import sentiment as _sentiment
from corridor.text.errors import TextAnalysisError

__all__ = ["ANALYSIS_SCHEMA", "MODELS", "analyze_texts", "model_name"]

#: the sentiment models a caller may name
MODELS: tuple[str, ...] = ("lexicon", "minilm")

ANALYSIS_SCHEMA = pa.schema(
    [
        ("feedback_id", pa.string()),
        ("sentiment", pa.float64()),
        ("sentiment_label", pa.string()),
        ("intent", pa.string()),
        ("emotions", pa.string()),
        ("theme_id", pa.string()),
        ("model", pa.string()),
        ("analyzed_at", pa.timestamp("us", tz="UTC")),
    ]
)


def check_model(model: str) -> str:
    if model not in MODELS:
        raise TextAnalysisError(
            f"unknown sentiment model {model!r}; use one of: {', '.join(MODELS)}"
        )
    return model


def model_name(model: str) -> str:
    """The name and version stored with each row (``lexicon-1``, ``minilm-head-1``)."""
    if check_model(model) == "lexicon":
        return _sentiment.MODEL
    import corridor.text.embed as embed

    return embed.MODEL


def analyze_texts(
    feedback_ids: Sequence[str],
    texts: Sequence[str],
    *,
    model: str = "lexicon",
    theme_ids: Sequence[str | None] | None = None,
    now: datetime | None = None,
) -> pa.Table:
    """One ``text_analysis`` row per text (schema :data:`ANALYSIS_SCHEMA`)."""
    check_model(model)
    if len(feedback_ids) != len(texts):
        raise TextAnalysisError("feedback_ids and texts must have the same length")
    # each distinct text is analysed once (every model here scores a text by itself alone):
    # short answers repeat ("Great service", "ok"), and simulated ones are drawn from templates
    position: dict[str, int] = {}
    of_text = np.fromiter((position.setdefault(t, len(position)) for t in texts), np.intp)
    distinct = list(position)
    lexicon = _sentiment.scores(distinct)
    distinct_affects = _affect.affect_many(distinct, lexicon.tolist())
    affects = [distinct_affects[i] for i in of_text]
    if model == "minilm":
        import corridor.text.embed as embed

        score = embed.scores(distinct)[of_text]
        name = embed.MODEL
        labels = embed.labels(score)
    else:
        score = lexicon[of_text]
        name = _sentiment.MODEL
        labels = _sentiment.labels(score)
    n = len(texts)
    when = now or datetime.now(UTC)
    return pa.table(
        {
            "feedback_id": pa.array(list(feedback_ids), pa.string()),
            "sentiment": pa.array(np.asarray(score, dtype=float), pa.float64()),
            "sentiment_label": pa.array(list(labels), pa.string()),
            "intent": pa.array([a.intent for a in affects], pa.string()),
            "emotions": pa.array([",".join(a.emotions) for a in affects], pa.string()),
            "theme_id": pa.array(
                list(theme_ids) if theme_ids is not None else [None] * n, pa.string()
            ),
            "model": pa.array([name] * n, pa.string()),
            "analyzed_at": pa.array([when] * n, pa.timestamp("us", tz="UTC")),
        },
        schema=ANALYSIS_SCHEMA,
    )
