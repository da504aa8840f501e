"""Themes: what a body of texts is about, found without labels, kept and curated by analysts.

Discovery (:func:`discover`)
    Default: TF-IDF over unigrams and bigrams (English stop words and redaction placeholders
    removed, terms in at least ``min_df`` texts and at most half of them), then non-negative
    matrix factorisation (NMF, Lee & Seung 1999; scikit-learn, NNDSVDa start, fixed seed) into
    ``k`` themes. A theme's keywords are the terms with the largest weights in its component;
    its label the first three. With the ``text`` extra, ``method="embeddings"`` clusters
    all-MiniLM-L6-v2 sentence embeddings with k-means and labels each cluster by class-based
    TF-IDF (the cluster's texts as one document; Grootendorst 2022, BERTopic).

Assignment (:class:`ThemeAssigner`)
    A text belongs to the theme whose term weights best match its TF-IDF vector (the dot
    product of the text's ``tf · idf`` with the theme's normalised component over its top
    terms); a text sharing no term with any theme has none. Embedding themes assign by the
    nearest centroid (cosine). New texts are assigned as they arrive (at ingest, or by
    ``corridor text analyze``), without refitting.

Curation (:mod:`corridor.text.themestore`)
    Themes live in ``text_themes``. An analyst may rename a theme or merge themes into
    another; both persist, and a later rediscovery keeps an analyst's name for a new theme
    whose keywords overlap an old renamed one (Jaccard ≥ 0.4).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from corridor.store.base import Tx
from corridor.text import embed
from corridor.text.errors import TextAnalysisError

__all__ = [
    "METHODS",
    "ThemeAssigner",
    "ThemeDraft",
    "current_assigner",
    "discover",
    "tokenize",
]

METHODS: tuple[str, ...] = ("tfidf-nmf", "embeddings")
TOP_TERMS = 40
KEYWORDS = 8

_PLACEHOLDERS = frozenset({"email", "phone", "card", "iban", "name"})
_TOKEN = re.compile(r"(?u)\b[^\W\d_][^\W\d_'’-]+\b")


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    extra = {"brand", "just", "really", "got", "get", "im", "ive", "dont", "didnt", "did"}
    return frozenset(ENGLISH_STOP_WORDS) | _PLACEHOLDERS | extra


_STOP: frozenset[str] | None = None


def tokenize(text: str) -> list[str]:
    """Lower-case words (letters only, two or more) without stop words, plus the bigrams of
    consecutive kept words: the analyzer both discovery and assignment use."""
    global _STOP
    if _STOP is None:
        _STOP = _stop_words()
    words = [w for w in _TOKEN.findall(text.lower()) if w not in _STOP]
    return words + [f"{a} {b}" for a, b in pairwise(words)]


@dataclass
class ThemeDraft:
    """A discovered theme before it is stored."""

    keywords: list[str]
    model: str
    model_data: dict[str, Any]
    size: int = 0
    theme_id: str = field(default_factory=lambda: f"th_{uuid.uuid4().hex[:10]}")

    @property
    def label(self) -> str:
        """Up to three keywords, skipping one that repeats a word of those already chosen
        ("queue", not then "chat queue")."""
        chosen: list[str] = []
        seen: set[str] = set()
        for kw in self.keywords:
            words = set(kw.split())
            if words & seen:
                continue
            chosen.append(kw)
            seen |= words
            if len(chosen) == 3:
                break
        return " / ".join(chosen)


def discover(
    texts: Sequence[str],
    k: int = 12,
    *,
    method: str = "tfidf-nmf",
    min_df: int = 5,
    seed: int = 0,
) -> list[ThemeDraft]:
    """``k`` themes in ``texts`` (see the module notes); sizes count the texts assigned."""
    if method not in METHODS:
        raise TextAnalysisError(
            f"unknown theme method {method!r}; use one of: {', '.join(METHODS)}"
        )
    if not 2 <= k <= 100:
        raise TextAnalysisError(f"k (the number of themes) must be 2…100, got {k}")
    docs = [t for t in texts if t and t.strip()]
    if len(docs) < max(3 * k, 20):
        raise TextAnalysisError(
            f"theme discovery needs at least {max(3 * k, 20)} texts for k={k}; got {len(docs)}. "
            "Import more feedback with text, or ask for fewer themes (--k)"
        )
    if method == "embeddings":
        return _embedding_themes(docs, k, seed=seed)
    return _nmf(docs, k, min_df=min(min_df, max(1, len(docs) // 50)), seed=seed)


def _nmf(docs: Sequence[str], k: int, *, min_df: int, seed: int) -> list[ThemeDraft]:
    from sklearn.decomposition import NMF
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(
        analyzer=tokenize, min_df=min_df, max_df=0.5, max_features=20_000, sublinear_tf=True
    )
    x = vec.fit_transform(docs)
    if x.shape[1] < k:
        raise TextAnalysisError(
            f"the texts have only {x.shape[1]} distinct terms; ask for fewer themes than that"
        )
    nmf = NMF(n_components=k, init="nndsvda", random_state=seed, max_iter=400)
    weights = nmf.fit_transform(x)
    terms = vec.get_feature_names_out()
    idf = vec.idf_
    drafts: list[ThemeDraft] = []
    for row in nmf.components_:
        top = np.argsort(-row)[:TOP_TERMS]
        top = top[row[top] > 0]
        norm = float(np.linalg.norm(row[top])) or 1.0
        drafts.append(
            ThemeDraft(
                keywords=[str(terms[i]) for i in top[:KEYWORDS]],
                model="tfidf-nmf",
                model_data={
                    "terms": {str(terms[i]): float(row[i] / norm) for i in top},
                    "idf": {str(terms[i]): float(idf[i]) for i in top},
                },
            )
        )
    best = np.argmax(weights, axis=1)
    has = weights.max(axis=1) > 0
    for j, draft in enumerate(drafts):
        draft.size = int(np.sum((best == j) & has))
    return drafts


def _embedding_themes(docs: Sequence[str], k: int, *, seed: int) -> list[ThemeDraft]:
    """k-means on the sentence embeddings; keywords by class-based TF-IDF (Grootendorst 2022):
    each cluster's texts form one document, terms are weighted by ``tf · log(1 + A / f)`` with A
    the mean words per cluster and f the term's frequency over all clusters."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import CountVectorizer

    emb = embed.encode(docs)
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(emb)
    groups = km.labels_
    counts = CountVectorizer(analyzer=tokenize, min_df=2).fit(docs)
    x = counts.transform(docs)
    terms = counts.get_feature_names_out()
    per_class = np.vstack([np.asarray(x[groups == j].sum(axis=0)).ravel() for j in range(k)])
    avg_words = per_class.sum() / k
    idf = np.log1p(avg_words / np.maximum(per_class.sum(axis=0), 1))
    ctfidf = per_class / np.maximum(per_class.sum(axis=1, keepdims=True), 1) * idf
    drafts = []
    for j in range(k):
        top = np.argsort(-ctfidf[j])[:KEYWORDS]
        centroid = km.cluster_centers_[j] / (np.linalg.norm(km.cluster_centers_[j]) or 1.0)
        drafts.append(
            ThemeDraft(
                keywords=[str(terms[i]) for i in top],
                model="embeddings",
                model_data={"centroid": [round(float(c), 6) for c in centroid]},
                size=int(np.sum(groups == j)),
            )
        )
    return drafts


