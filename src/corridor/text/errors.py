"""Errors raised by text analysis."""

from __future__ import annotations

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.errors import CorridorError


class TextAnalysisError(AnalyticsQueryError):
    """A text-analysis request that cannot be answered as asked (an unknown model, theme or
    parameter); the message says what is allowed."""


class ModelUnavailableError(CorridorError, RuntimeError):
    """The optional embedding model was asked for but its extra is not installed."""

    status_code = 501


__all__ = ["ModelUnavailableError", "TextAnalysisError"]
