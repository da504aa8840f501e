"""Sentiment validation on human-rated texts: Corridor's models against VADER and TextBlob.

    python benchmarks/sentiment_validation.py              # every model that is installed
    python benchmarks/sentiment_validation.py --train-head # also refit the shipped MiniLM head

Corpora (Hutto & Gilbert 2014; ``scripts/validation-data`` fetches them): ``tweets`` (4,200)
and ``movies`` (10,605 snippets) are reported; ``amazon`` and ``nyt`` were the development set
of the default model's rules and are shown for completeness. Gold: the mean of ~20 human
ratings per text (−4…+4); 3-class labels at ±0.5.

Per corpus and model: Pearson r between the model's score and the mean rating, and macro-F1 of
the 3-class labels (lexicon models and VADER: ±0.05 on the compound score, VADER's published
thresholds; TextBlob: ±0.05 on polarity; MiniLM head: ±0.125, the gold thresholds on its
rating/4 scale). ``ours − vader`` has a paired bootstrap 95 % interval (2,000 resamples).

MiniLM head (needs the ``text`` extra): a ridge regression on the 384-d embeddings plus two
lexicon features (:func:`corridor.text.embed.features`), corpora weighted equally. Its
figures are 10-fold cross-validated over the four corpora pooled (folds stratified by corpus;
the ridge penalty chosen inside each training fold): every text is scored by a head that never
saw it. ``--train-head`` then fits one head on all texts and writes
``src/corridor/text/data/minilm_head.json`` (the shipped coefficients).

The last line starts with ``RESULT``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
from scipy.stats import pearsonr
from sklearn.metrics import f1_score

from corridor.text import corpora
from corridor.text import sentiment as lex

REPORTED = ("tweets", "movies")
ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
HEAD_PATH = Path(__file__).resolve().parents[1] / "src/corridor/text/data/minilm_head.json"


def figures(scores: np.ndarray, ratings: np.ndarray, pos: float, neg: float) -> tuple[float, float]:
    gold = corpora.rating_labels(ratings)
    pred = lex.labels(scores, pos, neg)
    return float(pearsonr(scores, ratings)[0]), float(f1_score(gold, pred, average="macro"))


def bootstrap_diff(
    a: np.ndarray, b: np.ndarray, ratings: np.ndarray, n: int = 2000, seed: int = 1
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Paired bootstrap 95 % intervals of r(a) − r(b) and F1(a) − F1(b) (±0.05 labels)."""
    rng = np.random.default_rng(seed)
    gold = corpora.rating_labels(ratings)
    la, lb = lex.labels(a), lex.labels(b)
    dr, df = [], []
    m = len(ratings)
    for _ in range(n):
        i = rng.integers(0, m, m)
        dr.append(np.corrcoef(a[i], ratings[i])[0, 1] - np.corrcoef(b[i], ratings[i])[0, 1])
        df.append(
            f1_score(gold[i], la[i], average="macro") - f1_score(gold[i], lb[i], average="macro")
        )
    q = (2.5, 97.5)
    return tuple(np.percentile(dr, q)), tuple(np.percentile(df, q))  # type: ignore[return-value]


def embeddings(texts: list[str], name: str) -> np.ndarray:
    cache = corpora.corpus_dir() / f"minilm_{name}.npy"
    if cache.is_file():
        emb = np.load(cache)
        if len(emb) == len(texts):
            return emb
    from corridor.text import embed

    emb = embed.encode(texts)
    np.save(cache, emb)
    return emb


def balanced(groups: np.ndarray) -> np.ndarray:
    """Sample weights that give every corpus the same total weight."""
    names, counts = np.unique(groups, return_counts=True)
    size = dict(zip(names, counts, strict=True))
    w = np.array([1.0 / size[g] for g in groups])
    return w / w.mean()


