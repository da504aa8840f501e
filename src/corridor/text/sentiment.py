"""Default sentiment: a VADER-style lexicon scorer with negation, intensifiers and contrast.

No model download: the valences are the VADER lexicon (7,500 words, emoticons and slang rated
−4…+4 by ten human raters, shipped inside the ``vaderSentiment`` package, MIT licence) plus
Corridor's customer-experience additions (:data:`CX_LEXICON`: words like *late*, *refund*,
*overcharged*, *on time* that VADER leaves neutral). The rules are those of Hutto & Gilbert
(2014), re-implemented for speed and with four of the original's slips fixed:

1. *Contrast*: VADER halves the words before "but" and boosts those after it by 1.5, but finds
   each word's position by its *value* (``list.index``), so equal valences before and after
   "but" are weighted wrongly; here positions are positions.
2. *"this"/"so" three words back*: an operator-precedence slip multiplies any valence by 1.25
   when the word before it is "so" or "this"; here only "never so/this …" amplifies, as the
   paper describes.
3. *Punctuation*: a token keeps trailing punctuation when it is two letters or fewer ("ok,",
   "no."), so it is missed in the lexicon; here the stripped form is looked up when the raw
   token (an emoticon such as ``:)``) is not in it.
4. *Contractions without apostrophes* ("dont", "isnt" are in VADER's negation list, "wouldnt"
   too, but "didn" / "doesn" of tokenised text are not): every ``n't`` form and its
   apostrophe-less spelling negates.

Everything else follows VADER: boosters and dampeners up to three words back (scaled 1, 0.95,
0.9), negation up to three words back (×−0.74), ALL-CAPS emphasis (+0.733) when some but not
all words are capitalised, "least" negation, up to four "!" (+0.292 each) and 2–3+ "?",
emoji replaced by their descriptions, and the sum squashed to −1…+1 by ``x / √(x² + 15)``.

The score is the *compound* score (−1…+1). Labels use VADER's published thresholds:
``positive`` when ``score ≥ 0.05``, ``negative`` when ``score ≤ −0.05``, else ``neutral``.

Reference: Hutto, C. J. & Gilbert, E. (2014), "VADER: A Parsimonious Rule-based Model for
Sentiment Analysis of Social Media Text", *Proc. ICWSM-14*, 216–225.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources

import numpy as np

__all__ = [
    "CX_LEXICON",
    "MODEL",
    "NEGATIVE_AT",
    "POSITIVE_AT",
    "LexiconSentiment",
    "label",
    "labels",
    "score",
    "scores",
]

#: name and version stored with every score this model makes
MODEL = "lexicon-1"
#: VADER's published label thresholds on the compound score
POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05

B_INCR = 0.293
B_DECR = -0.293
C_INCR = 0.733
N_SCALAR = -0.74
ALPHA = 15.0


def _words(text: str) -> list[str]:
    return text.split()


NEGATE = frozenset(
    _words(
        """aint arent cannot cant couldnt darent didnt doesnt ain't aren't can't couldn't daren't
    didn't doesn't dont hadnt hasnt havent isnt mightnt mustnt neither don't hadn't hasn't
    haven't isn't mightn't mustn't neednt needn't never none nope nor not nothing nowhere
    oughtnt shant shouldnt uhuh wasnt werent oughtn't shan't shouldn't uh-uh wasn't weren't
    without wont wouldnt won't wouldn't rarely seldom despite didn doesn isn wasn weren hasn
    haven hadn couldn wouldn shouldn"""
    )
)

_UP = {
    w: B_INCR
    for w in _words(
        """absolutely amazingly awfully completely considerable considerably decidedly deeply
    effing enormous enormously entirely especially exceptional exceptionally extreme extremely
    fabulously flipping flippin frackin fracking fricking frickin frigging friggin fully fuckin
    fucking fuggin fugging greatly hella highly hugely incredible incredibly intensely major
    majorly more most particularly purely quite really remarkably so substantially thoroughly
    total totally tremendous tremendously uber unbelievably unusually utter utterly very"""
    )
}
_DOWN = {
    w: B_DECR
    for w in _words(
        """almost barely hardly kinda kindof kind-of less little marginal marginally
    occasional occasionally partly scarce scarcely slight slightly somewhat sorta sortof
    sort-of"""
    )
}
BOOSTERS: dict[str, float] = {**_UP, **_DOWN, "just enough": B_DECR, "kind of": B_DECR,
                              "sort of": B_DECR}  # fmt: skip

SPECIAL_CASES = {
    "the shit": 3.0, "the bomb": 3.0, "bad ass": 1.5, "badass": 1.5, "bus stop": 0.0,
    "yeah right": -2.0, "kiss of death": -1.5, "to die for": 3.0, "beating heart": 3.5,
}  # fmt: skip

#: Customer-experience words VADER rates neutral or misses, rated on VADER's −4…+4 scale by
#: analogy with VADER entries of similar strength (e.g. "late" ≈ "delay" −1.3).
CX_LEXICON: dict[str, float] = {
    "late": -1.3, "delays": -1.3, "delaying": -1.3,
    "refunded": 0.6, "reimbursed": 0.8, "overcharged": -2.2,
    "overcharge": -2.0, "overbilled": -2.2, "double-charged": -2.2, "scam": -2.6,
    "ripoff": -2.4, "rip-off": -2.4, "waited": -0.9,
    "queue": -0.5, "slow": -1.2, "slower": -1.2, "sluggish": -1.3,
    "fast": 1.2, "faster": 1.0, "quickly": 1.1, "prompt": 1.3,
    "promptly": 1.3, "speedy": 1.4, "seamless": 1.9, "smooth": 1.4, "smoothly": 1.4,
    "effortless": 1.8, "hassle": -1.4, "hassle-free": 1.7, "unhelpful": -1.8,
    "unresponsive": -1.7, "ignored": -1.6, "dismissive": -1.8, "incompetent": -2.3,
    "clueless": -1.6, "knowledgeable": 1.7, "courteous": 1.9, "polite": 1.6,
    "attentive": 1.6, "professional": 1.4, "reliable": 1.6,
    "unreliable": -1.7, "faulty": -1.8, "defective": -1.9, "dented": -1.3,
    "scratched": -1.2, "crashed": -1.7, "crashes": -1.7, "glitch": -1.3, "glitches": -1.3,
    "buggy": -1.5, "freezes": -1.3, "confusing": -1.3, "unclear": -1.0, "misleading": -2.0,
    "overpriced": -1.6, "pricey": -0.8, "affordable": 1.3, "bargain": 1.4,
    "cancelled": -1.0, "canceled": -1.0, "lost": -1.3, "stranded": -1.7,
    "escalate": -0.9, "escalated": -1.0, "complaint": -1.6, "complaints": -1.6,
    "resolved": 1.3, "sorted": 1.0, "recommend": 1.5, "recommended": 1.5,
    "on-time": 1.2, "punctual": 1.5, "understaffed": -1.4, "out-of-stock": -1.2,
    "stockout": -1.2, "unavailable": -0.9, "downtime": -1.1, "outage": -1.6,
    "avoid": -1.4, "thanks": 1.9, "thx": 1.5, "nightmare": -2.7,
}  # fmt: skip

_PUNCT = string.punctuation
_CLAUSE_END = frozenset(",.;:!?")
_ELONGATED = re.compile(r"(\w)\1{2,}")
_ELONGATED_ANYCASE = re.compile(r"(\w)\1{2,}", re.IGNORECASE)


@lru_cache(maxsize=1)
def _vader_files() -> tuple[dict[str, float], dict[str, str]]:
    pkg = resources.files("vaderSentiment")
    lexicon: dict[str, float] = {}
    for line in pkg.joinpath("vader_lexicon.txt").read_text(encoding="utf-8").splitlines():
        if line:
            word, value = line.split("\t")[:2]
            lexicon[word] = float(value)
    emoji: dict[str, str] = {}
    for line in pkg.joinpath("emoji_utf8_lexicon.txt").read_text(encoding="utf-8").splitlines():
        if line:
            ch, description = line.split("\t")[:2]
            emoji[ch] = description
    return lexicon, emoji


class LexiconSentiment:
    """The default scorer. ``extra`` valences are merged over VADER's and :data:`CX_LEXICON`;
    ``cx=False`` scores with VADER's lexicon alone (for comparisons)."""

    name = MODEL
    #: the improvements over VADER, switchable for the ablation in
    #: ``benchmarks/sentiment_validation.py``: look tokens up without trailing punctuation,
    #: end negation at clause punctuation, read elongated words ("goooood")
    strip_lookup = False
    clause_scope = True
    elongation = True

    def __init__(self, extra: dict[str, float] | None = None, *, cx: bool = True) -> None:
        vader, self.emoji = _vader_files()
        self.lexicon = dict(vader)
        if cx:  # additions only: VADER's own ratings are never overridden
            self.lexicon.update({k: v for k, v in CX_LEXICON.items() if k not in vader})
        if extra:
            self.lexicon.update({k.lower(): float(v) for k, v in extra.items()})
        self._emoji_chars = frozenset(self.emoji)

    # -- tokens ----------------------------------------------------------------------------
    def _demoji(self, text: str) -> str:
        if text.isascii():
            return text
        chars = self._emoji_chars
        if not any(c in chars for c in text):
            return text
        out: list[str] = []
        prev_space = True
        for ch in text:
            if ch in chars:
                if not prev_space:
                    out.append(" ")
                out.append(self.emoji[ch])
                prev_space = False
            else:
                out.append(ch)
                prev_space = ch == " "
        return "".join(out).strip()

    def _tokens(self, text: str) -> tuple[list[str], list[str], list[int], set[int]]:
        """Raw tokens (VADER's: punctuation stripped unless that leaves ≤ 2 characters), the
        keys to look them up by (lower-case; punctuation stripped when the raw form is not
        itself an entry, e.g. an emoticon; elongations like "goooood" shortened when that finds
        an entry), for each token the index where its clause starts (after the last token
        ending in ``, . ; : ! ?``), and the indices of elongated tokens."""
        lex = self.lexicon
        raw: list[str] = []
        keys: list[str] = []
        starts: list[int] = []
        long: set[int] = set()
        start = 0
        # one search over the whole text decides whether any token needs the per-token check
        elongated = self.elongation and _ELONGATED_ANYCASE.search(text) is not None
        strip_lookup = self.strip_lookup
        clause_scope = self.clause_scope
        for i, tok in enumerate(text.split()):
            stripped = tok.strip(_PUNCT)
            word = tok if len(stripped) <= 2 else stripped
            raw.append(word)
            low = word.lower()
            if low not in lex:
                if strip_lookup and stripped and stripped != word:
                    low = stripped.lower()
                if elongated and low not in lex and _ELONGATED.search(low):
                    for short in (_ELONGATED.sub(r"\1\1", low), _ELONGATED.sub(r"\1", low)):
                        if short in lex:
                            low = short
                            long.add(i)
                            break
            keys.append(low)
            starts.append(start)
            if clause_scope and tok[-1] in _CLAUSE_END and len(tok) > 1:
                start = i + 1
        return raw, keys, starts, long

    # -- scoring ---------------------------------------------------------------------------
    def valence(self, text: str) -> float:
        """The unnormalised sum of valences (after punctuation emphasis)."""
        text = self._demoji(text)
        raw, low, starts, long = self._tokens(text)
        n = len(raw)
        if n == 0:
            return 0.0
        lex = self.lexicon
        if not any(w in lex for w in low):
            return 0.0
        caps = sum(1 for w in raw if w.isupper())
        cap_diff = 0 < n - caps < n
        vals = [0.0] * n
        for i in range(n):
            w = low[i]
            if w in BOOSTERS or w not in lex:
                continue
            if w == "kind" and i + 1 < n and low[i + 1] == "of":
                continue
            v = self._word(i, w, raw, low, starts[i], cap_diff)
            if i in long:  # "soooo good": emphasis like a booster
                v += B_INCR if v > 0 else -B_INCR if v < 0 else 0.0
            vals[i] = v
        vals = _contrast(low, vals)
        total = sum(vals)
        if total:
            emphasis = _punctuation(text)
            total = total + emphasis if total > 0 else total - emphasis
        return total

    def _word(
        self, i: int, w: str, raw: list[str], low: list[str], start: int, cap_diff: bool
    ) -> float:
        """One lexicon word's valence in context; negators before ``start`` (an earlier
        clause) do not reach it."""
        lex = self.lexicon
        n = len(low)
        v = lex[w]
        if w == "no" and i + 1 < n and low[i + 1] in lex and raw[i][-1] not in _CLAUSE_END:
            v = 0.0
        if (
            (i - 1 >= start and low[i - 1] == "no")
            or (i - 2 >= start and low[i - 2] == "no")
            or (i - 3 >= start and low[i - 3] == "no" and low[i - 1] in ("or", "nor"))
        ):
            v = lex[w] * N_SCALAR
        if cap_diff and raw[i].isupper():
            v = v + C_INCR if v > 0 else v - C_INCR
        for back in range(3):
            j = i - back - 1
            if j < 0 or low[j] in lex:
                continue
            s = BOOSTERS.get(low[j], 0.0)
            if s:
                if v < 0:
                    s = -s
                if cap_diff and raw[j].isupper():
                    s = s + C_INCR if v > 0 else s - C_INCR
                s *= (1.0, 0.95, 0.9)[back]
                v += s
            v = _negation(v, low, back, i, start)
            if back == 2:
                v = _idioms(v, low, i)
        if i > 0 and low[i - 1] == "least" and (i == 1 or low[i - 2] not in ("at", "very")):
            v *= N_SCALAR
        return v

    def score(self, text: str) -> float:
        """Compound score of one text, −1…+1."""
        s = self.valence(text)
        return max(-1.0, min(1.0, s / math.sqrt(s * s + ALPHA))) if s else 0.0

    def scores(self, texts: Iterable[str | None]) -> np.ndarray:
        """Compound scores of many texts as float64; ``None`` gives NaN."""
        score = self.score
        return np.array([math.nan if t is None else score(t) for t in texts], dtype=float)


