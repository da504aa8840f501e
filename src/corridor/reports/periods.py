"""What a report covers: its subject (the corridor, a department, a partner, a touch point) and
its period (the last full week, month or quarter before a moment, and the one before it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd

from corridor.errors import CorridorError

#: report periods and their pandas frequencies (weeks start on Monday, as the analyses' weeks)
PERIOD_KINDS: dict[str, str] = {"week": "W-SUN", "month": "M", "quarter": "Q"}
#: what a report may be about
SUBJECT_KINDS: tuple[str, ...] = ("department", "partner", "touchpoint")


class ReportRequestError(CorridorError, ValueError):
    """A report asked for with a subject or period that cannot be read."""

    status_code = 422


@dataclass(frozen=True)
class Subject:
    """What the report is about: ``kind`` None for the whole corridor."""

    kind: str | None = None
    value: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> Subject:
        """``department=logistics``, ``partner=p-01``, ``touchpoint=checkout``, or empty (or
        ``corridor``) for the whole corridor."""
        raw = (text or "").strip()
        if raw in ("", "corridor", "all"):
            return cls()
        kind, sep, value = raw.partition("=")
        kind, value = kind.strip(), value.strip()
        if not sep or kind not in SUBJECT_KINDS or not value:
            raise ReportRequestError(
                f"scope {text!r} is not understood: write KIND=VALUE with KIND one of "
                f"{', '.join(SUBJECT_KINDS)} (e.g. department=logistics), or leave it out for "
                "the whole corridor"
            )
        return cls(kind, value)

    @property
    def filters(self) -> dict[str, list[str | None]]:
        """The analyses' filters selecting the subject's records."""
        return {self.kind: [self.value]} if self.kind and self.value else {}

    @property
    def label(self) -> str:
        if self.kind is None:
            return "the whole corridor"
        return f"{self.kind} {self.value}"

    @property
    def spec(self) -> str:
        return f"{self.kind}={self.value}" if self.kind else "corridor"


@dataclass(frozen=True)
class ReportPeriod:
    """The period reported on, ``[start, end)`` in UTC, and the one before it."""

    kind: str
    start: datetime
    end: datetime
    previous_start: datetime

    @classmethod
    def last_full(cls, kind: str, at: datetime | date | str | None = None) -> ReportPeriod:
        """The last full ``kind`` (week, month, quarter) ended by ``at`` (default: now)."""
        if kind not in PERIOD_KINDS:
            raise ReportRequestError(
                f"unknown period {kind!r}; use one of {', '.join(PERIOD_KINDS)}"
            )
        try:
            moment = pd.Timestamp(at if at is not None else datetime.now(UTC))
        except (ValueError, TypeError) as e:
            raise ReportRequestError(
                f"{at!r} is not a date: write an ISO-8601 date such as 2025-07-01"
            ) from e
        if moment.tzinfo is not None:
            moment = moment.tz_convert(UTC).tz_localize(None)
        current = moment.to_period(PERIOD_KINDS[kind])
        return cls.of(kind, current - 1)

    @classmethod
    def of(cls, kind: str, period: pd.Period) -> ReportPeriod:
        def utc(p: pd.Period) -> datetime:
            return p.start_time.tz_localize(UTC).to_pydatetime()

        return cls(kind, utc(period), utc(period + 1), utc(period - 1))

    @classmethod
    def from_key(cls, kind: str, key: str) -> ReportPeriod:
        """The ``kind`` period named ``key`` (:attr:`key`: ``2025-06``, ``2025-W23``,
        ``2025-Q2``)."""
        try:
            if kind == "week":
                year, week = key.split("-W")
                start = date.fromisocalendar(int(year), int(week), 1)
                return cls.of(kind, pd.Timestamp(start).to_period(PERIOD_KINDS[kind]))
            return cls.of(kind, pd.Period(key, freq=PERIOD_KINDS[kind]))
        except (KeyError, ValueError, TypeError, AttributeError) as e:  # ('NaT': AttributeError)
            raise ReportRequestError(f"{key!r} is not a {kind} period's key") from e

    def back(self, periods: int) -> datetime:
        """The start of the period ``periods`` before this one."""
        p = pd.Timestamp(self.start.replace(tzinfo=None)).to_period(PERIOD_KINDS[self.kind])
        return (p - periods).start_time.tz_localize(UTC).to_pydatetime()

    def _names(self) -> tuple[str, str]:
        """The period's :attr:`label` and :attr:`key`, from one reading of its kind."""
        if self.kind == "week":
            iso = self.start.isocalendar()
            span = f"{self.start:%d %b} – {self.last_day:%d %b %Y}"
            return f"week {iso.week} of {iso.year} ({span})", f"{iso.year}-W{iso.week:02d}"
        if self.kind == "month":
            return f"{self.start:%B %Y}", f"{self.start:%Y-%m}"
        quarter = (self.start.month - 1) // 3 + 1
        return f"Q{quarter} {self.start.year}", f"{self.start.year}-Q{quarter}"

    @property
    def label(self) -> str:
        return self._names()[0]

    @property
    def last_day(self) -> date:
        return (pd.Timestamp(self.end) - pd.Timedelta(days=1)).date()

    @property
    def key(self) -> str:
        """A short stable name of the period (``2025-06``, ``2025-W23``, ``2025-Q2``)."""
        return self._names()[1]


__all__ = ["PERIOD_KINDS", "SUBJECT_KINDS", "ReportPeriod", "ReportRequestError", "Subject"]
