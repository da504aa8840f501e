"""Survey definitions: read from YAML or JSON, validated with problems that say where and how.

A definition names its touch points, its languages (the first, or ``fallback_language``, is the
one every text must have), and its questions. A question is bound to a field of the contract's
feedback record (``expectation``, ``experience``, ``nps``, ``csat``, ``ces``, ``emotion``,
``text``, and ``brand_rank`` / ``brands_used``, which the share-of-wallet analysis reads as
attributes) or is a custom question (``type: choice``, ``scale`` or ``text``) whose answer is kept
as a feedback attribute. ``show_if`` asks a question only when an answer on an earlier page
meets a condition; ``page`` splits the form into pages (each page's answers are saved when it
is sent). Texts are a string (in the fallback language) or a mapping language -> text.

Nothing here touches the store: :func:`parse` gives a :class:`Survey` or raises
:class:`~corridor.surveys.errors.SurveyDefinitionError` listing every problem.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from corridor.domain import yaml_text
from corridor.domain.contract import FEEDBACK, MAX_TEXT_LENGTH
from corridor.domain.plain_text import has_control
from corridor.surveys.errors import SurveyDefinitionError
from corridor.surveys.model import (
    ATTRIBUTE_FIELDS,
    BOUND_FIELDS,
    CUSTOM_TYPES,
    DEFAULT_TEXT_LENGTH,
    LANGUAGE,
    RESERVED_ATTRIBUTES,
    SCALES,
    Choice,
    Condition,
    Question,
    Survey,
    to_document,
    words,
)

_KEY = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
_ATTR = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CONTRACT = frozenset(f.name for f in FEEDBACK.fields)
MAX_QUESTIONS = 100
MAX_CHOICES = 50
_CONDITIONS = ("below", "above", "equals", "in")


# -- reading ----------------------------------------------------------------------------------


def read_document(data: bytes | str, source: str = "the definition") -> dict[str, Any]:
    """YAML or JSON text (JSON is YAML) → a mapping; a :class:`SurveyDefinitionError` else."""
    try:
        doc = yaml_text.load(data)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f"line {where.line + 1}, column {where.column + 1}" if where else "(document)"
        raise SurveyDefinitionError(
            source, [(at, f"not YAML or JSON ({getattr(e, 'problem', e)}); fix the syntax")]
        ) from None
    except RecursionError:
        raise SurveyDefinitionError(
            source, [("(document)", "nested too deeply to be a survey definition")]
        ) from None
    if not isinstance(doc, dict):
        raise SurveyDefinitionError(
            source,
            [("(document)", "expected a mapping with id, title, touchpoints and questions")],
        )
    return doc


def read_file(path: str | Path) -> Survey:
    p = Path(path)
    if not p.is_file():
        raise SurveyDefinitionError(str(p), [("(file)", "no such file; check the path")])
    return parse(read_document(p.read_bytes(), str(p)), source=str(p))


class _Problems:
    def __init__(self, stored: bool = False) -> None:
        self.found: list[tuple[str, str]] = []
        self.stored = stored

    def add(self, where: str, what: str) -> None:
        self.found.append((where, what))

    def since(self, where: str, what: str) -> None:
        """A problem found by a check added after versions may have been stored with it: it
        refuses a definition being loaded, not a stored version, which keeps working as it did
        (its form pages are read on every request)."""
        if not self.stored:
            self.add(where, what)


def _texts(
    value: Any, where: str, languages: tuple[str, ...], fallback: str, problems: _Problems
) -> dict[str, str]:
    """A text in every language: a string (the fallback language's) or language -> string."""
    if isinstance(value, str):
        value = {fallback: value}
    if not isinstance(value, dict) or not value:
        problems.add(where, f"expected a text, or a mapping of language to text ({fallback}: …)")
        return {}
    out: dict[str, str] = {}
    for lang, text in value.items():
        code = str(lang).lower()
        if code not in languages:
            problems.add(
                f"{where}.{lang}",
                f"language {lang!r} is not in the survey's languages ({', '.join(languages)}); "
                "add it to languages or remove this translation",
            )
        elif not isinstance(text, str) or not text.strip():
            problems.add(f"{where}.{lang}", "expected a non-empty text")
        elif has_control(text, lines=True):
            problems.since(f"{where}.{lang}", "holds a control character (a NUL, an escape, …); "
                           "remove it")  # fmt: skip
        elif code in out:
            problems.since(f"{where}.{lang}", f"a second text in {code!r} (languages are "
                           "compared in lower case); keep one")  # fmt: skip
        else:
            out[code] = text.strip()
    if fallback not in out and not any(w.startswith(f"{where}.") for w, _ in problems.found):
        problems.add(where, f"needs a text in the fallback language {fallback!r}")
    return out


def _bool(value: Any, where: str, problems: _Problems) -> bool:
    if not isinstance(value, bool):
        problems.add(where, "expected true or false")
        return False
    return value


def _int(value: Any, where: str, problems: _Problems, lo: int, hi: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        problems.add(where, f"expected a whole number from {lo} to {hi}")
        return None
    return value


def parse(doc: dict[str, Any], *, source: str = "the definition", stored: bool = False) -> Survey:
    """Validate a definition; every problem is listed as (where, how to fix it). ``stored``:
    a version stored before, read again (see :meth:`_Problems.since`)."""
    p = _Problems(stored)
    known = {"id", "title", "intro", "thanks", "touchpoints", "languages", "fallback_language",
             "questions", "link_days", "partial_after_days"}  # fmt: skip
    for key in doc:
        if key not in known:
            p.add(str(key), f"unknown key; allowed: {', '.join(sorted(known))}")
    sid = doc.get("id")
    if sid is not None and not isinstance(sid, str):
        p.add("id", f"{sid!r} is not text; quote it (id: '{sid}'), or use letters as well")
        sid = ""
    elif not isinstance(sid, str) or not _KEY.match(sid):
        p.add("id", "required: lower-case letters, digits, '-' or '_' (e.g. delivery-pulse)")
        sid = ""
    tps_raw = doc.get("touchpoints")
    if isinstance(tps_raw, str):
        tps_raw = [tps_raw]
    if not isinstance(tps_raw, list) or not tps_raw:
        p.add("touchpoints", "required: a list of touch point keys from the corridor map")
        tps_raw = []
    touchpoints: list[str] = []
    for i, tp in enumerate(tps_raw):
        if not isinstance(tp, str) or not _KEY.match(tp):
            p.add(f"touchpoints[{i}]", "expected a touch point key, e.g. home_delivery")
        elif tp in touchpoints:
            p.add(f"touchpoints[{i}]", f"{tp!r} is listed twice")
        else:
            touchpoints.append(tp)
    langs_raw = doc.get("languages", ["en"])
    if isinstance(langs_raw, str):
        langs_raw = [langs_raw]
    languages: list[str] = []
    if not isinstance(langs_raw, list) or not langs_raw:
        p.add("languages", "expected a list of language codes, e.g. [en, de]")
        langs_raw = []
    for i, lang in enumerate(langs_raw):
        code = str(lang).lower()
        if not LANGUAGE.match(code):
            p.add(f"languages[{i}]", f"{lang!r} is not a language code (en, de, pt-br)")
        elif code in languages:
            p.add(f"languages[{i}]", f"{code!r} is listed twice")
        else:
            languages.append(code)
    languages = languages or ["en"]
    fallback = str(doc.get("fallback_language", languages[0])).lower()
    if fallback not in languages:
        p.add(
            "fallback_language", f"{fallback!r} must be one of languages ({', '.join(languages)})"
        )
        fallback = languages[0]
    langs = tuple(languages)
    title = _texts(doc.get("title"), "title", langs, fallback, p)
    intro = _texts(doc["intro"], "intro", langs, fallback, p) if "intro" in doc else {}
    thanks = _texts(doc["thanks"], "thanks", langs, fallback, p) if "thanks" in doc else {}
    link_days = _int(doc.get("link_days", 30), "link_days", p, 1, 3650) or 30
    partial = doc.get("partial_after_days")
    if partial is not None:
        partial = _int(partial, "partial_after_days", p, 1, 365)
    qs_raw = doc.get("questions")
    if not isinstance(qs_raw, list) or not qs_raw:
        p.add("questions", "required: a list of questions (each with id and text)")
        qs_raw = []
    if len(qs_raw) > MAX_QUESTIONS:
        p.add("questions", f"at most {MAX_QUESTIONS} questions; split the survey")
    numbered: list[tuple[int, Question]] = []
    for i, q in enumerate(qs_raw[:MAX_QUESTIONS]):
        made = _question(q, f"questions[{i}]", langs, fallback, p)
        if made is not None:
            numbered.append((i, made))
    _cross_checks(numbered, p)
    questions = [q for _, q in numbered]
    if p.found:
        raise SurveyDefinitionError(source, p.found)
    pages = sorted({q.page for q in questions})
    renumber = {old: new for new, old in enumerate(pages, start=1)}
    questions = [_replace_page(q, renumber[q.page]) for q in questions]
    questions.sort(key=lambda q: q.page)  # stable: keeps the order within a page
    survey = Survey(
        id=sid,
        title=title,
        touchpoints=tuple(touchpoints),
        languages=langs,
        fallback_language=fallback,
        questions=tuple(questions),
        intro=intro,
        thanks=thanks,
        link_days=link_days,
        partial_after_days=partial,
    )
    return _with_document(survey)


def _replace_page(q: Question, page: int) -> Question:
    return replace(q, page=page)


def _question(
    q: Any, where: str, langs: tuple[str, ...], fallback: str, p: _Problems
) -> Question | None:
    if not isinstance(q, dict):
        p.add(where, "expected a mapping with id and text")
        return None
    known = {"id", "field", "type", "attribute", "text", "help", "required", "page", "min",
             "max", "min_label", "max_label", "choices", "max_length", "show_if"}  # fmt: skip
    for key in q:
        if key not in known:
            p.add(f"{where}.{key}", f"unknown key; allowed: {', '.join(sorted(known))}")
    qid = q.get("id")
    if not isinstance(qid, str) or not _ATTR.match(qid):
        p.add(f"{where}.id", "required: lower-case letters, digits and '_', starting with a letter")
        qid = f"q{where}"
    else:
        where = f"{where} ({qid})"
    field_name = q.get("field")
    qtype = q.get("type")
    attribute = None
    low, high = 0, 10
    if field_name is not None:
        if field_name not in BOUND_FIELDS:
            p.add(f"{where}.field", f"{field_name!r} is not a feedback field a question can fill; "
                  f"use one of {', '.join(BOUND_FIELDS)}, or type: choice|scale|text for a "
                  "custom question kept as an attribute")  # fmt: skip
            return None
        if qtype is not None:
            p.add(f"{where}.type", "give field or type, not both (the field decides the type)")
        qtype = "text" if field_name == "text" else "scale"
        if field_name in SCALES:
            low, high = SCALES[field_name]
    else:
        if qtype not in CUSTOM_TYPES:
            p.add(where, f"needs field ({', '.join(BOUND_FIELDS)}) or type "
                  f"({', '.join(CUSTOM_TYPES)})")  # fmt: skip
            return None
        attribute = q.get("attribute", qid)
        if not isinstance(attribute, str) or not _ATTR.match(attribute):
            p.add(f"{where}.attribute", "expected a name: lower-case letters, digits and '_'")
        elif attribute == "attributes":  # reserved since versions may have been stored
            p.since(f"{where}.attribute", "'attributes' holds a feedback record's attributes; "
                    "pick another name")  # fmt: skip
        elif attribute in _CONTRACT or attribute in RESERVED_ATTRIBUTES:
            p.add(
                f"{where}.attribute",
                f"{attribute!r} is a field of the feedback record or a survey attribute; bind "
                f"the question with field: {attribute} or pick another name",
            )
        if qtype == "scale":
            lo = _int(q.get("min", 0), f"{where}.min", p, -100, 100)
            hi = _int(q.get("max", 10), f"{where}.max", p, -100, 100)
            if lo is not None and hi is not None:
                if hi <= lo or hi - lo > 20:
                    p.add(f"{where}.max", "max must be above min, by at most 20 steps")
                low, high = lo, hi
    if field_name is not None and ("min" in q or "max" in q):
        p.add(f"{where}.min", f"field {field_name} has a fixed range ({low} to {high}); remove "
              "min and max")  # fmt: skip
    text = _texts(q.get("text"), f"{where}.text", langs, fallback, p)
    help_ = _texts(q["help"], f"{where}.help", langs, fallback, p) if "help" in q else {}
    for end in ("min_label", "max_label"):
        if end in q and qtype != "scale":
            p.since(f"{where}.{end}", f"labels the ends of a scale; a {qtype} question has "
                  "none, remove it")  # fmt: skip
    low_label = _texts(q["min_label"], f"{where}.min_label", langs, fallback, p) if (
        "min_label" in q) else None  # fmt: skip
    high_label = _texts(q["max_label"], f"{where}.max_label", langs, fallback, p) if (
        "max_label" in q) else None  # fmt: skip
    required = _bool(q.get("required", False), f"{where}.required", p)
    page = _int(q.get("page", 1), f"{where}.page", p, 1, 50) or 1
    choices: list[Choice] = []
    if qtype == "choice":
        raw = q.get("choices")
        if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_CHOICES:
            p.add(f"{where}.choices", f"a choice question needs 2 to {MAX_CHOICES} choices, "
                  "each {value, label}")  # fmt: skip
            raw = []
        for j, c in enumerate(raw):
            cw = f"{where}.choices[{j}]"
            if isinstance(c, str):
                c = {"value": c, "label": c}
            if not isinstance(c, dict) or not isinstance(c.get("value"), str | int):
                p.add(cw, "expected {value: ..., label: ...}")
                continue
            value = str(c["value"])
            if not _ATTR.match(value) and not re.match(r"^[a-z0-9_\-]{1,64}$", value):
                p.add(f"{cw}.value", "lower-case letters, digits, '-' and '_' only")
                continue
            if any(ch.value == value for ch in choices):
                p.add(f"{cw}.value", f"{value!r} is used twice")
                continue
            label = _texts(c.get("label", value), f"{cw}.label", langs, fallback, p)
            choices.append(Choice(value, label))
    elif "choices" in q:
        p.add(f"{where}.choices", "only a choice question has choices")
    max_length = DEFAULT_TEXT_LENGTH
    if qtype == "text":
        max_length = _int(q.get("max_length", DEFAULT_TEXT_LENGTH), f"{where}.max_length", p, 1,
                          MAX_TEXT_LENGTH) or DEFAULT_TEXT_LENGTH  # fmt: skip
    elif "max_length" in q:
        p.add(f"{where}.max_length", "only a text question has max_length")
    show_if = _condition(q["show_if"], f"{where}.show_if", p) if "show_if" in q else None
    return Question(
        id=qid,
        type=str(qtype),
        text=text,
        page=page,
        field=field_name,
        attribute=attribute if isinstance(attribute, str) else None,
        required=required,
        help=help_,
        low=low,
        high=high,
        low_label=low_label,
        high_label=high_label,
        choices=tuple(choices),
        max_length=max_length,
        show_if=show_if,
    )


def _condition(c: Any, where: str, p: _Problems) -> Condition | None:
    if not isinstance(c, dict) or not isinstance(c.get("question"), str):
        p.add(where, "expected {question: ID, below: N} (or above, equals, in)")
        return None
    given = [k for k in _CONDITIONS if k in c]
    extra = [k for k in c if k not in (*_CONDITIONS, "question")]
    if extra:
        p.add(f"{where}.{extra[0]}", f"unknown key; allowed: question, {', '.join(_CONDITIONS)}")
    if not given or (("equals" in given or "in" in given) and len(given) > 1):
        p.add(where, "give below and/or above (numbers), or equals, or in (a list)")
        return None
    below = above = None
    equals: str | float | None = None
    among: tuple[str, ...] = ()
    for name in ("below", "above"):
        if name in c:
            v = c[name]
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                p.add(f"{where}.{name}", "expected a number")
                return None
            if name == "below":
                below = float(v)
            else:
                above = float(v)
    if "equals" in c:
        v = c["equals"]
        if isinstance(v, float) and not math.isfinite(v):
            p.add(f"{where}.equals", "expected a finite number or a choice value")
            return None
        equals = float(v) if isinstance(v, int | float) and not isinstance(v, bool) else str(v)
    if "in" in c:
        if not isinstance(c["in"], list) or not c["in"]:
            p.add(f"{where}.in", "expected a list of choice values")
            return None
        among = tuple(str(v) for v in c["in"])
    return Condition(c["question"], below=below, above=above, equals=equals, among=among)


def _cross_checks(questions: list[tuple[int, Question]], p: _Problems) -> None:
    seen: dict[str, Question] = {}
    targets: dict[str, str] = {}
    for i, q in questions:
        where = f"questions[{i}] ({q.id})"
        if q.id in seen:
            p.add(f"{where}.id", f"{q.id!r} is used by another question; ids must be unique")
        if q.target in targets and q.id not in seen:
            p.add(where, f"{q.target!r} is filled by question {targets[q.target]!r} already; "
                  "one question per field or attribute")  # fmt: skip
        targets.setdefault(q.target, q.id)
        c = q.show_if
        if c is not None:
            before = seen.get(c.question)
            if before is None:
                p.add(f"{where}.show_if.question", f"{c.question!r} is not a question before this "
                      "one; show_if refers to an earlier question")  # fmt: skip
            elif before.page >= q.page:
                p.add(f"{where}.show_if.question", f"{c.question!r} is on the same page (page "
                      f"{q.page}); put this question on a later page (page: {before.page + 1}) "
                      "so the answer is known when it is shown")  # fmt: skip
            elif before.type == "text":
                p.add(f"{where}.show_if.question", "a condition on a free-text answer cannot "
                      "be checked; refer to a scale or choice question")  # fmt: skip
            elif before.type == "choice" and isinstance(c.equals, float):
                p.add(f"{where}.show_if.equals", f"{c.question!r} is answered with choice values, "
                      f"which are text: quote the value (equals: '{c.equals:g}')")  # fmt: skip
            elif before.type == "choice":
                values = {ch.value for ch in before.choices}
                wanted = [*c.among, *([str(c.equals)] if c.equals is not None else [])]
                bad = [v for v in wanted if v not in values]
                if bad or c.below is not None or c.above is not None:
                    p.add(f"{where}.show_if", f"compare {c.question!r} with its choices "
                          f"({', '.join(sorted(values))}) using equals or in")  # fmt: skip
            elif not any(c.holds(v) for v in range(before.low, before.high + 1)):
                p.since(f"{where}.show_if", f"no answer to {c.question!r} ({before.low} to "
                      f"{before.high}) meets this condition, so this question would never be "
                      "asked; compare with numbers in that range")  # fmt: skip
        seen.setdefault(q.id, q)


def _with_document(s: Survey) -> Survey:
    """The survey with its normalised document (what is stored and what the digest covers)."""
    return replace(s, document=to_document(s))


__all__ = [
    "ATTRIBUTE_FIELDS",
    "BOUND_FIELDS",
    "LANGUAGE",
    "SCALES",
    "Choice",
    "Condition",
    "Question",
    "Survey",
    "parse",
    "read_document",
    "read_file",
    "to_document",
    "words",
]