def _negated(word: str) -> bool:
    return word in NEGATE or "n't" in word


def _negation(v: float, low: Sequence[str], back: int, i: int, start: int = 0) -> float:
    """VADER's negation check for the word ``back + 1`` places before ``i`` (only within the
    clause that begins at ``start``)."""
    j = i - back - 1
    if back == 0:
        return v * N_SCALAR if j >= start and _negated(low[j]) else v
    if back == 1:
        if low[i - 2] == "never" and low[i - 1] in ("so", "this"):
            return v * 1.25
        if low[i - 2] == "without" and low[i - 1] == "doubt":
            return v
        return v * N_SCALAR if j >= start and _negated(low[j]) else v
    # VADER's precedence, kept on purpose: "so"/"this" right before a word amplifies it
    if (low[i - 3] == "never" and low[i - 2] in ("so", "this")) or low[i - 1] in ("so", "this"):
        return v * 1.25
    if low[i - 3] == "without" and "doubt" in (low[i - 2], low[i - 1]):
        return v
    return v * N_SCALAR if j >= start and _negated(low[j]) else v


def _idioms(v: float, low: Sequence[str], i: int) -> float:
    n = len(low)
    before = (
        f"{low[i - 1]} {low[i]}",
        f"{low[i - 2]} {low[i - 1]} {low[i]}",
        f"{low[i - 2]} {low[i - 1]}",
        f"{low[i - 3]} {low[i - 2]} {low[i - 1]}",
        f"{low[i - 3]} {low[i - 2]}",
    )
    for seq in before:
        if seq in SPECIAL_CASES:
            v = SPECIAL_CASES[seq]
            break
    if n - 1 > i and (seq := f"{low[i]} {low[i + 1]}") in SPECIAL_CASES:
        v = SPECIAL_CASES[seq]
    if n - 1 > i + 1 and (seq := f"{low[i]} {low[i + 1]} {low[i + 2]}") in SPECIAL_CASES:
        v = SPECIAL_CASES[seq]
    for seq in (before[3], before[4], before[2]):
        if seq in BOOSTERS:
            v += BOOSTERS[seq]
    return v


