"""The survey model: a definition once read and validated (:mod:`corridor.surveys.definition`
reads one), its questions, skip logic and translations. Pure: nothing here touches the store."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import orjson

#: a language code: ISO 639 letters, optionally a region or script (en, de, pt-br, zh-hant)
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")

#: contract feedback fields a question may be bound to: (lowest, highest) answer
SCALES: dict[str, tuple[int, int]] = {
    "expectation": (0, 10),
    "experience": (0, 10),
    "nps": (0, 10),
    "csat": (1, 5),
    "ces": (1, 7),
    "emotion": (-3, 3),
    # share of wallet (kept as feedback attributes, read by the wallet analysis)
    "brand_rank": (1, 10),
    "brands_used": (1, 10),
}
BOUND_FIELDS = (*SCALES, "text")
#: bound fields stored as attributes rather than columns of the feedback table
ATTRIBUTE_FIELDS = frozenset({"brand_rank", "brands_used"})
CUSTOM_TYPES = ("choice", "scale", "text")
#: attributes every survey feedback record carries; a custom question may not use these names
RESERVED_ATTRIBUTES = frozenset(
    {
        "survey_id",
        "survey_version",
        "survey_response",
        "survey_language",
        "survey_channel",
        "survey_partial",
        # the record's own container of attributes: a question named so would be dropped
        "attributes",
    }
)
DEFAULT_TEXT_LENGTH = 2000


def match_language(wanted: str | None, offered: Sequence[str]) -> str | None:
    """The language of ``offered`` that stands for ``wanted``: itself, else its base language
    (de for de-ch), else a regional form of it (pt-br for pt); None when none does."""
    if not wanted:
        return None
    wanted = wanted.lower()
    if wanted in offered:
        return wanted
    base = wanted.split("-")[0]
    if base in offered:
        return base
    return next((o for o in offered if o.split("-")[0] == base), None)


def words(texts: dict[str, str], language: str, fallback: str) -> str:
    """``texts`` in ``language``, else in ``fallback``."""
    return texts.get(language) or texts.get(fallback) or ""


@dataclass(frozen=True)
class Choice:
    value: str
    label: dict[str, str]


@dataclass(frozen=True)
class Condition:
    """Ask the question only when the answer to ``question`` meets this."""

    question: str
    below: float | None = None
    above: float | None = None
    equals: str | float | None = None
    among: tuple[str, ...] = ()

    def holds(self, answer: Any) -> bool:
        if answer is None or answer == "":
            return False
        if self.below is not None or self.above is not None:
            try:
                x = float(answer)
            except (TypeError, ValueError):
                return False
            if self.below is not None and not x < self.below:
                return False
            return self.above is None or x > self.above
        if self.among:
            return str(answer) in self.among
        if isinstance(self.equals, float):
            try:
                return float(answer) == self.equals
            except (TypeError, ValueError):
                return False
        return str(answer) == str(self.equals)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"question": self.question}
        for name in ("below", "above", "equals"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.among:
            out["in"] = list(self.among)
        return out


@dataclass(frozen=True)
class Question:
    id: str
    #: scale, choice or text
    type: str
    text: dict[str, str]
    page: int = 1
    #: the feedback field it fills (None: a custom question, kept as ``attribute``)
    field: str | None = None
    attribute: str | None = None
    required: bool = False
    help: dict[str, str] = dc_field(default_factory=dict)
    low: int = 0
    high: int = 10
    low_label: dict[str, str] | None = None
    high_label: dict[str, str] | None = None
    choices: tuple[Choice, ...] = ()
    max_length: int = DEFAULT_TEXT_LENGTH
    show_if: Condition | None = None

    @property
    def target(self) -> str:
        """Where the answer goes in the feedback record: a column, or an attribute's name."""
        return self.field or self.attribute or self.id

    @property
    def is_column(self) -> bool:
        return self.field is not None and self.field not in ATTRIBUTE_FIELDS


