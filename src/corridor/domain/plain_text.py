"""What a short text a person types (a name, a label, a note, a URL) may hold: no control
characters. NUL above all: PostgreSQL text cannot hold it, and a page that shows it sends a raw
NUL byte. Notes keep their line breaks (a browser sends a textarea's as CR LF) and tabs."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control(text: str, *, lines: bool = False) -> bool:
    """Whether ``text`` holds a control character (C0 or DEL); ``lines``: line feed, carriage
    return and tab are allowed (a note's)."""
    return (_CONTROL_BUT_LINES if lines else _CONTROL).search(text) is not None


def shown(text: str) -> str:
    """``text`` with its control characters but line breaks and tabs shown as U+FFFD: what a
    page prints of a text, whatever was stored or typed."""
    return _CONTROL_BUT_LINES.sub("\ufffd", text)


__all__ = ["has_control", "shown"]