def _contrast(low: list[str], vals: list[float]) -> list[float]:
    """Words before the first "but" count half, words after it 1.5 times (by position)."""
    if "but" not in low:
        return vals
    b = low.index("but")
    return [v * 0.5 if k < b else v * 1.5 if k > b else v for k, v in enumerate(vals)]


def _punctuation(text: str) -> float:
    ep = min(text.count("!"), 4) * 0.292
    qm = text.count("?")
    return ep + (0.0 if qm <= 1 else qm * 0.18 if qm <= 3 else 0.96)


@lru_cache(maxsize=1)
def _default() -> LexiconSentiment:
    return LexiconSentiment()


def score(text: str) -> float:
    """Compound sentiment of one text with the default model, −1…+1."""
    return _default().score(text)


def scores(texts: Iterable[str | None]) -> np.ndarray:
    """Compound sentiment of many texts with the default model; ``None`` gives NaN."""
    return _default().scores(texts)


def label(value: float, positive_at: float = POSITIVE_AT, negative_at: float = NEGATIVE_AT) -> str:
    """``positive`` / ``negative`` / ``neutral`` for one compound score."""
    if value >= positive_at:
        return "positive"
    if value <= negative_at:
        return "negative"
    return "neutral"


def labels(
    values: np.ndarray, positive_at: float = POSITIVE_AT, negative_at: float = NEGATIVE_AT
) -> np.ndarray:
    """Vectorised :func:`label` (NaN gives ``None``)."""
    v = np.asarray(values, dtype=float)
    out = np.where(v >= positive_at, "positive", np.where(v <= negative_at, "negative", "neutral"))
    result = out.astype(object)
    result[np.isnan(v)] = None
    return result
