"""Reading a page of answers from a form post: typed values, and a message per bad field.

Pure: nothing here touches the store. A value that cannot be used is reported with what to do
and is not kept; every valid answer on the page is kept, so a customer who got one field wrong
loses nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from corridor.surveys.definition import Question, Survey

#: messages per language; a language not listed here reads them in English
MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "required": "Please answer this question.",
        "range": "Choose a number from {low} to {high}.",
        "choice": "Choose one of the options shown.",
        "length": "Please keep this to {max} characters (it has {n}).",
        "nul": "This answer holds a character that cannot be stored; please retype it.",
        "language": "This survey is not available in {wanted!r}; choose one of the languages "
        "listed.",
    },
    "de": {
        "required": "Bitte beantworten Sie diese Frage.",
        "range": "Wählen Sie eine Zahl von {low} bis {high}.",
        "choice": "Wählen Sie eine der angezeigten Möglichkeiten.",
        "length": "Bitte höchstens {max} Zeichen (es sind {n}).",
        "nul": "Diese Antwort enthält ein Zeichen, das nicht gespeichert werden kann; bitte "
        "neu eingeben.",
        "language": "Diese Umfrage gibt es nicht auf {wanted!r}; wählen Sie eine der "
        "aufgeführten Sprachen.",
    },
}


def message(language: str, key: str, **values: Any) -> str:
    texts = MESSAGES.get(language.split("-")[0], MESSAGES["en"])
    return texts.get(key, MESSAGES["en"][key]).format(**values)


@dataclass
class PageAnswers:
    """What one page's post gave: the valid answers (None: left blank), and the problems."""

    values: dict[str, Any] = field(default_factory=dict)
    #: question id -> what to do about it
    errors: dict[str, str] = field(default_factory=dict)
    #: what was typed for a question with an error (shown again, never stored)
    raw: dict[str, str] = field(default_factory=dict)


def read_value(q: Question, raw: str | None, language: str) -> tuple[Any, str | None]:
    """(value, problem) for one answer as posted; a blank answer is (None, None)."""
    if raw is None:
        return None, None
    if "\x00" in raw:
        return None, message(language, "nul")
    if q.type == "text":
        text = raw.strip().replace("\r\n", "\n")
        if len(text) > q.max_length:
            return None, message(language, "length", max=q.max_length, n=len(text))
        return (text or None), None
    value = raw.strip()
    if not value:
        return None, None
    if q.type == "choice":
        if value not in {c.value for c in q.choices}:
            return None, message(language, "choice")
        return value, None
    try:
        number = int(value)
    except ValueError:
        return None, message(language, "range", low=q.low, high=q.high)
    if not q.low <= number <= q.high:
        return None, message(language, "range", low=q.low, high=q.high)
    return number, None


def read_page(
    survey: Survey,
    page: int,
    form: Mapping[str, str],
    before: Mapping[str, Any],
    language: str,
    *,
    check_required: bool,
) -> PageAnswers:
    """The answers to the questions ``page`` shows, given the answers ``before`` it."""
    out = PageAnswers()
    for q in survey.on_page(page):
        if not survey.shown(q, dict(before)):
            continue
        raw = form.get(q.id)
        value, problem = read_value(q, raw, language)
        if problem is not None:
            out.errors[q.id] = problem
            out.raw[q.id] = (raw or "")[: q.max_length * 2 if q.type == "text" else 64]
            continue
        if value is None and q.required and check_required:
            out.errors[q.id] = message(language, "required")
        out.values[q.id] = value
    return out


def missing_required(survey: Survey, answers: Mapping[str, Any]) -> tuple[int, str] | None:
    """The first (page, question id) a submit still needs, if any."""
    for q in survey.questions:
        if q.required and survey.shown(q, dict(answers)) and answers.get(q.id) is None:
            return q.page, q.id
    return None


def kept(survey: Survey, answers: Mapping[str, Any]) -> dict[str, Any]:
    """The answers to the questions asked (an answer to a question skip logic hides is
    dropped: it was given before an earlier answer changed), blanks left out."""
    out: dict[str, Any] = {}
    for q in survey.questions:
        value = answers.get(q.id)
        if value is not None and survey.shown(q, dict(answers)):
            out[q.id] = value
    return out


__all__ = ["MESSAGES", "PageAnswers", "kept", "message", "missing_required", "read_page"]