def _nearest_centroid(
    themes: Sequence[tuple[str, str, dict[str, Any]]], texts: Sequence[str]
) -> list[str | None]:
    """Nearest centroid (cosine) of each text's embedding."""
    if not texts:
        return []
    ids = [t[0] for t in themes]
    centroids = np.asarray([t[2]["centroid"] for t in themes], dtype=np.float32)
    sims = embed.encode(texts) @ centroids.T
    best = np.argmax(sims, axis=1)
    return [ids[b] if t and t.strip() else None for b, t in zip(best, texts, strict=True)]


class ThemeAssigner:
    """Assigns texts to stored themes (``(theme_id, model, model_data)`` triples)."""

    def __init__(self, themes: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        self.ids = [t[0] for t in themes]
        self.embedding = [t for t in themes if t[1] == "embeddings"]
        lexical = [t for t in themes if t[1] == "tfidf-nmf"]
        self._weights: dict[str, list[tuple[int, float]]] = {}
        self._idf: dict[str, float] = {}
        self._lexical_ids = [t[0] for t in lexical]
        for j, (_, _, data) in enumerate(lexical):
            idf = data.get("idf", {})
            for term, w in data.get("terms", {}).items():
                self._weights.setdefault(term, []).append((j, float(w)))
                self._idf[term] = float(idf.get(term, 1.0))

    def assign(self, texts: Sequence[str]) -> list[str | None]:
        if self.embedding:
            return _nearest_centroid(self.embedding, texts)
        return [self._one(t) for t in texts]

    def _one(self, text: str) -> str | None:
        weights = self._weights
        if not text or not weights:
            return None
        counts: dict[str, int] = {}
        for tok in tokenize(text):
            if tok in weights:
                counts[tok] = counts.get(tok, 0) + 1
        if not counts:
            return None
        scores = [0.0] * len(self._lexical_ids)
        for term, c in counts.items():
            value = (1.0 + math.log(c)) * self._idf[term]  # sublinear tf · idf
            for j, w in weights[term]:
                scores[j] += value * w
        best = max(range(len(scores)), key=scores.__getitem__)
        return self._lexical_ids[best] if scores[best] > 0 else None


def current_assigner(tx: Tx) -> ThemeAssigner | None:
    """An assigner over the active (not retired) themes, for cheap assignment at ingest;
    None when there are none, or when they are embedding themes (assigned by the batch job,
    which loads the model)."""
    rows = tx.fetchall(
        "SELECT theme_id, model, CAST(model_data AS VARCHAR) FROM text_themes "
        "WHERE retired_at IS NULL ORDER BY theme_id"
    )
    if not rows or any(r[1] != "tfidf-nmf" for r in rows):
        return None
    import orjson

    return ThemeAssigner([(r[0], r[1], orjson.loads(r[2] or "{}")) for r in rows])
