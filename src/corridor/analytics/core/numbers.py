"""Strict reading of numbers given as text (query strings, command-line options), for every
analysis parameter (:meth:`corridor.analytics.core.registry.Param.parse`).

Python's ``int()`` and ``float()`` accept what no user means as a number in a URL: ``1_000``,
full-width and other Unicode digits, surrounding spaces, ``nan`` and ``inf``; and ``int()``
takes integers of any size, which then overflow the engines (a 500). Here a whole number is
ASCII digits with an optional sign, at most 15 of them; a number is a plain decimal, optionally
with an exponent, and finite. Anything else is the user's mistake, answered with a 422 that
names the parameter and gives an example.

:func:`float_or_none` reads a cell of an analysis' result (a number, a numpy or pandas scalar,
None, NA) the way pages, warnings and alert rules use it: a float, or None where there is none.
"""

from __future__ import annotations

import math
import re
from typing import Any

from corridor.analytics.core.errors import AnalyticsQueryError

_WHOLE = re.compile(r"[+-]?[0-9]{1,15}", re.ASCII)
_DECIMAL = re.compile(
    r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,3})?"
)


def shown(raw: str) -> str:
    """A raw value quoted for a message, cut at 40 characters."""
    return repr(raw if len(raw) <= 40 else raw[:40] + "…")


def whole_number(raw: str, key: str, example: Any = 1) -> int:
    """``raw`` as an int, or an :class:`AnalyticsQueryError` naming ``key``."""
    if not _WHOLE.fullmatch(raw):
        raise AnalyticsQueryError(
            f"{key} {shown(raw)} is not a whole number (ASCII digits, at most 15 of them), "
            f"e.g. {example}"
        )
    return int(raw)


def number(raw: str, key: str, example: Any = 0.5) -> float:
    """``raw`` as a finite float, or an :class:`AnalyticsQueryError` naming ``key``."""
    value = float(raw) if _DECIMAL.fullmatch(raw) else math.nan
    if not math.isfinite(value):
        raise AnalyticsQueryError(
            f"{key} {shown(raw)} is not a number (give a finite decimal, e.g. {example})"
        )
    return value


def float_or_none(value: Any, *, infinite: bool = False) -> float | None:
    """A result cell as a float; None where it is missing (None, NA, NaN) or no number at all,
    and where it is infinite unless ``infinite``."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(f) or (math.isinf(f) and not infinite):
        return None
    return f
