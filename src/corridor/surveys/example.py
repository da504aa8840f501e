"""The example survey: a two-page delivery survey in English and German (the one in
docs/surveys.md), loaded by ``corridor demo`` so the demo has a survey to link, answer and
analyse."""

from __future__ import annotations

from corridor.surveys.definition import Survey, parse, read_document

DELIVERY_PULSE_YAML = """\
id: delivery-pulse                    # lower-case letters, digits, - and _
title: {en: "How was your delivery?", de: "Wie war Ihre Lieferung?"}
intro: {en: "Two short pages.", de: "Zwei kurze Seiten."}        # optional, on the first page
thanks: {en: "Thank you for your answers!", de: "Danke für Ihre Antworten!"}   # optional
touchpoints: [home_delivery]          # keys of the corridor map (one or several)
languages: [en, de]                   # the first is the fallback unless fallback_language says
fallback_language: en
link_days: 30                         # how long a personal link is valid by default
partial_after_days: 7                 # optional: send a response left unfinished this long
questions:
  - id: expectation
    field: expectation                # a field of the feedback record: its range (0-10) applies
    text: {en: "What did you expect?", de: "Was haben Sie erwartet?"}
    min_label: {en: "very little", de: "sehr wenig"}
    max_label: {en: "a great deal", de: "sehr viel"}
  - id: experience
    field: experience
    required: true
    text: {en: "How was it?", de: "Wie war es?"}
  - id: nps
    field: nps
    text: {en: "Would you recommend us?", de: "Würden Sie uns empfehlen?"}
  - id: what_went_wrong
    field: text                       # free text: redacted and analysed like any feedback text
    page: 2
    max_length: 500
    show_if: {question: experience, below: 5}     # asked only after a poor experience
    text: {en: "What went wrong?", de: "Was lief schief?"}
  - id: issue
    type: choice                      # a custom question: kept as a feedback attribute
    attribute: delivery_issue         # the attribute's name (default: the question's id)
    page: 2
    choices:
      - {value: late, label: {en: "It came late", de: "Sie kam zu spät"}}
      - {value: damaged, label: {en: "It was damaged", de: "Sie war beschädigt"}}
      - {value: none, label: {en: "Nothing", de: "Nichts"}}
    text: {en: "Anything in particular?", de: "Etwas Bestimmtes?"}
"""


def delivery_pulse() -> Survey:
    return parse(read_document(DELIVERY_PULSE_YAML, "the example survey"))


__all__ = ["DELIVERY_PULSE_YAML", "delivery_pulse"]
