"""The words of the public survey pages around the survey's own texts (buttons, progress,
refusals), per language; a language not listed here reads them in English."""

from __future__ import annotations

from corridor.surveys.model import match_language

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "page": "Page {n} of {total}",
        "required": "required",
        "next": "Next",
        "back": "Back",
        "send": "Send answers",
        "save": "Save and finish later",
        "saved": "Your answers are saved. You can close this page and come back to it with the "
        "same link.",
        "problem": "There is a problem",
        "language": "Language",
        "change": "Change language",
        "thanks_title": "Thank you",
        "thanks": "Your answers have been received.",
        "unknown_title": "Survey not found",
        "used_title": "Already answered",
        "revoked_title": "Link withdrawn",
        "expired_title": "Link expired",
        "form_title": "Please open the survey again",
        "slow_title": "Too many requests",
        "slow": "Too many requests came from your address for this survey. Please wait {s} "
        "seconds and try again; your saved answers are kept.",
        "bad_title": "The answers could not be read",
        "bad": "The form could not be read. Please open the survey link again; your saved "
        "answers are kept.",
        "too_big": "The answers sent on this page are too long to take at once (more than 1 MB). "
        "Please shorten your longest answers and send again; your saved answers are kept.",
        "low": "lowest",
        "high": "highest",
        "chars": "Up to {n} characters.",
    },
    "de": {
        "page": "Seite {n} von {total}",
        "required": "Pflichtfeld",
        "next": "Weiter",
        "back": "Zurück",
        "send": "Antworten senden",
        "save": "Speichern und später fortsetzen",
        "saved": "Ihre Antworten sind gespeichert. Sie können diese Seite schließen und später "
        "mit demselben Link weitermachen.",
        "problem": "Bitte prüfen Sie Ihre Angaben",
        "language": "Sprache",
        "change": "Sprache wechseln",
        "thanks_title": "Vielen Dank",
        "thanks": "Ihre Antworten sind angekommen.",
        "unknown_title": "Umfrage nicht gefunden",
        "used_title": "Bereits beantwortet",
        "revoked_title": "Link zurückgezogen",
        "expired_title": "Link abgelaufen",
        "form_title": "Bitte öffnen Sie die Umfrage erneut",
        "slow_title": "Zu viele Anfragen",
        "slow": "Von Ihrer Adresse kamen zu viele Anfragen für diese Umfrage. Bitte warten Sie "
        "{s} Sekunden; Ihre gespeicherten Antworten bleiben erhalten.",
        "bad_title": "Die Antworten konnten nicht gelesen werden",
        "bad": "Das Formular konnte nicht gelesen werden. Bitte öffnen Sie den Link erneut; "
        "Ihre gespeicherten Antworten bleiben erhalten.",
        "too_big": "Die Antworten auf dieser Seite sind zu lang, um sie auf einmal anzunehmen "
        "(mehr als 1 MB). Bitte kürzen Sie Ihre längsten Antworten und senden Sie erneut; Ihre "
        "gespeicherten Antworten bleiben erhalten.",
        "low": "niedrigste",
        "high": "höchste",
        "chars": "Bis zu {n} Zeichen.",
    },
}

#: the refusals' texts per language (the survey's own wording is unknown when a link fails)
REFUSALS: dict[str, dict[str, str]] = {
    "en": {
        "unknown": "This survey link is not known. Check that the whole link was copied, or "
        "ask the sender for a new one.",
        "used": "This survey has been answered already with this link. Thank you! Each "
        "personal link can be used once.",
        "revoked": "This survey link has been withdrawn by the sender and can no longer be used.",
        "expired": "This survey link has expired and can no longer be used.",
        "form": "This form has expired or was not sent from the survey page. Please open the "
        "survey link again; your saved answers are kept.",
    },
    "de": {
        "unknown": "Dieser Umfrage-Link ist unbekannt. Prüfen Sie, ob der ganze Link kopiert "
        "wurde, oder bitten Sie den Absender um einen neuen.",
        "used": "Diese Umfrage wurde mit diesem Link bereits beantwortet. Vielen Dank! Jeder "
        "persönliche Link kann einmal verwendet werden.",
        "revoked": "Dieser Umfrage-Link wurde vom Absender zurückgezogen und kann nicht mehr "
        "verwendet werden.",
        "expired": "Dieser Umfrage-Link ist abgelaufen und kann nicht mehr verwendet werden.",
        "form": "Dieses Formular ist abgelaufen oder kam nicht von der Umfrageseite. Bitte "
        "öffnen Sie den Link erneut; Ihre gespeicherten Antworten bleiben erhalten.",
    },
}


def words(language: str) -> dict[str, str]:
    return WORDS.get(language.split("-")[0], WORDS["en"])


def refusal(language: str, reason: str) -> str:
    return REFUSALS.get(language.split("-")[0], REFUSALS["en"])[reason]


def best(accept_language: str | None, offered: tuple[str, ...]) -> str | None:
    """The first language of an ``Accept-Language`` header (by weight) that is offered, as
    :func:`~corridor.surveys.model.match_language` matches them (de-CH → de, pt → pt-br)."""
    if not accept_language:
        return None
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")[:20]):
        code, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if code and weight > 0:
            ranked.append((-weight, i, code.strip().lower()))
    for _, _, code in sorted(ranked):
        found = match_language(code, offered)
        if found is not None:
            return found
    return None
