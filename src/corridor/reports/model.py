"""The report's content as typed values: each figure with its n and interval, each finding with
its evidence. Built by :mod:`corridor.reports.content`; rendered by :mod:`corridor.reports.render`
(HTML, text) and :mod:`corridor.reports.charts`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from corridor.reports.periods import ReportPeriod, Subject

#: a change is called real below this p-value
ALPHA = 0.05


@dataclass(frozen=True)
class Figure:
    """One headline figure: its value, interval and n, and the change against the previous
    period with its p-value (None where there is no previous period to compare)."""

    key: str
    label: str
    value: float | None
    low: float | None
    high: float | None
    n: int
    unit: str
    higher_is_better: bool
    delta: float | None = None
    p_value: float | None = None
    previous_n: int = 0
    method: str = ""

    @property
    def direction(self) -> str | None:
        if self.delta is None or self.delta == 0:
            return None if self.delta is None else "unchanged"
        return "better" if (self.delta > 0) == self.higher_is_better else "worse"

    def change_words(self) -> str:
        """The change against the previous period in words, with its p-value."""
        if self.value is None:
            return "no answers in this period"
        if self.delta is None:
            return "no previous period to compare with"
        if self.p_value is None:  # no spread to test against (e.g. every answer alike)
            return "unchanged" if self.direction == "unchanged" else f"{self.direction} (untested)"
        p = format_p(self.p_value)
        if self.direction == "unchanged":
            return f"unchanged ({p})"
        if self.p_value < ALPHA:
            return f"{self.direction}, and the change is real: {p}"
        return f"{self.direction}, but the change could be chance: {p}"


@dataclass(frozen=True)
class Mover:
    """A touch point whose gap moved against the previous period."""

    touchpoint: str
    gap: float
    low: float
    high: float
    n: int
    delta: float
    p_value: float | None


@dataclass(frozen=True)
class DriftFinding:
    """A step in what customers expect at a touch point (a change point of the drift analysis)."""

    touchpoint: str
    period_label: str
    size: float
    low: float | None
    high: float | None
    p_value: float | None
    n_before: int
    n_after: int
    mean_before: float
    mean_after: float


@dataclass(frozen=True)
class RippleFinding:
    """An operational event's effect on the gap at the touch points it touched."""

    event_id: str
    kind: str
    started: str
    effect: float
    low: float | None
    high: float | None
    q_value: float | None
    significant: bool
    n_treated: int


@dataclass(frozen=True)
class Theme:
    """A theme of the voice of the customer in the period, with two redacted quotes."""

    label: str
    n: int
    share: float
    low: float
    high: float
    group_n: int
    delta: float | None
    p_value: float | None
    sentiment: float | None
    quotes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cases:
    """The closed loop's cases opened in the period (:func:`corridor.loop.reports.case_report`)."""

    opened: int
    open_now: int
    breached: int
    decided: int
    verified: int
    verified_share: float | None
    verified_low: float | None
    verified_high: float | None


@dataclass(frozen=True)
class TrendPoint:
    label: str
    value: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class ForecastPoint:
    label: str
    value: float
    low_80: float
    high_80: float
    low_95: float
    high_95: float


@dataclass(frozen=True)
class Forecast:
    model: str
    n: int
    n_periods: int
    mase: float | None
    mase_naive: float | None
    points: tuple[ForecastPoint, ...]


@dataclass(frozen=True)
class Report:
    """Everything a report says, for one reader, subject and period."""

    subject: Subject
    period: ReportPeriod
    reader: str
    generated_at: datetime
    confidence: float
    headline: tuple[Figure, ...]
    movers: tuple[Mover, ...]
    trend: tuple[TrendPoint, ...]
    forecast: Forecast | None
    drift: tuple[DriftFinding, ...]
    ripple: tuple[RippleFinding, ...] | None
    themes: tuple[Theme, ...]
    cases: Cases
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def title(self) -> str:
        return f"Customer experience report — {self.subject.label}, {self.period.label}"

    @property
    def gap(self) -> Figure:
        return self.headline[0]


def is_real(p: float | None) -> bool:
    """Whether a change with p-value ``p`` is called real (p < :data:`ALPHA`)."""
    return p is not None and p < ALPHA


def format_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


#: the heading of the themes' section (with its quotes) in the mail's plain text
THEMES_HEADING = "What customers talk about"


def plain_quote(quote: str) -> str:
    """A quoted comment as the mail's plain text writes it, on a line of its own (a minus sign
    as ``-``, as everywhere in that text): what a privacy request looks for in the report
    mails still kept (:mod:`corridor.privacy.mails`)."""
    return f'"{quote}"'.replace("−", "-")


__all__ = [
    "ALPHA",
    "THEMES_HEADING",
    "Cases",
    "DriftFinding",
    "Figure",
    "Forecast",
    "ForecastPoint",
    "Mover",
    "Report",
    "RippleFinding",
    "Theme",
    "TrendPoint",
    "format_p",
    "is_real",
    "plain_quote",
]  # fmt: skip
