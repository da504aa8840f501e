"""The time window a page shows: the value every page builder, panel and route passes around
(:func:`corridor.web.views.window` picks it from the store and the page's ``range``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    since: datetime | None
    until: datetime | None
