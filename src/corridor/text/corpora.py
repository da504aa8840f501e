"""The human-rated sentiment corpora of Hutto & Gilbert (2014), for validation only.

``scripts/validation-data`` extracts them from the ``vaderSentiment`` 3.3.2 source archive
(MIT licence) into ``.validation-data/vader/``: tab-separated ``id, mean rating, text`` files,
the mean of about 20 raters per text on −4 (extremely negative) … +4 (extremely positive).

=========== ======== ========================================================
corpus      texts    what
=========== ======== ========================================================
tweets       4,200   tweets
movies      10,605   movie-review snippets (Pang & Lee 2005)
amazon       3,708   Amazon product-review snippets
nyt          5,190   New York Times opinion-editorial snippets
=========== ======== ========================================================

Validation reports on ``tweets`` and ``movies`` (the corpora the issue names); ``amazon`` and
``nyt`` are the development set the default model's rules were checked on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from corridor.errors import CorridorError

FILES = {
    "tweets": "tweets_GroundTruth.txt",
    "movies": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}
ENV = "CORRIDOR_VALIDATION_DATA"

#: human mean rating at or beyond which a text is positive / negative (3-class labels)
RATING_POSITIVE_AT = 0.5
RATING_NEGATIVE_AT = -0.5


def corpus_dir(root: str | Path | None = None) -> Path:
    base = Path(root or os.environ.get(ENV) or ".validation-data")
    return base / "vader"


def available(root: str | Path | None = None) -> bool:
    d = corpus_dir(root)
    return all((d / f).is_file() for f in FILES.values())


def load(name: str, root: str | Path | None = None) -> pd.DataFrame:
    """One corpus as a frame ``id, rating, text``."""
    if name not in FILES:
        raise CorridorError(f"unknown corpus {name!r}; known: {', '.join(FILES)}")
    path = corpus_dir(root) / FILES[name]
    if not path.is_file():
        raise CorridorError(
            f"{path} is missing; run scripts/validation-data (it fetches the vaderSentiment "
            "source archive from PyPI) or set CORRIDOR_VALIDATION_DATA to its parent folder"
        )
    ids, ratings, texts = [], [], []
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        for line in f:
            parts = line.rstrip("\r\n").split("\t", 2)
            if len(parts) < 3:
                continue
            ids.append(parts[0])
            ratings.append(float(parts[1]))
            texts.append(parts[2])
    return pd.DataFrame({"id": ids, "rating": np.array(ratings), "text": texts})


def rating_labels(ratings: np.ndarray) -> np.ndarray:
    """3-class gold labels from mean human ratings (±0.5 on the −4…+4 scale)."""
    r = np.asarray(ratings, dtype=float)
    return np.where(
        r >= RATING_POSITIVE_AT,
        "positive",
        np.where(r <= RATING_NEGATIVE_AT, "negative", "neutral"),
    )