def ridge_cv(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 10) -> np.ndarray:
    """Out-of-fold predictions; folds stratified by corpus, alpha chosen inside each fold."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import StratifiedKFold

    pred = np.zeros(len(y))
    w = balanced(groups)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, groups):
        model = RidgeCV(alphas=ALPHAS).fit(x[train], y[train], sample_weight=w[train])
        pred[test] = model.predict(x[test])
    return pred


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--train-head", action="store_true", help="refit and write the MiniLM head")
    ap.add_argument("--no-minilm", action="store_true", help="skip the MiniLM head")
    ap.add_argument("--bootstrap", type=int, default=2000)
    args = ap.parse_args()

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    models: dict[str, Callable[[list[str]], np.ndarray]] = {
        "ours": lambda ts: lex.scores(ts),
        "vader": lambda ts: np.array([vader.polarity_scores(t)["compound"] for t in ts]),
    }
    try:
        from textblob import TextBlob

        models["textblob"] = lambda ts: np.array([TextBlob(t).sentiment.polarity for t in ts])
    except ImportError:
        print("textblob not installed (validation extra); skipped")
    data = {name: corpora.load(name) for name in corpora.FILES}
    results: dict[str, float] = {}
    scores: dict[tuple[str, str], np.ndarray] = {}
    print(f"{'corpus':8} {'model':9} {'n':>6} {'pearson_r':>10} {'f1_macro':>9}")
    for cname, df in data.items():
        texts, ratings = df["text"].tolist(), df["rating"].to_numpy()
        for mname, fn in models.items():
            s = fn(texts)
            scores[(cname, mname)] = s
            r, f1 = figures(s, ratings, lex.POSITIVE_AT, lex.NEGATIVE_AT)
            print(f"{cname:8} {mname:9} {len(df):>6} {r:>10.4f} {f1:>9.4f}")
            if cname in REPORTED:
                results[f"{cname}_{mname}_r"], results[f"{cname}_{mname}_f1"] = r, f1
    for cname in REPORTED:
        ratings = data[cname]["rating"].to_numpy()
        (rl, rh), (fl, fh) = bootstrap_diff(
            scores[(cname, "ours")], scores[(cname, "vader")], ratings, args.bootstrap
        )
        print(f"{cname}: ours − vader: r [{rl:+.4f}, {rh:+.4f}], F1 [{fl:+.4f}, {fh:+.4f}] (95 %)")
    from corridor.text import embed

    if not args.no_minilm and embed.available():
        names = list(data)
        x = np.vstack(
            [
                embed.features(embeddings(data[c]["text"].tolist(), c), data[c]["text"].tolist())
                for c in names
            ]
        )
        y = np.concatenate([data[c]["rating"].to_numpy() for c in names])
        groups = np.concatenate([[c] * len(data[c]) for c in names])
        pred = ridge_cv(x, y, groups)
        for c in names:
            m = groups == c
            r, f1 = figures(np.clip(pred[m] / 4, -1, 1), y[m], embed.POSITIVE_AT, embed.NEGATIVE_AT)
            print(f"{c:8} {'minilm':9} {int(m.sum()):>6} {r:>10.4f} {f1:>9.4f}  (10-fold CV)")
            if c in REPORTED:
                results[f"{c}_minilm_r"], results[f"{c}_minilm_f1"] = r, f1
        if args.train_head:
            from sklearn.linear_model import RidgeCV

            head = RidgeCV(alphas=ALPHAS).fit(x, y, sample_weight=balanced(groups))
            doc = {
                "model": "all-MiniLM-L6-v2 + ridge head",
                "trained_on": "Hutto & Gilbert (2014) tweets, movie, Amazon, NYT snippets",
                "alpha": float(head.alpha_),
                "intercept": float(head.intercept_),
                "coef": [round(float(c), 7) for c in head.coef_],
            }
            HEAD_PATH.write_bytes(orjson.dumps(doc))
            print(f"wrote {HEAD_PATH} (alpha {head.alpha_})")
    elif not args.no_minilm:
        print("minilm: the 'text' extra is not installed; skipped")
    print("RESULT " + " ".join(f"{k}={v:.4f}" for k, v in results.items()), flush=True)


if __name__ == "__main__":
    main()
