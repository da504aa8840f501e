"""Vectorised free text: opener (by source and sentiment) + touch-point phrase (by sentiment)
+ optional generic sentence + optional PII tail (an e-mail or phone number to redact later)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from .corridor_map import TP_KEYS
from .params import FEEDBACK_SOURCES


def _load() -> dict[str, Any]:
    with resources.files(__package__).joinpath("phrases.yaml").open("r", encoding="utf-8") as f:
        doc: dict[str, Any] = yaml.safe_load(f)
    return doc


_DOC = _load()
SENTIMENTS: tuple[str, ...] = ("complaint", "praise", "suggestion", "question")
GENERIC: dict[str, list[str]] = _DOC["generic"]
OPENERS: dict[str, dict[str, list[str]]] = _DOC["openers"]
PHRASES: dict[str, dict[str, list[str]]] = _DOC["touchpoints"]
PII_TAILS: list[str] = _DOC["pii_tails"]

SOURCES: tuple[str, ...] = FEEDBACK_SOURCES
COMPLAINT, PRAISE, SUGGESTION, QUESTION = range(4)


class _Catalogue:
    """Flattened phrase lists with (offset, count) per key, for index arithmetic."""

    def __init__(self, groups: list[list[str]], shape: tuple[int, int]) -> None:
        flat: list[str] = []
        offsets, counts = [], []
        for g in groups:
            offsets.append(len(flat))
            counts.append(len(g))
            flat.extend(g)
        self.strings = pa.array(flat, pa.string())
        self.offset = np.array(offsets, np.int64).reshape(shape)
        self.count = np.array(counts, np.int64).reshape(shape)

    def pick(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> pa.Array:
        idx = self.offset[a, b] + (rng.random(len(a)) * self.count[a, b]).astype(np.int64)
        return self.strings.take(pa.array(idx))


_PHRASES = _Catalogue(
    [PHRASES.get(tp, {}).get(s) or GENERIC[s] for tp in TP_KEYS for s in SENTIMENTS],
    (len(TP_KEYS), len(SENTIMENTS)),
)
_OPENERS = _Catalogue(
    [OPENERS[src][s] for src in SOURCES for s in SENTIMENTS], (len(SOURCES), len(SENTIMENTS))
)
_GENERIC = _Catalogue([GENERIC[s] for s in SENTIMENTS], (1, len(SENTIMENTS)))


def all_strings() -> list[str]:
    """Every template string (for tests: no quotes, backslashes or control characters)."""
    return [
        *_PHRASES.strings.to_pylist(),
        *_OPENERS.strings.to_pylist(),
        *_GENERIC.strings.to_pylist(),
        *PII_TAILS,
    ]


def sentiment(
    expectation: np.ndarray, experience: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Sentiment of the text from the latent gap (experience - expectation)."""
    gap = experience.astype(np.int16) - expectation.astype(np.int16)
    u = rng.random(len(gap))
    neutral = np.where(
        u < 0.55, SUGGESTION, np.where(u < 0.85, QUESTION, np.where(gap >= 0, PRAISE, COMPLAINT))
    )
    out = np.where(gap <= -2, COMPLAINT, neutral)
    out = np.where((gap == -1) & (u < 0.4), COMPLAINT, out)
    out = np.where(((gap >= 1) & (experience >= 7)) | (experience >= 9), PRAISE, out)
    return out.astype(np.int8)


def build_text(
    source: np.ndarray,
    tp: np.ndarray,
    mood: np.ndarray,
    contact: pa.Array,
    rng: np.random.Generator,
) -> pa.Array:
    """Texts for rows with ``source`` index, touch point, sentiment ``mood``; ``contact`` holds
    the writer's e-mail/phone where a PII tail should be appended (null elsewhere)."""
    n = len(tp)
    if n == 0:
        return pa.array([], pa.string())
    zero = np.zeros(n, np.int64)
    opener = _OPENERS.pick(source, mood, rng)
    use_opener = (source != 0) | (rng.random(n) < 0.5)
    opener = pc.if_else(pa.array(use_opener), opener, pa.nulls(n, pa.string()))
    phrase = _PHRASES.pick(tp, mood, rng)
    extra = _GENERIC.pick(zero, mood, rng)
    extra = pc.if_else(pa.array(rng.random(n) < 0.25), extra, pa.nulls(n, pa.string()))
    tail_words = pa.array(PII_TAILS).take(pa.array(rng.integers(0, len(PII_TAILS), n)))
    tail = pc.binary_join_element_wise(tail_words, contact, " ")  # null where no contact
    tail = pc.binary_join_element_wise(tail, ".", "")
    return pc.binary_join_element_wise(opener, phrase, extra, tail, " ", null_handling="skip")
