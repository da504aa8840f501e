"""Emotion facets and intent of customer texts: cue lexicons and a few ordered rules.

No model download and no third-party lexicon: the NRC Emotion Lexicon, the usual choice, is
free for research only, so Corridor ships its own small cue lists, written for customer
feedback (delivery, billing, support, stores, apps, partners) and checked on the development
half of ``tests/data/text/labelled.csv`` (the holdout half was written before these rules and
is only ever scored, never tuned on; ``docs/voice-of-customer.md`` has the figures).

Emotions (any number per text, :data:`EMOTIONS`)
    A facet is present when one of its cues occurs and no negator ("not", "never", "no",
    "n't", "without") stands in the three words before the cue within the same clause ("not
    happy" is not joy). Negative facets (anger, frustration, disappointment, worry) need a
    text that is not clearly positive (lexicon score < 0.5), positive ones (joy, trust) one
    that is not clearly negative (> −0.5); surprise goes either way.

Intent (one per text, :data:`INTENTS`)
    1. *question* — an interrogative sentence (ends in "?" or opens with an interrogative or
       auxiliary: how, what, can, is there …) or a reported one ("asked whether", "I was
       wondering"), unless the text is a complaint in question form (rhetorical: "?!", "you
       must be joking", "why do you keep", or clearly negative with anger or frustration cues);
    2. *suggestion* — a proposal ("it would be great if", "please add", "you should", "why
       not let", "consider", "wish there was"), unless the text is clearly negative (a
       complaint that ends with a request is a complaint);
    3. otherwise *complaint* or *praise* by polarity: the lexicon score, with sarcasm turned
       around (a positive opener such as "Great," / "Oh wonderful," / "Well done," before a
       negative event) and complaint cues ("still", "again", "nobody", "never received")
       breaking ties at zero.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from corridor.text.sentiment import LexiconSentiment

__all__ = ["EMOTIONS", "INTENTS", "Affect", "affect", "affect_many"]

INTENTS: tuple[str, ...] = ("complaint", "praise", "suggestion", "question")
EMOTIONS: tuple[str, ...] = (
    "anger",
    "frustration",
    "disappointment",
    "worry",
    "joy",
    "trust",
    "surprise",
)
NEGATIVE_FACETS = frozenset({"anger", "frustration", "disappointment", "worry"})
POSITIVE_FACETS = frozenset({"joy", "trust"})

# cue patterns; a trailing * matches any word ending ("disappoint*")
_CUES: dict[str, tuple[str, ...]] = {
    "anger": (
        "angry", "furious", "fuming", "livid", "outrage*", "disgust*", "disgrace*",
        "unacceptable", "ridiculous", "shame*", "appalling", "scam", "rip-off", "ripoff",
        "a joke", "worst", "rude", "rudely", "how dare", "insult*", "lied", "liars",
        "never again", "avoid this", "fix it now", "thief", "refuses", "refused to",
        "damaged my", "thanks for nothing", "hung up", "denied it", "must be joking",
        "seriously?", "deliberately",
    ),
    "frustration": (
        "frustrat*", "annoy*", "again", "still", "keeps", "keep getting", "kept me waiting",
        "waited", "waiting", "on hold", "forever", "every time", "nobody", "no one",
        "in circles", "for nothing", "useless", "ugh", "hopeless", "third time",
        "four different", "not that hard", "terrible", "chase", "froze", "crashes",
        "keeps failing", "took forever", "took two weeks", "goes down", "for three days",
        "lost my", "giving up", "excuses", "seriously?", "no call", "did not work", "closed",
        "only one", "another delay", "not fixed", "twice", "queue*",
    ),
    "disappointment": (
        "disappoint*", "let down", "expected", "not what", "shame", "not worth", "meh",
        "not impressed", "promised", "nothing like", "sadly", "unfortunately", "wrong",
        "not happy", "empty-handed", "sold out", "never saw", "did not have", "no idea",
        "broken", "dented", "missing", "went up", "stopped working", "came apart",
        "without a charger", "expected more", "cannot find",
    ),
    "worry": (
        "worr*", "concern*", "anxious", "afraid", "scared", "nervous", "fear*", "unsafe",
        "safe?", "hacked", "please help", "credit score", "only have", "not heard",
    ),
    "joy": (
        "happy", "love", "loved", "lovely", "delight*", "fantastic", "brilliant",
        "excellent", "amazing", "wonderful", "great", "made my day", "thank you so much",
        "gorgeous", "best", "perfect*", "super", "pleased", "smiled", "five stars",
        "nice touch", "sweet", "well done", "impressive", "recommend", "worth every penny",
        "wow", "not bad", "better than i expected", "can't fault", "no complaints",
        "no fuss", "easy", "convenient", "thanked",
    ),
    "trust": (
        "reliable", "dependable", "always", "never had a problem", "reassur*", "relieved",
        "confident", "peace of mind", "promise", "honest", "fair", "professional",
        "knowledgeable", "trust*", "appreciated", "sorted", "apologis*", "apology",
        "that is why", "coming back", "kept every", "called me back", "in advance",
        "as promised", "without any questions", "aftercare", "no dropped", "solid",
        "accurate", "patient", "polite", "explained everything", "answered all",
        "within an hour",
    ),
    "surprise": (
        "surpris*", "unexpected*", "did not expect", "didn't expect", "wow", "shock*",
        "can't believe", "could not believe", "unbelievable", "must be joking", "?!",
    ),
}  # fmt: skip

_NEGATORS = frozenset(
    ["not", "never", "no", "without", "nothing", "nobody", "cannot", "hardly", "nor"]
)


def _pattern(cue: str) -> str:
    body = re.escape(cue.rstrip("*"))
    if cue.endswith("*"):
        return body + r"\w*"
    return body + (r"(?![\w])" if cue[-1].isalnum() else "")


# every cue of every facet in one pattern (one pass per text); a match is mapped back to its
# facets by the cue text, or, for stems ("disappoint*"), by the longest stem it starts with
_CUE_RE = re.compile(
    r"(?<![\w])(?:"
    + "|".join(
        _pattern(c) for c in sorted({c for cs in _CUES.values() for c in cs}, key=len, reverse=True)
    )
    + ")"
)
_EXACT: dict[str, set[str]] = {}
_STEMS: dict[str, set[str]] = {}
for _emo, _cues in _CUES.items():
    for _c in _cues:
        (_STEMS if _c.endswith("*") else _EXACT).setdefault(_c.rstrip("*"), set()).add(_emo)
_STEM_KEYS = sorted(_STEMS, key=len, reverse=True)


def _facets_of(match: str) -> set[str]:
    found = _EXACT.get(match)
    if found is not None:
        return found
    for stem in _STEM_KEYS:
        if match.startswith(stem):
            return _STEMS[stem]
    return set()


_WH = (
    r"how|what|when|where|who|whom|which|why|can|could|do|does|did|is|are|was|were|will|"
    r"would|has|have|should|shall|may|any idea|quick question"
)
_QUESTION_START = re.compile(rf"^(?:@\w+\s+)*(?:{_WH})\b", re.IGNORECASE)
_REPORTED_QUESTION = re.compile(
    r"\b(?:asked (?:whether|if|how|what|when|where|about|for)|i was wondering|"
    r"i would like to know|i'd like to know|wondering (?:if|whether)|quick question|"
    r"could you (?:tell|confirm|please confirm|let me know))\b",
    re.IGNORECASE,
)
_RHETORICAL = re.compile(
    r"\?!|!\?|must be joking|seriously\?|why do you keep|why does every|how hard|"
    r"how difficult|are you kidding|why can't you|why can you not",
    re.IGNORECASE,
)
_SUGGESTION = re.compile(
    r"\b(?:it )?would (?:be )?(?:nice|great|good|useful|better|helpful|easier|love)\b|"
    r"\bwould (?:help|make|really help)\b|\bit would help\b|\bthat would be\b|"
    r"\b(?:you|they|partners|partner shops|your partners) (?:could|should|might)\b(?! be ashamed)|"
    r"\b(?:please|pls) (?:add|let|keep|send|include|show|put|make|offer|consider|give|allow"
    r"|provide|update|stop)\b|\bconsider(?:ing)? (?:adding|a|an|offering|making)\b|"
    r"\bi (?:suggest|recommend that|think you should|would suggest)\b|\bsuggest(?:ed|s)\b|"
    r"\bwhy not\b|\bi wish\b|\bwish there (?:was|were)\b|\bone idea\b|\bidea:|"
    r"\bmaybe (?:add|offer|you could|let|consider)\b|\boption to\b|\bneeds an?\b|"
    r"\blet (?:customers|me|us|people)\b|\bshould (?:be|have) (?:trained|the same|an?)\b|"
    r"\bput (?:more|the)\b|\b(?:should|could) (?:show|offer|have|send|add|include|"
    r"be able)\b|\badd (?:a|an|customer|more)\b|\bwould make\b",
    re.IGNORECASE,
)
#: words one of which every _SUGGESTION match contains (a cheap pre-check)
_SUGGESTION_HINTS = (
    "would", "could", "should", "might", "please", "pls", "consider", "suggest",
    "recommend that", "why not", "wish", "idea", "maybe", "option to", "need", "let ", "put ",
    "add ",
)  # fmt: skip
_WHY_NOT = re.compile(r"\bwhy not\b", re.IGNORECASE)
_COMPLAINT_CUES = re.compile(
    r"\b(?:still|again|nobody|no one|never (?:received|came|arrived|saw|got)|not (?:received|"
    r"arrived|working|fixed)|missing|late|overcharged|charged|waited|lost|broken|wrong)\b",
    re.IGNORECASE,
)
_SARCASM = re.compile(
    r"^(?:oh )?(?:great|brilliant|wonderful|fantastic|perfect|lovely|well done|thanks|"
    r"thank you|just great|oh joy)\s*[,.!]",
    re.IGNORECASE,
)
_STARS = re.compile(r"\b(?:(one|1|two|2|three|3)|(four|4|five|5))[ -]stars?\b", re.IGNORECASE)
_COULD_NOT_BE = re.compile(
    r"\b(?:could not|couldn't|can't|cannot) be (?:(happier|better|more (?:pleased|satisfied|"
    r"happy|grateful))|(worse|more (?:annoyed|angry|disappointed|frustrated|upset)))\b",
    re.IGNORECASE,
)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_CLAUSE = re.compile(r"[,.;:!?]")


@dataclass(frozen=True, slots=True)
class Affect:
    """The intent and emotion facets of one text, with the polarity the rules used."""

    intent: str
    emotions: tuple[str, ...]
    polarity: float


class AffectModel:
    """Cue lexicons and rules (module notes); ``sentiment`` scores polarity."""

    def __init__(self, sentiment: LexiconSentiment | None = None) -> None:
        self.sentiment = sentiment or LexiconSentiment()

    def emotions(self, text: str, polarity: float) -> tuple[str, ...]:
        low = text.lower()
        found: set[str] = set()
        for m in _CUE_RE.finditer(low):
            facets = _facets_of(m.group()) - found
            if not facets:
                continue
            if polarity >= 0.5:
                facets -= NEGATIVE_FACETS
            if polarity <= -0.25:
                facets -= POSITIVE_FACETS
            if facets and not _negated_before(low, m.start()):
                found |= facets
        if polarity < 0.5 and ("?!" in text or "!?" in text):
            found.add("surprise")
        return tuple(e for e in EMOTIONS if e in found)

    def polarity(self, text: str, score: float | None = None) -> float:
        """The lexicon score, turned around for sarcasm ("Great, another delay.")."""
        s = self.sentiment.score(text) if score is None else score
        stars = _STARS.search(text)
        if stars:  # a star rating says it outright
            return min(s, -0.4) if stars.group(1) else max(s, 0.5)
        idiom = _COULD_NOT_BE.search(text)
        if idiom:  # "could not be happier": VADER negates the comparative
            return max(-s, 0.6) if idiom.group(1) else min(-abs(s), -0.6)
        m = _SARCASM.match(text.strip())
        if m:
            rest = text.strip()[m.end() :]
            rest_score = self.sentiment.score(rest)
            if rest_score < 0 or _COMPLAINT_CUES.search(rest):
                return min(rest_score, -0.3)
        return s

    def intent(self, text: str, polarity: float, emotions: Sequence[str]) -> str:
        stripped = text.strip()
        angry = "anger" in emotions or "frustration" in emotions
        sentences = [s for s in _SENTENCES.split(stripped) if s]
        interrogative = any(
            s.rstrip().endswith("?") or (_QUESTION_START.match(s) and not s.endswith("."))
            for s in sentences
        ) or bool(_REPORTED_QUESTION.search(stripped))
        rhetorical = bool(_RHETORICAL.search(stripped))
        low = stripped.lower()
        suggests = (
            any(h in low for h in _SUGGESTION_HINTS)
            and bool(_SUGGESTION.search(stripped))
            and not rhetorical
        )
        if suggests and _WHY_NOT.search(stripped):
            return "suggestion"
        statements = [s for s in sentences if not s.rstrip().endswith("?")]
        reports_problem = bool(_COMPLAINT_CUES.search(stripped)) and any(
            _COMPLAINT_CUES.search(s) for s in statements
        )
        if interrogative and not rhetorical and not (polarity <= -0.4 and angry):
            return "complaint" if reports_problem and len(statements) else "question"
        if suggests and polarity > -0.5 and "anger" not in emotions:
            return "suggestion"
        negative_facets = any(e in NEGATIVE_FACETS for e in emotions)
        positive_facets = any(e in POSITIVE_FACETS for e in emotions)
        if 0 < polarity < 0.5 and negative_facets and not positive_facets:
            return "complaint"  # the facets outweigh a weakly positive lexicon score
        if polarity > 0:
            return "praise"
        if polarity < 0:
            return "complaint"
        if _COMPLAINT_CUES.search(stripped) or interrogative:
            return "complaint"
        return "praise" if any(e in POSITIVE_FACETS for e in emotions) else "complaint"

    def analyse(self, text: str, score: float | None = None) -> Affect:
        pol = self.polarity(text, score)
        emos = self.emotions(text, pol)
        return Affect(self.intent(text, pol, emos), emos, pol)


def _negated_before(low: str, start: int) -> bool:
    """A negator among the three words before ``start``, in the same clause."""
    head = low[max(0, start - 40) : start]
    cut = max((m.end() for m in _CLAUSE.finditer(head)), default=0)
    words = head[cut:].split()[-3:]
    return any(w in _NEGATORS or w.endswith("n't") for w in words)


_DEFAULT: AffectModel | None = None


def _model() -> AffectModel:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = AffectModel()
    return _DEFAULT


def affect(text: str) -> Affect:
    """Intent and emotion facets of one text with the default rules."""
    return _model().analyse(text)


def affect_many(texts: Iterable[str], scores: Iterable[float] | None = None) -> list[Affect]:
    """:func:`affect` for many texts; ``scores``: their lexicon scores when known already."""
    model = _model()
    if scores is None:
        return [model.analyse(t) for t in texts]
    return [model.analyse(t, s) for t, s in zip(texts, scores, strict=True)]