@dataclass(frozen=True)
class Survey:
    id: str
    title: dict[str, str]
    touchpoints: tuple[str, ...]
    languages: tuple[str, ...]
    fallback_language: str
    questions: tuple[Question, ...]
    intro: dict[str, str] = dc_field(default_factory=dict)
    thanks: dict[str, str] = dc_field(default_factory=dict)
    #: how long a personal link stays valid unless its maker says otherwise
    link_days: int = 30
    #: a response left with answers for this many days is sent as it is (None: never)
    partial_after_days: int | None = None
    #: the definition as read (normalised), kept with the version
    document: dict[str, Any] = dc_field(default_factory=dict, compare=False)

    @property
    def pages(self) -> int:
        return max(q.page for q in self.questions)

    def on_page(self, page: int) -> list[Question]:
        return [q for q in self.questions if q.page == page]

    def question(self, qid: str) -> Question | None:
        return next((q for q in self.questions if q.id == qid), None)

    def shown(self, q: Question, answers: dict[str, Any]) -> bool:
        """Whether ``q`` is asked, given the answers so far (skip logic): its condition holds,
        and the question the condition reads is asked itself (an answer to a question skipped
        since, left from before, shows nothing)."""
        seen: set[str] = set()
        while q.show_if is not None and q.id not in seen:  # (a condition reads an earlier one)
            seen.add(q.id)
            if not q.show_if.holds(answers.get(q.show_if.question)):
                return False
            read = self.question(q.show_if.question)
            if read is None:
                return True
            q = read
        return True

    def visible_pages(self, answers: dict[str, Any]) -> list[int]:
        """The pages with at least one question asked, in order."""
        return [
            p
            for p in range(1, self.pages + 1)
            if any(self.shown(q, answers) for q in self.on_page(p))
        ]

    def language(self, wanted: str | None) -> str | None:
        """``wanted`` if the survey speaks it (see :func:`match_language`), else None."""
        return match_language(wanted, self.languages)

    def t(self, texts: dict[str, str] | None, language: str) -> str:
        return words(texts or {}, language, self.fallback_language)

    @property
    def digest(self) -> str:
        """What identifies the content: loading the same definition again makes no new
        version."""
        return hashlib.sha256(orjson.dumps(self.document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def to_document(s: Survey) -> dict[str, Any]:
    def q_doc(q: Question) -> dict[str, Any]:
        d: dict[str, Any] = {"id": q.id, "text": q.text, "page": q.page}
        if q.field is not None:
            d["field"] = q.field
        else:
            d["type"] = q.type
            d["attribute"] = q.attribute
            if q.type == "scale":
                d["min"], d["max"] = q.low, q.high
        if q.required:
            d["required"] = True
        if q.help:
            d["help"] = q.help
        if q.low_label:
            d["min_label"] = q.low_label
        if q.high_label:
            d["max_label"] = q.high_label
        if q.choices:
            d["choices"] = [{"value": c.value, "label": c.label} for c in q.choices]
        if q.type == "text":
            d["max_length"] = q.max_length
        if q.show_if is not None:
            d["show_if"] = q.show_if.as_dict()
        return d

    doc: dict[str, Any] = {
        "id": s.id,
        "title": s.title,
        "touchpoints": list(s.touchpoints),
        "languages": list(s.languages),
        "fallback_language": s.fallback_language,
        "link_days": s.link_days,
        "questions": [q_doc(q) for q in s.questions],
    }
    if s.partial_after_days is not None:
        doc["partial_after_days"] = s.partial_after_days
    if s.intro:
        doc["intro"] = s.intro
    if s.thanks:
        doc["thanks"] = s.thanks
    return doc


__all__ = [
    "ATTRIBUTE_FIELDS",
    "BOUND_FIELDS",
    "CUSTOM_TYPES",
    "DEFAULT_TEXT_LENGTH",
    "LANGUAGE",
    "RESERVED_ATTRIBUTES",
    "SCALES",
    "Choice",
    "Condition",
    "Question",
    "Survey",
    "match_language",
    "to_document",
    "words",
]
