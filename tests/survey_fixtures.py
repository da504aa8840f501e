"""What the survey tests share: a two-page delivery survey in English and German."""

from __future__ import annotations

import copy
from typing import Any

DELIVERY: dict[str, Any] = {
    "id": "delivery-pulse",
    "title": {"en": "How was your delivery?", "de": "Wie war Ihre Lieferung?"},
    "intro": {"en": "Two short pages.", "de": "Zwei kurze Seiten."},
    "thanks": {"en": "Thank you for your answers!", "de": "Danke für Ihre Antworten!"},
    "touchpoints": ["home_delivery"],
    "languages": ["en", "de"],
    "fallback_language": "en",
    "questions": [
        {
            "id": "expectation",
            "field": "expectation",
            "text": {"en": "What did you expect?", "de": "Was haben Sie erwartet?"},
            "min_label": {"en": "very little", "de": "sehr wenig"},
            "max_label": {"en": "a great deal", "de": "sehr viel"},
        },
        {
            "id": "experience",
            "field": "experience",
            "required": True,
            "text": {"en": "How was it?", "de": "Wie war es?"},
        },
        {
            "id": "nps",
            "field": "nps",
            "text": {"en": "Would you recommend us?", "de": "Würden Sie uns empfehlen?"},
        },
        {
            "id": "what_went_wrong",
            "field": "text",
            "page": 2,
            "max_length": 500,
            "show_if": {"question": "experience", "below": 5},
            "text": {"en": "What went wrong?", "de": "Was lief schief?"},
        },
        {
            "id": "issue",
            "type": "choice",
            "attribute": "delivery_issue",
            "page": 2,
            "choices": [
                {"value": "late", "label": {"en": "It came late", "de": "Sie kam zu spät"}},
                {"value": "damaged", "label": {"en": "It was damaged", "de": "Sie war beschädigt"}},
                {"value": "none", "label": {"en": "Nothing", "de": "Nichts"}},
            ],
            "text": {"en": "Anything in particular?", "de": "Etwas Bestimmtes?"},
        },
    ],
}


def delivery(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DELIVERY)
    doc.update(changes)
    return doc
